export * from './redis-server.js'
export * from './cluster.js'
export * from './sentinel.js'
