// ESM entry: the same native module as index.js, with named exports.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('./index.js')

export const {
  createServer,
  createClient,
  createCertificates,
  Server,
  Client,
  STATUS_OK,
  STATUS_BAD_REQUEST,
  STATUS_NOT_FOUND,
  STATUS_CREATED,
  STATUS_SERVER_ERROR,
  STATUS_SERVER_UNHEALTHY,
  STATUS_SERVER_CLOSED,
  STATUS_LOCKED,
  LOCK_STRATEGY_FAIL,
  LOCK_STRATEGY_WAIT
} = native

export default native
