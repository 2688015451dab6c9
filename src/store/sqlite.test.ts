// Runs the Store conformance suite against SQLite, plus what only a file-backed store must show.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { storeConformance } from './conformance/index.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const pathOf = (s: Store) => (s as SqliteStore).path;

storeConformance({
  name: 'sqlite',
  fresh: async () => new SqliteStore(join(dir, `s${n++}.db`)),
  reopen: async (s) => new SqliteStore(pathOf(s)),
  url: (s) => pathOf(s),
});

test('sqlite: a file from before watches could resume opens, keeps its data, and watches from its revision on', async () => {
  const path = join(dir, 'old.db');
  const old = new Database(path);
  old.exec(`
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, n) VALUES ('revision', 7);
    INSERT INTO kv VALUES ('/groups/a', '{"v":1}', 7, 3);
  `);
  old.close();
  const s = new SqliteStore(path);
  try {
    assert.deepEqual(await s.get('/groups/a'), { key: '/groups/a', value: { v: 1 }, modRevision: 7, createRevision: 3 });
    assert.equal(await s.revision(), 7);
    const events: string[] = [];
    const errors: string[] = [];
    s.watch('/groups/', (e) => events.push(`${e.type} ${e.key} ${e.modRevision}`), { afterRevision: 7 });
    s.watch('/groups/', () => undefined, { afterRevision: 6, onError: (e) => errors.push(e.code) });
    await s.put('/groups/a', { v: 2 });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['put /groups/a 8']);
    assert.deepEqual(errors, ['Compacted']);
  } finally {
    await s.close();
  }
});

test('sqlite: history beyond retainRevisions is compacted by itself', async () => {
  const s = new SqliteStore(join(dir, 'retain.db'), { retainRevisions: 100 });
  try {
    for (let i = 0; i < 1100; i++) await s.put('/k', i);
    const errors: string[] = [];
    await new Promise<void>((resolve) => {
      s.watch('/', () => undefined, { afterRevision: 500, onError: (e) => (errors.push(e.code), resolve()) });
    });
    assert.deepEqual(errors, ['Compacted']);
  } finally {
    await s.close();
  }
});
