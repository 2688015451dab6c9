// Unit tests of the --store URL: what each form opens, and the clear errors of the malformed ones.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Codes } from '../lib/errors.js';
import { openStore, parseStoreUrl } from './open.js';
import { SqliteStore } from './sqlite.js';

test('etcd URLs give the endpoints and the key prefix', () => {
  assert.deepEqual(parseStoreUrl('etcd://127.0.0.1:2379'), { kind: 'etcd', endpoints: ['127.0.0.1:2379'], prefix: '' });
  assert.deepEqual(parseStoreUrl('etcd://a.example:2379,b.example:2379,[::1]:2380/berth/'), {
    kind: 'etcd', endpoints: ['a.example:2379', 'b.example:2379', '[::1]:2380'], prefix: '/berth',
  });
  assert.deepEqual(parseStoreUrl('ETCD://h:1/p'), { kind: 'etcd', endpoints: ['h:1'], prefix: '/p' });
});

test('a path, sqlite:PATH or sqlite://PATH is a SQLite file', () => {
  assert.deepEqual(parseStoreUrl('/var/lib/berth/berth.db'), { kind: 'sqlite', path: '/var/lib/berth/berth.db' });
  assert.deepEqual(parseStoreUrl('sqlite:rel/berth.db'), { kind: 'sqlite', path: 'rel/berth.db' });
  assert.deepEqual(parseStoreUrl('sqlite:///abs/berth.db'), { kind: 'sqlite', path: '/abs/berth.db' });
  assert.deepEqual(parseStoreUrl(':memory:'), { kind: 'sqlite', path: ':memory:' });
});

test('malformed store URLs are refused, saying what is wrong', () => {
  const refused = (url: string, why: RegExp) =>
    assert.throws(() => parseStoreUrl(url), (e: { code?: string; message?: string; target?: string }) =>
      e.code === Codes.InvalidRequestContent && e.target === 'store' && why.test(e.message ?? ''));
  refused('etcd://', /'' is not host:port/);
  refused('etcd://127.0.0.1', /'127.0.0.1' is not host:port/);
  refused('etcd://h:2379,', /'' is not host:port/);
  refused('etcd://h:0', /port 0 is out of range/);
  refused('etcd://h:70000', /port 70000 is out of range/);
  refused('etcd://user@h:2379', /is not host:port/);
  refused('https://h:2379', /'https:\/\/' is not a store/);
  refused('sqlite:', /no file path/);
  refused('', /no file path/);
});

test('openStore opens a SQLite file for a path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-open-'));
  try {
    const s = await openStore(join(dir, 'sub', 'x.db'));
    assert.ok(s instanceof SqliteStore);
    await s.put('/k', 1);
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
