// The control plane's events of a group: kept beside its host's, shown merged, counted on repeat, bounded, gone with the group.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Event } from '../lib/events.js';
import { SqliteStore } from '../store/sqlite.js';
import { mergedEvents, recordGroupEvent } from './group-events.js';
import { parseGroupSpec } from './model.js';
import { InstancesService } from './service.js';
import { fakeDataPlane } from './testing.js';

const ref = { subscriptionId: 'sub', resourceGroup: 'rg', name: 'g' };
const body = { location: 'local', properties: { containers: [{ name: 'main', properties: { image: 'example/img:1', resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } } }] } };
const ev = (name: string, at: string): Event => ({ count: 1, firstTimestamp: at, lastTimestamp: at, name, message: name, type: 'Normal' });

test("a group's view carries the control plane's events, a repeat counting on the first, and its watch is told of them", async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, () => fakeDataPlane());
  await svc.start();
  const { view } = await svc.createOrUpdate(ref, parseGroupSpec(body));
  const uid = view.record.uid;
  assert.equal((await svc.get(ref)).events, undefined, 'none yet');
  const told: string[] = [];
  const unwatch = svc.watchGroups('sub', undefined, (_rg, name) => told.push(name));
  await recordGroupEvent(store, uid, 'FailedScheduling', '0/3 hosts are available: 3 insufficient cpu.', 'Warning');
  await Promise.all([1, 2, 3].map(() => recordGroupEvent(store, uid, 'FailedScheduling', '0/3 hosts are available: 3 insufficient cpu.', 'Warning')));
  await recordGroupEvent(store, uid, 'Scheduled', 'Placed on host h2.');
  const events = (await svc.get(ref)).events!;
  assert.deepEqual(events.map((e) => [e.name, e.count, e.type]), [['FailedScheduling', 4, 'Warning'], ['Scheduled', 1, 'Normal']], 'concurrent repeats all counted');
  for (const deadline = Date.now() + 5000; !told.includes('g'); await new Promise((r) => setTimeout(r, 5)))
    assert.ok(Date.now() < deadline, 'the watch is told of an event');
  unwatch();

  for (let i = 0; i < 30; i++) await recordGroupEvent(store, uid, 'Moved', `move ${i}`);
  assert.equal((await svc.get(ref)).events!.length, 20, 'bounded: the oldest go');
  assert.equal((await svc.get(ref)).events!.at(-1)!.message, 'move 29');

  await svc.delete(ref);
  await svc.gateway.reportRemoved('local', uid);
  assert.equal(await store.get(`/groupevents/${uid}`), undefined, 'gone with the group');
  await svc.stop();
  await store.close();
});

test("the events shown are the host's and the control plane's together, oldest first", () => {
  const host = [ev('Pulling', '2026-01-01T00:00:02Z'), ev('Started', '2026-01-01T00:00:04Z')];
  const control = [ev('FailedScheduling', '2026-01-01T00:00:01Z'), ev('Scheduled', '2026-01-01T00:00:03Z')];
  assert.deepEqual(mergedEvents(host, control).map((e) => e.name), ['FailedScheduling', 'Pulling', 'Scheduled', 'Started']);
  assert.equal(mergedEvents(host, undefined), host);
  assert.deepEqual(mergedEvents(undefined, undefined), []);
});
