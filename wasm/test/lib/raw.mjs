// Raw protocol frames over a plain WebSocket, to test the server's WebSocket
// transport itself (text messages, bad framing, oversized messages).
export const STATUS = {
  OK: 120, BAD_REQUEST: 121, NOT_FOUND: 122, CREATED: 123,
  SERVER_ERROR: 124, SERVER_UNHEALTHY: 125, SERVER_CLOSED: 126, LOCKED: 127,
};
export const COMMAND = { INFO: 30, COUNT: 31, GET: 32, POST: 33, READY: 160, NOTIFY: 50 };

/** One frame: id (u16 LE), command, JSON payload, 0x01. */
export function frame(id, command, payload) {
  const body = payload === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(payload));
  const bytes = new Uint8Array(body.length + 4);
  bytes[0] = id & 0xff;
  bytes[1] = id >> 8;
  bytes[2] = command;
  bytes.set(body, 3);
  bytes[bytes.length - 1] = 1;
  return bytes;
}

/** Decodes one frame (a binary message). */
export function parseFrame(data) {
  const bytes = new Uint8Array(data);
  if (bytes.length < 4 || bytes[bytes.length - 1] !== 1) throw new Error(`not a frame: ${bytes}`);
  const text = new TextDecoder().decode(bytes.subarray(3, bytes.length - 1));
  return { id: bytes[0] | (bytes[1] << 8), command: bytes[2], payload: text ? JSON.parse(text) : null };
}

/**
 * A WebSocket with an awaitable message queue. `options.WebSocket`: the
 * class to use instead of the global one (see lib/tls.mjs for client certificates).
 */
export async function rawSocket(url, { WebSocket: Socket = globalThis.WebSocket } = {}) {
  const socket = new Socket(url);
  socket.binaryType = 'arraybuffer';
  const queue = [];
  const waiters = [];
  let closeInfo = null;
  const closed = new Promise((resolve) => {
    socket.addEventListener('close', (event) => {
      closeInfo = { code: event.code, reason: event.reason };
      resolve(closeInfo);
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`socket closed (${event.code} ${event.reason})`));
    });
  });
  socket.addEventListener('message', (event) => {
    const message = typeof event.data === 'string' ? { text: event.data } : parseFrame(event.data);
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(message);
    else queue.push(message);
  });
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot open ${url}`)), { once: true });
  });
  return {
    socket,
    closed,
    send: (data) => socket.send(data),
    next(ms = 5_000) {
      if (queue.length) return Promise.resolve(queue.shift());
      if (closeInfo) return Promise.reject(new Error(`socket closed (${closeInfo.code})`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
        waiters.push({
          resolve: (m) => { clearTimeout(timer); resolve(m); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
      });
    },
    close: () => socket.close(),
  };
}
