// busmq/classic: BusMQ 3.1's API (callbacks and events) as a thin layer over the native API, so a 3.1
// application switches by changing its require/import. `import Bus from 'busmq/classic'` and
// `require('busmq/classic')` give the same object: `{ create, ... }`, like 3.1's `require('busmq')`.
import { ClassicBus } from './classic-bus.js'
import type { ClassicBusOptions } from './classic-options.js'

/** BusMQ 3.1's `Bus.create(options)`: a bus; call `connect()`, then use it once `online`. */
export function create (options: ClassicBusOptions = {}): ClassicBus {
  return new ClassicBus(options)
}

export { ClassicBus }
export { ClassicQueue } from './classic-queue.js'
export type { ClassicAttachOptions, ClassicConsumeOptions } from './classic-queue.js'
export { ClassicChannel } from './classic-channel.js'
export type { ClassicChannelOptions } from './classic-channel.js'
export { ClassicPubsub } from './classic-pubsub.js'
export { ClassicService } from './classic-service.js'
export type { ClassicReply, ClassicServeOptions, ClassicConnectOptions, ClassicRequestOptions } from './classic-service.js'
export type { Persistable, PersistableMethods } from './persistable.js'
export { ClassicFederation } from './classic-federation.js'
export type { ClassicBusOptions, ClassicLayout, ClassicLog, ClassicLogLevel, ClassicFederateOptions, ClassicVerifyClient, ClassicVerifyInfo } from './classic-options.js'
export { ClassicUsageError, ClassicUnsupportedError } from '../errors.js'

/** The module's face in 3.1 style: `Bus.create(options)`. */
const Bus = { create, ClassicBus }
export default Bus
