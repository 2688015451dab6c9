// The control plane's side of a host's link over a real SQLite store: specs followed from a revision (a reset when it cannot resume), statuses in batches, what a restarted host resumes from.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SpecEvent } from '../../agent/link.js';
import type { GroupStatus } from '../../agent/types.js';
import { SqliteStore } from '../../store/sqlite.js';
import { hostLeaseKey, hostSpecKey, removingKey, statusKey } from '../keys.js';
import { HostGateway, STATUS_BATCH, statusBatches } from './gateway.js';

const placed = (uid: string, generation = 1) => ({ uid, generation, spec: { hostname: uid } });
const status = (uid: string, o: Partial<GroupStatus> = {}): GroupStatus => ({ uid, generation: 1, provisioning: 'Succeeded', state: 'Running', containers: {}, events: [], ...o });

/** Follows `host`'s specs from `from`, recording the events. */
function follow(g: HostGateway, host: string, from: number) {
  const events: SpecEvent[] = [];
  const errors: Error[] = [];
  const stop = g.watchSpecs(host, from, (e) => events.push(e), (e) => errors.push(e));
  const seen = (n: number) => new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 5000;
    const check = () => (events.length >= n ? resolve() : Date.now() > deadline ? reject(new Error(`${events.length} events of ${n}`)) : setTimeout(check, 5));
    check();
  });
  return { events, errors, stop, seen };
}

test("a host's specs: the whole set first, then each change in order; from a revision, only what came after; a compacted one, the set again", async () => {
  const store = new SqliteStore(':memory:');
  const g = new HostGateway(store, { onRemoved: async () => undefined });
  await store.put(hostSpecKey('h1', 'a'), placed('a'));
  await store.put(hostSpecKey('h2', 'x'), placed('x'));
  const first = follow(g, 'h1', 0);
  await first.seen(1);
  assert.deepEqual(first.events[0], { type: 'reset', revision: await store.revision(), specs: [placed('a')] });
  await store.put(hostSpecKey('h1', 'b'), placed('b'));
  const afterB = await store.revision();
  await store.put(hostSpecKey('h2', 'y'), placed('y'));
  await store.delete(hostSpecKey('h1', 'a'));
  await first.seen(3);
  assert.deepEqual(first.events.slice(1).map((e) => e.type === 'put' ? `put ${e.placed.uid}` : e.type === 'delete' ? `delete ${e.uid}` : 'reset'), ['put b', 'delete a'], "another host's specs are not this host's");

  const resumed = follow(g, 'h1', afterB);
  await resumed.seen(1);
  assert.deepEqual(resumed.events.map((e) => e.type), ['delete'], 'from a revision: what came after it, no set');

  await store.put(hostSpecKey('h1', 'c'), placed('c', 2));
  await store.compact(await store.revision());
  const compacted = follow(g, 'h1', afterB);
  await compacted.seen(1);
  assert.deepEqual(compacted.events[0], { type: 'reset', revision: await store.revision(), specs: [placed('b'), placed('c', 2)] });
  assert.deepEqual(compacted.errors, []);
  for (const f of [first, resumed, compacted]) f.stop();
  await store.close();
});

test('statuses go in batches within what one etcd transaction carries, those of groups not placed on the host refused', async () => {
  const big = status('big', { events: [{ count: 1, firstTimestamp: '', lastTimestamp: '', name: 'x', message: 'm'.repeat(STATUS_BATCH.bytes / 3), type: 'Normal' }] });
  const batches = statusBatches([...Array.from({ length: 130 }, (_, i) => status(`s${i}`)), big, big, big, big]);
  assert.deepEqual(batches.map((b) => b.length), [60, 60, 12, 2]);
  for (const b of batches) assert.ok(b.length <= STATUS_BATCH.count && b.reduce((n, s) => n + JSON.stringify(s).length, 0) <= STATUS_BATCH.bytes + JSON.stringify(big).length);

  const store = new SqliteStore(':memory:');
  const g = new HostGateway(store, { onRemoved: async () => undefined });
  for (let i = 0; i < 100; i++) await store.put(hostSpecKey('h1', `s${i}`), placed(`s${i}`));
  const { refused } = await g.reportStatuses('h1', [...Array.from({ length: 100 }, (_, i) => status(`s${i}`)), status('elsewhere')]);
  assert.deepEqual(refused, ['elsewhere']);
  assert.equal((await store.list('/status/')).length, 100);
  assert.equal((await store.get<{ host: string }>(statusKey('s7')))?.value.host, 'h1');
  await store.close();
});

test('a host that starts again resumes from its last statuses of what is placed on it, and learns what it must report removed', async () => {
  const store = new SqliteStore(':memory:');
  const removed: string[] = [];
  const g = new HostGateway(store, { onRemoved: async (host, uid) => void removed.push(`${host}/${uid}`) });
  await store.put(hostSpecKey('h1', 'a'), placed('a'));
  await store.put(hostSpecKey('h1', 'b'), placed('b'));
  await g.reportStatuses('h1', [status('a', { generation: 3 })]);
  await store.put(statusKey('z'), { ...status('z'), host: 'h2' });
  await store.put(removingKey('h1', 'gone'), { groupKey: '/groups/s/r/gone' });
  assert.deepEqual(await g.resume('h1'), { statuses: [status('a', { generation: 3 })], removing: ['gone'] });
  await g.reportRemoved('h1', 'a');
  await g.reportRemoved('h1', 'gone');
  assert.deepEqual(removed, ['h1/gone'], 'a group still placed on the host is not removed');
  await g.register('h1', { name: 'h1', address: '10.0.0.1', labels: {}, allocatable: { cpu: 2, memoryGB: 4 }, agentVersion: 't' });
  assert.ok((await store.get(hostLeaseKey('h1')))?.lease, 'registered and alive: its lease key is on a lease');
  g.close();
  await store.close();
});
