// Largest script call a producer sends: messages and bytes per round trip (a module of its own, so the
// classic browser build can use them without the producer's Node-only imports).
export const MAX_BATCH_COUNT = 1000
export const MAX_BATCH_BYTES = 4 * 1024 * 1024
