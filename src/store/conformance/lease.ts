// Conformance: leases: keys attached to one vanish (with delete events) when it is revoked or expires; kept alive, it lasts.
import assert from 'node:assert/strict';
import { Codes } from '../../lib/errors.js';
import { record, seconds, storeTest, waitFor, type StoreUnderTest } from './harness.js';

/** etcd's smallest TTL (it raises smaller ones to this). */
const TTL = 2;

export function leaseConformance(sut: StoreUnderTest) {
  storeTest(sut, 'revoking a lease deletes its keys, one delete event each, and aborts its signal', async (s) => {
    const lease = await s.grantLease(TTL);
    assert.match(lease.id, /^[1-9][0-9]*$/);
    assert.ok(lease.ttlSeconds >= TTL);
    await s.put('/l/a', 1, { lease: lease.id });
    await s.txn({ then: [{ put: '/l/b', value: 2, lease: lease.id }, { put: '/l/keep', value: 3 }] });
    assert.equal((await s.get('/l/a'))?.lease, lease.id);
    assert.equal((await s.get('/l/keep'))?.lease, undefined);
    const w = record(s, '/l/', { afterRevision: await s.revision() });
    await lease.revoke();
    assert.ok(lease.signal.aborted);
    await waitFor('two delete events', () => w.events.length === 2);
    w.stop();
    assert.deepEqual(w.keys().sort(), ['delete /l/a', 'delete /l/b']);
    assert.equal(w.events[0].modRevision, w.events[1].modRevision);
    assert.deepEqual((await s.list('/l/')).map((kv) => kv.key), ['/l/keep']);
    await assert.rejects(s.put('/l/c', 1, { lease: lease.id }), (e: { code?: string }) => e.code === Codes.LeaseNotFound);
  });

  storeTest(sut, 'a put without a lease detaches the key from its lease', async (s) => {
    const lease = await s.grantLease(TTL);
    await s.put('/d/k', 1, { lease: lease.id });
    await s.put('/d/k', 2);
    await lease.revoke();
    assert.deepEqual((await s.get('/d/k'))?.value, 2);
  });

  storeTest(sut, 'a lease kept alive outlives its TTL', async (s) => {
    const lease = await s.grantLease(TTL);
    await s.put('/ka/k', 1, { lease: lease.id });
    // Nothing to wait for here: the point is that nothing happens for two TTLs.
    await seconds(lease.ttlSeconds * 2);
    assert.equal((await s.get('/ka/k'))?.lease, lease.id);
    assert.equal(lease.signal.aborted, false);
    await lease.revoke();
  });

  storeTest(sut, 'when its holder goes away, a lease expires after its TTL and its keys are deleted with events', async (s, open) => {
    const holder = await open();
    const lease = await holder.grantLease(TTL);
    await holder.put('/ex/k', 'held', { lease: lease.id });
    const w = record(s, '/ex/', { afterRevision: await s.revision() });
    const t0 = Date.now();
    await holder.close(); // as a crash would: no revoke, no more keep-alives
    await waitFor('the delete event', () => w.events.length === 1, (lease.ttlSeconds + 5) * 1000);
    const took = Date.now() - t0;
    w.stop();
    assert.deepEqual(w.keys(), ['delete /ex/k']);
    assert.equal(await s.get('/ex/k'), undefined);
    assert.ok(took >= (lease.ttlSeconds - 1) * 1000, `expired after ${took} ms, before its TTL of ${lease.ttlSeconds} s`);
  });
}
