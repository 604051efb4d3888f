import { RedisCommandError, ShardUnavailableError, isBusMQError } from '../errors.js'

/**
 * What a failed ioredis call means for the rule "re-send a command only while it is unsent; otherwise
 * tell the caller it failed". ioredis reports these cases only through error classes and messages, so
 * this module is the one place that reads them; its unit test pins the messages to the ioredis version
 * in the lockfile.
 *
 * - `not-sent`: the offline queue is off and the connection was not writable: nothing reached Redis, so
 *   sending it again later is safe.
 * - `aborted`: the connection dropped after the command was written and before its reply: it may or may
 *   not have run. Only an idempotent command may be sent again.
 * - `closed`: the client was closed for good (or closed with the command in flight).
 * - `reply`: Redis itself refused the command (OOM, NOPERM, WRONGTYPE, a script error, …): sending it
 *   again would not help.
 * - `other`: anything else (a BusMQ error passed through, a socket error).
 */
export type RedisFailure = 'not-sent' | 'aborted' | 'closed' | 'reply' | 'other'

/** ioredis 5: a command issued while the connection is not writable and enableOfflineQueue is false. */
export const NOT_SENT_MESSAGES = [
  "Stream isn't writeable and enableOfflineQueue options is false",
  "Cluster isn't ready and enableOfflineQueue options is false"
] as const
/** ioredis 5: commands written to a connection that closed before their replies (an AbortError). */
export const ABORTED_MESSAGE = 'Command aborted due to connection close'
/** ioredis 5: the client ended (status "end"); pending commands are flushed with it. */
export const CLOSED_MESSAGE = 'Connection is closed.'

export function classify (err: unknown): RedisFailure {
  if (!(err instanceof Error)) return 'other'
  if (isBusMQError(err)) return 'other'
  if (err.name === 'ReplyError') return 'reply'
  if ((NOT_SENT_MESSAGES as readonly string[]).includes(err.message)) return 'not-sent'
  // MaxRetriesPerRequestError extends AbortError: it flushes commands that were written too.
  if (err.name === 'AbortError' || err.name === 'MaxRetriesPerRequestError' || err.message === ABORTED_MESSAGE) return 'aborted'
  if (err.message === CLOSED_MESSAGE || err.message === 'Cluster is disconnected.' || err.message === 'Cluster is disconnecting.') {
    return 'closed'
  }
  return 'other'
}

/** True when the command can be sent again: it never left, or it is idempotent and may have run once. */
export function retryable (err: unknown, idempotent: boolean): boolean {
  const kind = classify(err)
  return kind === 'not-sent' || (idempotent && kind === 'aborted')
}

/**
 * A coded BusMQ error for a failed call on shard `shardId`: Redis's refusals become `ERR_BUSMQ_REDIS`
 * (with Redis's own text, for example the NOPERM reason), connection failures
 * `ERR_BUSMQ_SHARD_UNAVAILABLE`. BusMQ errors pass through unchanged.
 */
export function wrapRedisError (err: unknown, shardId: string): Error {
  if (!(err instanceof Error)) return new RedisCommandError(`shard ${shardId}: ${String(err)}`, { cause: err })
  if (isBusMQError(err)) return err
  // A failed MULTI reports EXECABORT and keeps the reasons (NOPERM, …) in previousErrors.
  const previous = (err as { previousErrors?: Error[] }).previousErrors
  if (err.name === 'ReplyError') {
    const reason = previous && previous.length > 0 ? previous.map((e) => e.message).join('; ') : err.message
    return new RedisCommandError(`shard ${shardId}: ${reason}`, { cause: err })
  }
  const kind = classify(err)
  if (kind === 'aborted') {
    return new ShardUnavailableError(`shard ${shardId}: the connection was lost before the reply (the command may or may ` +
      'not have been applied)', { cause: err })
  }
  if (kind !== 'other' || /ETIMEDOUT|ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EHOSTUNREACH|timed out/i.test(`${(err as { code?: string }).code ?? ''} ${err.message}`)) {
    return new ShardUnavailableError(`shard ${shardId} is unavailable: ${err.message}`, { cause: err })
  }
  return err
}
