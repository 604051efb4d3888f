/**
 * Payload types of the public API (type-level only). Queues, channels and pub/sub topics take a type
 * parameter `T`, the type of their messages as readers see them: the decoded value in objectMode
 * (`bus.queue<Order>('orders', { objectMode: true })`), a `Buffer` in byte mode.
 */

/** What a byte-mode producer accepts: each chunk is one message, read back as a Buffer of the same bytes. */
export type Bytes = Buffer | Uint8Array | string

/**
 * What producers (`write`, `push`, `publish`) accept for messages read back as `T`: any {@link Bytes}
 * when `T` is `Buffer` (byte mode), else `T` itself (`any` stays `any`).
 */
export type MessageInput<T> = 0 extends (1 & T) ? any : [T] extends [Buffer] ? Bytes : T
