// The CommonJS entry of busmq/classic: `require('busmq/classic')` is the same object as the ES module's
// default export (`{ create, ClassicBus }`), as 3.1's `require('busmq')` was `{ create }`. It loads the ES
// module with require(), which Node ^20.19 and >= 22.12 do natively.
import classic = require('./index.js')
export = classic.default
