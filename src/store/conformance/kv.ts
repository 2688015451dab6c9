// Conformance: keys, values, revisions, listing and transactions.
import assert from 'node:assert/strict';
import { Codes } from '../../lib/errors.js';
import { storeTest, type StoreUnderTest } from './harness.js';

const hasCode = (code: string) => (e: unknown) => (e as { code?: string }).code === code;

export function kvConformance(sut: StoreUnderTest) {
  storeTest(sut, 'get of a missing key is undefined', async (s) => {
    assert.equal(await s.get('/nope'), undefined);
  });

  storeTest(sut, 'put then get round-trips JSON; revisions grow; createRevision stays', async (s) => {
    const r1 = await s.put('/a', { x: 1, nested: ['y'], n: null, t: true });
    const r2 = await s.put('/a', { x: 2 });
    assert.ok(r2 > r1);
    const kv = await s.get<{ x: number }>('/a');
    assert.deepEqual(kv?.value, { x: 2 });
    assert.equal(kv?.modRevision, r2);
    assert.equal(kv?.createRevision, r1);
    assert.equal(kv?.lease, undefined);
    assert.equal(await s.revision(), r2);
    // a serializable read is the same read here (one member, or the writer's own): what was written, at its revision
    assert.deepEqual(await s.get('/a', { serializable: true }), kv);
    assert.equal(await s.get('/nope', { serializable: true }), undefined);
    for (const v of ['text', 42, [1, 'two'], null, false]) {
      await s.put('/scalar', v);
      assert.deepEqual((await s.get('/scalar'))?.value, v);
    }
  });

  storeTest(sut, 'list is by prefix, sorted in byte order, pageable, and says the revision it read at', async (s) => {
    for (const k of ['/g/b', '/g/a', '/g/c', '/ga', '/h/a', '/g/é', '/g/Z']) await s.put(k, k);
    const all = await s.list('/g/');
    assert.deepEqual(all.map((kv) => kv.key), ['/g/Z', '/g/a', '/g/b', '/g/c', '/g/é']);
    assert.equal(all.revision, await s.revision());
    assert.deepEqual((await s.list('/g/', { limit: 2 })).map((kv) => kv.key), ['/g/Z', '/g/a']);
    assert.deepEqual((await s.list('/g/', { startAfter: '/g/b' })).map((kv) => kv.key), ['/g/c', '/g/é']);
    assert.deepEqual((await s.list('/g/', { startAfter: '/g/b', limit: 1 })).map((kv) => kv.key), ['/g/c']);
    assert.equal((await s.list('/')).length, 7);
    assert.deepEqual(await s.list('/none/'), Object.assign([], { revision: all.revision }));
  });

  storeTest(sut, 'many keys: paging with startAfter and limit visits each exactly once', async (s) => {
    const n = 1200;
    // 100 keys per transaction: within etcd's 128 operations
    for (let i = 0; i < n; i += 100)
      await s.txn({ then: Array.from({ length: 100 }, (_, j) => ({ put: `/many/${String(i + j).padStart(5, '0')}`, value: { i: i + j } })) });
    assert.equal((await s.list('/many/')).length, n);
    const seen: string[] = [];
    let startAfter: string | undefined;
    for (;;) {
      const page = await s.list('/many/', { startAfter, limit: 250 });
      if (page.length === 0) break;
      seen.push(...page.map((kv) => kv.key));
      startAfter = page[page.length - 1].key;
    }
    assert.equal(seen.length, n);
    assert.equal(new Set(seen).size, n);
    assert.deepEqual(seen, [...seen].sort());
  });

  storeTest(sut, 'a value of 1 MiB round-trips', async (s) => {
    const big = { blob: 'x'.repeat(1 << 20), tail: 'end' };
    await s.put('/big', big);
    assert.deepEqual((await s.get('/big'))?.value, big);
    assert.deepEqual((await s.list('/big'))[0].value, big);
  });

  storeTest(sut, 'delete reports whether the key existed, and deleting nothing writes nothing', async (s) => {
    await s.put('/d', 1);
    const before = await s.revision();
    assert.equal(await s.delete('/d'), true);
    assert.equal(await s.revision(), before + 1);
    assert.equal(await s.delete('/d'), false);
    assert.equal(await s.revision(), before + 1);
    assert.equal(await s.get('/d'), undefined);
  });

  storeTest(sut, 'txn applies every op at one revision only when every compare holds', async (s) => {
    const created = await s.txn({ if: [{ key: '/t', modRevision: 0 }], then: [{ put: '/t', value: 1 }, { put: '/u', value: 2 }] });
    assert.equal(created.succeeded, true);
    assert.equal((await s.get('/t'))?.modRevision, created.revision);
    assert.equal((await s.get('/u'))?.modRevision, created.revision);
    // create-if-absent fails the second time and changes nothing
    const again = await s.txn({ if: [{ key: '/t', modRevision: 0 }], then: [{ put: '/t', value: 9 }, { delete: '/u' }] });
    assert.deepEqual(again, { succeeded: false, revision: created.revision });
    assert.equal((await s.get('/t'))?.value, 1);
    assert.equal((await s.get('/u'))?.value, 2);
    const rev = (await s.get('/t'))!.modRevision;
    const swapped = await s.txn({ if: [{ key: '/t', modRevision: rev }], then: [{ put: '/t', value: 3 }, { delete: '/u' }] });
    assert.equal(swapped.succeeded, true);
    assert.equal(swapped.revision, created.revision + 1);
    assert.equal((await s.get('/t'))?.value, 3);
    assert.equal(await s.get('/u'), undefined);
    // no ops: nothing to write, the revision stays
    assert.deepEqual(await s.txn({ if: [{ key: '/t', exists: true }], then: [] }), { succeeded: true, revision: swapped.revision });
  });

  storeTest(sut, 'txn compares on createRevision, value and existence', async (s) => {
    const r1 = await s.put('/c', { v: 1 });
    await s.put('/c', { v: 2 });
    const holds = async (c: Parameters<typeof s.txn>[0]['if']) => (await s.txn({ if: c, then: [{ put: '/probe', value: 0 }] })).succeeded;
    assert.equal(await holds([{ key: '/c', createRevision: r1 }]), true);
    assert.equal(await holds([{ key: '/c', createRevision: r1 + 1 }]), false);
    assert.equal(await holds([{ key: '/missing', createRevision: 0 }]), true);
    assert.equal(await holds([{ key: '/c', value: { v: 2 } }]), true);
    assert.equal(await holds([{ key: '/c', value: { v: 1 } }]), false);
    assert.equal(await holds([{ key: '/missing', value: null }]), false);
    assert.equal(await holds([{ key: '/c', exists: true }]), true);
    assert.equal(await holds([{ key: '/c', exists: false }]), false);
    assert.equal(await holds([{ key: '/missing', exists: false }]), true);
    // all must hold
    assert.equal(await holds([{ key: '/c', exists: true }, { key: '/missing', exists: true }]), false);
    // a deleted and re-created key is a new incarnation
    await s.delete('/c');
    await s.put('/c', { v: 2 });
    assert.equal(await holds([{ key: '/c', createRevision: r1 }]), false);
  });

  storeTest(sut, 'txn refuses to change one key twice, and a failing op leaves nothing half-done', async (s) => {
    await assert.rejects(s.txn({ then: [{ put: '/k', value: 1 }, { delete: '/k' }] }), hasCode(Codes.InvalidRequestContent));
    assert.equal(await s.get('/k'), undefined);
    const before = await s.revision();
    await assert.rejects(s.txn({ then: [{ put: '/first', value: 1 }, { put: '/k', value: 1, lease: '12345' }] }), hasCode(Codes.LeaseNotFound));
    assert.equal(await s.get('/first'), undefined);
    assert.equal(await s.revision(), before);
  });

  storeTest(sut, 'a txn of 100 ops applies whole', async (s) => {
    const res = await s.txn({ then: Array.from({ length: 100 }, (_, i) => ({ put: `/ops/${i}`, value: i })) });
    const listed = await s.list('/ops/');
    assert.equal(listed.length, 100);
    assert.ok(listed.every((kv) => kv.modRevision === res.revision));
  });

  storeTest(sut, 'concurrent compare-and-swap: exactly one writer wins', async (s) => {
    await s.put('/c', 0);
    const rev = (await s.get('/c'))!.modRevision;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => s.txn({ if: [{ key: '/c', modRevision: rev }], then: [{ put: '/c', value: i + 1 }] })),
    );
    assert.equal(results.filter((r) => r.succeeded).length, 1);
  });

  storeTest(sut, 'what one handle wrote is there for another, and after closing and reopening', async (s, open) => {
    await s.put('/k', { v: 1 });
    const other = await open();
    assert.deepEqual((await other.get('/k'))?.value, { v: 1 });
    await other.put('/k', { v: 2 });
    assert.deepEqual((await s.get('/k'))?.value, { v: 2 });
    assert.equal(await s.revision(), await other.revision());
  });
}
