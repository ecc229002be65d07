// Node.js 22+ has a global WebSocket; Node.js 20 has it behind
// --experimental-websocket. Without either, the `ws` package stands in.
if (typeof globalThis.WebSocket !== 'function') {
  const { WebSocket } = await import('ws');
  globalThis.WebSocket = WebSocket;
}
