// Lint: neostandard (standard style for TypeScript through typescript-eslint), the style this codebase
// was written in. Run with `npm run lint`; .ci/run runs it too. Rules turned off, and why:
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**'] }),
  {
    files: ['**/*.ts'],
    rules: {
      // Loops here wait on flags that event handlers and timers flip (`while (!stop) await …`); the rule
      // only sees the loop body, so every such loop is a false positive.
      'no-unmodified-loop-condition': 'off',
      // `void promise` marks a promise that is deliberately not awaited (its errors are handled inside).
      'no-void': 'off',
      // standard's own setting for this rule, which the TypeScript variant loses: a class, function or
      // variable used inside a function (a method, a callback) declared before it is defined there by the
      // time that function runs.
      '@typescript-eslint/no-use-before-define': ['error', { classes: false, functions: false, variables: false }],
      // A class's payload type parameter is used by the interface merged with it (typed events and
      // stream methods), which this rule does not see; `_` names a value deliberately unused.
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^(_|[A-Z])$', args: 'after-used', argsIgnorePattern: '^_' }]
    }
  }
]
