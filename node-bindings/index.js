'use strict'
// Loads the native addon (built by `npm run build`, shipped in the package).
const { join } = require('node:path')
const { existsSync } = require('node:fs')

const BINARY = 'canhazdb.linux-x64-gnu.node'

function load () {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`canhazdb: no native build for ${process.platform}-${process.arch}; this package ships linux-x64 (glibc) only`)
  }
  const file = join(__dirname, BINARY)
  if (!existsSync(file)) {
    throw new Error(`canhazdb: ${BINARY} is missing; build it with \`npm run build\` in node-bindings/`)
  }
  return require(file)
}

module.exports = load()
