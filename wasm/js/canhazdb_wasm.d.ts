// canhazdb for browsers and Node.js. The package loads its .wasm when first
// imported; then `connect` is ready to call.
export { connect, Database } from './canhazdb_wasm_bindings.js';
export type {
  CanhazdbError,
  CloseDetail,
  CloseListener,
  ConnectOptions,
  Document,
  FieldOperators,
  GetOptions,
  Json,
  JsonObject,
  LockOptions,
  LockStrategy,
  NodeInfo,
  NotifyHandler,
  Order,
  PostOptions,
  Query,
  QueryOptions,
  WriteOptions,
} from './canhazdb_wasm_bindings.js';
