// Compiled with `tsc --noEmit --strict` by types.test.mjs: the package's
// .d.ts must accept this code, and refuse each line marked @ts-expect-error.
import {
  connect,
  Database,
  type CanhazdbError,
  type CloseDetail,
  type Document,
  type NodeInfo,
  type Query,
} from '../../pkg/canhazdb_wasm.js';

export async function usage(): Promise<void> {
  const db: Database = await connect('ws://127.0.0.1:7061', { timeout: 5000 });
  await connect('ws://127.0.0.1:7061');

  const doc: Document = await db.post('notes', { text: 'hi', tags: ['a'], meta: { n: 1 } });
  const id: string = doc.id;
  await db.post('notes', { id: 'x' }, { lockId: 'lock', lockStrategy: 'fail' });

  const query: Query = { age: { $gt: 1, $in: [1, 2] }, $or: [{ name: 'a' }, { 'address.zip': { $exists: true } }] };
  const docs: Document[] = await db.get('notes', { query, fields: ['text'], order: ['asc(text)'], limit: 10 });
  const one: Document | null = await db.getOne('notes', { query: { id }, order: 'desc(text)' });
  const count: number = await db.count('notes', { query: { text: 'hi' } });
  const put: string[] = await db.put('notes', { text: 'new' }, { query: { id }, lockStrategy: 'wait' });
  const patched: string[] = await db.patch('notes', { done: true });
  const deleted: string[] = await db.delete('notes', { query: { id }, lockStrategy: 64 });
  const lockId: string = await db.lock('notes');
  await db.unlock(lockId);
  const info: NodeInfo = await db.info();
  const port: number = info.nodes[0].port;

  const handler = (path: string, collectionId: string, documentId: string, pattern: string): void => {
    console.log(path, collectionId, documentId, pattern);
  };
  await db.on('^POST:/notes/', handler);
  await db.off('^POST:/notes/', handler);
  await db.off('^POST:/notes/');

  db.addEventListener('close', (event) => {
    const detail: CloseDetail = event.detail;
    const code: number = detail.code;
    const error: CanhazdbError | undefined = detail.error;
    console.log(code, detail.reason, detail.wasClean, detail.requested, error?.status, error?.kind);
  });
  const closed: boolean = db.closed;
  await db.close();

  try {
    await db.count('notes');
  } catch (caught) {
    const error = caught as CanhazdbError;
    const kind: 'server' | 'invalid' | 'disconnected' | 'protocol' = error.kind;
    const status: number | undefined = error.status;
    console.log(kind, status, error.statusName, error.message);
  }
  console.log(docs, one, count, put, patched, deleted, port, closed);

  // @ts-expect-error: the collection id is a string
  await db.get(42);
  // @ts-expect-error: documents are JSON objects
  await db.post('notes', 'text');
  // @ts-expect-error: no such lock strategy
  await db.post('notes', {}, { lockStrategy: 'sometimes' });
  // @ts-expect-error: limit is a number
  await db.get('notes', { limit: '10' });
  // @ts-expect-error: an unknown option
  await db.count('notes', { limit: 1 });
  // @ts-expect-error: getOne takes no limit
  await db.getOne('notes', { limit: 2 });
  // @ts-expect-error: a document's id is a string, not a number
  const wrongId: number = doc.id;
  // @ts-expect-error: notify handlers receive strings
  await db.on('x', (path: number) => path);
  // @ts-expect-error: only 'close' events
  db.addEventListener('open', () => {});
  // @ts-expect-error: count resolves to a number
  const notString: string = await db.count('notes');
  // @ts-expect-error: JSON values only
  await db.post('notes', { when: new Date() });
  console.log(wrongId, notString);
}
