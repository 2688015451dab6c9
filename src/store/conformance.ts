// The Store conformance suite: every Store backend (SQLite now, etcd later) must pass it unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Store, WatchEvent } from './store.js';

export function storeConformance(name: string, open: () => Promise<Store>) {
  const withStore = (title: string, fn: (s: Store) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const s = await open();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  withStore('get of a missing key is undefined', async (s) => {
    assert.equal(await s.get('/nope'), undefined);
  });

  withStore('put then get round-trips JSON and revisions grow', async (s) => {
    const r1 = await s.put('/a', { x: 1, nested: ['y'] });
    const r2 = await s.put('/a', { x: 2 });
    assert.ok(r2 > r1);
    const kv = await s.get<{ x: number }>('/a');
    assert.deepEqual(kv?.value, { x: 2 });
    assert.equal(kv?.modRevision, r2);
    assert.equal(kv?.createRevision, r1);
    assert.equal(await s.revision(), r2);
  });

  withStore('list is by prefix, sorted, pageable, and does not leak neighbours', async (s) => {
    for (const k of ['/g/b', '/g/a', '/g/c', '/ga', '/h/a']) await s.put(k, k);
    assert.deepEqual((await s.list('/g/')).map((kv) => kv.key), ['/g/a', '/g/b', '/g/c']);
    assert.deepEqual((await s.list('/g/', { limit: 2 })).map((kv) => kv.key), ['/g/a', '/g/b']);
    assert.deepEqual((await s.list('/g/', { startAfter: '/g/b' })).map((kv) => kv.key), ['/g/c']);
    assert.equal((await s.list('/')).length, 5);
  });

  withStore('delete reports whether the key existed', async (s) => {
    await s.put('/d', 1);
    assert.equal(await s.delete('/d'), true);
    assert.equal(await s.delete('/d'), false);
    assert.equal(await s.get('/d'), undefined);
  });

  withStore('txn applies all ops only when every compare holds', async (s) => {
    assert.equal(await s.txn([{ key: '/t', modRevision: 0 }], [{ put: '/t', value: 1 }, { put: '/u', value: 2 }]), true);
    // create-if-absent fails the second time and changes nothing
    assert.equal(await s.txn([{ key: '/t', modRevision: 0 }], [{ put: '/t', value: 9 }, { delete: '/u' }]), false);
    assert.equal((await s.get('/t'))?.value, 1);
    assert.equal((await s.get('/u'))?.value, 2);
    const rev = (await s.get('/t'))!.modRevision;
    assert.equal(await s.txn([{ key: '/t', modRevision: rev }], [{ put: '/t', value: 3 }, { delete: '/u' }]), true);
    assert.equal((await s.get('/t'))?.value, 3);
    assert.equal(await s.get('/u'), undefined);
  });

  withStore('concurrent compare-and-swap: exactly one writer wins', async (s) => {
    await s.put('/c', 0);
    const rev = (await s.get('/c'))!.modRevision;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => s.txn([{ key: '/c', modRevision: rev }], [{ put: '/c', value: i + 1 }])),
    );
    assert.equal(results.filter(Boolean).length, 1);
  });

  withStore('watch sees puts and deletes under its prefix, in order, and stops when cancelled', async (s) => {
    const seen: WatchEvent[] = [];
    const stop = s.watch('/w/', (e) => seen.push(e));
    await s.put('/w/1', 'a');
    await s.put('/x/1', 'ignored');
    await s.txn([], [{ put: '/w/2', value: 'b' }, { delete: '/w/1' }]);
    // Delivery may be asynchronous (etcd): wait briefly for it.
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    await s.put('/w/3', 'after');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen.map((e) => [e.type, e.key]), [['put', '/w/1'], ['put', '/w/2'], ['delete', '/w/1']]);
    assert.equal(seen[0].value, 'a');
  });
}
