// Runs the Store conformance suite against SQLite, plus what only a file-backed store must show.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { storeConformance } from './conformance.js';
import { SqliteStore } from './sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

storeConformance('sqlite', async () => new SqliteStore(join(dir, `s${n++}.db`)));

test('sqlite: data written by one handle is there after reopening the file', async () => {
  const path = join(dir, 'reopen.db');
  const a = new SqliteStore(path);
  await a.put('/k', { v: 1 });
  await a.close();
  const b = new SqliteStore(path);
  assert.deepEqual((await b.get('/k'))?.value, { v: 1 });
  assert.ok((await b.revision()) >= 1);
  await b.close();
});
