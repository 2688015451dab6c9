// Failover over a real SQLite store, behind the instances service of a cluster: a NotReady host's groups are taken off it in one transaction each (new generation, its spec gone, its removal awaited there, its ports and status freed) and placed again elsewhere with events naming both hosts; its late word is refused, its removal report touches nothing of the new host; a deposed leader moves nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { GroupStatus } from '../../agent/types.js';
import { waitFor } from '../../lib/wait.js';
import { Election, type Leadership } from '../../store/election.js';
import { SqliteStore } from '../../store/sqlite.js';
import type { StoredStatus } from '../hosts/gateway.js';
import { HostsView } from '../hosts/hosts-view.js';
import { groupKey, hostLeaseKey, hostPortKey, hostSpecKey, RECONCILERS_ELECTION, removingKey, statusKey } from '../keys.js';
import { parseGroupSpec } from '../model.js';
import type { GroupRecord } from '../records.js';
import { InstancesService, UNPLACED } from '../service.js';
import { fakeDataPlane } from '../testing.js';
import type { Placer } from './placer.js';
import type { Rescheduler } from './rescheduler.js';

let store: SqliteStore;
let hosts: HostsView;
let service: InstancesService;
let leadership: Leadership;
let placer: Placer;
let rescheduler: Rescheduler;

const ref = (name: string) => ({ subscriptionId: 's', resourceGroup: 'rg', name });
const body = (port?: number) => parseGroupSpec({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'main', properties: { image: 'img', ports: port ? [{ port }] : [], resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } } }],
    ...(port && { ipAddress: { type: 'Public', ports: [{ port, protocol: 'TCP' }] } }),
  },
});
const recordOf = async (name: string) => (await store.get<GroupRecord>(groupKey('s', 'rg', name)))!.value;
const addHost = (name: string) =>
  store.put(`/hosts/${name}`, { name, address: '10.0.0.1', labels: {}, allocatable: { cpu: 8, memoryGB: 64 }, agentVersion: 't', registeredAt: '', updatedAt: '' });
const ready = (name: string) => store.put(hostLeaseKey(name), { host: name });
const notReady = (name: string) => store.delete(hostLeaseKey(name));
const statusOf = (rec: GroupRecord, ip: string): GroupStatus => ({ uid: rec.uid, generation: rec.generation, provisioning: 'Succeeded', state: 'Running', ip, containers: {}, events: [] });
/** Long enough for a move that would happen to have happened (moves and placements are immediate here). */
const settle = () => new Promise((r) => setTimeout(r, 300));

const startReconcilers = (fence = leadership.fence, startGraceMs = 0) => {
  placer = service.placer(hosts, fence, { retryMs: 100 });
  rescheduler = service.rescheduler(hosts, fence, { startGraceMs });
  placer.start();
  rescheduler.start();
};
const stopReconcilers = async () => {
  await rescheduler.stop();
  await placer.stop();
};

before(async () => {
  store = new SqliteStore(':memory:');
  service = new InstancesService(store, () => fakeDataPlane(), { placeOn: UNPLACED });
  await service.start();
  hosts = new HostsView(store, () => {
    placer?.hostsChanged();
    rescheduler?.hostsChanged();
  });
  await addHost('h1');
  await addHost('h2');
  await ready('h1'); // h2 registered, not Ready: every group lands on h1
  await hosts.ready();
  leadership = await new Election(store, RECONCILERS_ELECTION).campaign({ replica: 'a' }, { ttlSeconds: 5 });
  startReconcilers();
});

after(async () => {
  await stopReconcilers();
  hosts.stop();
  await service.stop();
  await store.close();
});

test("a NotReady host's groups move to a Ready one: same names, a new generation, the old host's spec, port and status gone, its removal awaited, events naming both hosts", async () => {
  for (const [i, name] of ['a', 'b', 'c'].entries()) await service.createOrUpdate(ref(name), body(i === 0 ? 80 : undefined));
  for (const name of ['a', 'b', 'c']) assert.equal(await waitFor(`${name} placed`, async () => (await recordOf(name)).host || undefined), 'h1');
  const before = await Promise.all(['a', 'b', 'c'].map(recordOf));
  const reported = await service.gateway.reportStatuses('h1', before.map((r) => statusOf(r, '10.1.0.2')));
  assert.deepEqual(reported.refused, []);
  await ready('h2');
  await settle();
  assert.equal((await recordOf('a')).host, 'h1', 'a Ready host keeps its groups');

  await notReady('h1');
  for (const name of ['a', 'b', 'c']) assert.equal(await waitFor(`${name} placed again`, async () => (await recordOf(name)).host || undefined), 'h2');
  for (const old of before) {
    const rec = await recordOf(old.name);
    assert.equal(rec.uid, old.uid, 'the same group');
    assert.equal(rec.generation, old.generation + 1, 'a new generation: the old host never runs it again');
    assert.equal(await store.get(hostSpecKey('h1', old.uid)), undefined, 'not on the lost host any more');
    assert.equal((await store.get<{ generation: number }>(hostSpecKey('h2', old.uid)))?.value.generation, rec.generation);
    assert.ok(await store.get(removingKey('h1', old.uid)), 'the lost host removes it when it is back');
    assert.equal(await store.get(statusKey(old.uid)), undefined, "Pending, not the lost host's Running");
    const events = (await service.get(ref(old.name))).events ?? [];
    assert.ok(events.some((e) => e.name === 'Rescheduled' && e.message.includes("'h1' is NotReady")), `${old.name}: why it moved`);
    assert.ok(events.some((e) => e.name === 'Scheduled' && e.message === "Placed on host 'h2'."), `${old.name}: where it went`);
  }
  assert.equal(await store.get(hostPortKey('h1', 'TCP', 80)), undefined, "its port is free on the lost host");
  assert.equal((await store.get<{ uid: string }>(hostPortKey('h2', 'TCP', 80)))?.value.uid, before[0].uid, 'and held on the new one');
});

test("the lost host's late statuses are refused; its removal report leaves the record and the new host's status", async () => {
  const rec = await recordOf('a');
  assert.deepEqual((await service.gateway.reportStatuses('h2', [statusOf(rec, '10.2.0.7')])).refused, []);
  const stale = { ...statusOf(rec, '10.1.0.2'), generation: rec.generation - 1 };
  assert.deepEqual((await service.gateway.reportStatuses('h1', [stale])).refused, [rec.uid], 'the lost host no longer speaks for it');
  await service.gateway.reportRemoved('h1', rec.uid);
  assert.equal(await store.get(removingKey('h1', rec.uid)), undefined, 'its removal there is done');
  assert.deepEqual(await recordOf('a'), rec, 'the group stays, untouched');
  const status = (await store.get<StoredStatus>(statusKey(rec.uid)))?.value;
  assert.deepEqual([status?.host, status?.ip], ['h2', '10.2.0.7'], "the new host's status stays");
  assert.equal((await service.get(ref('a'))).status?.ip, '10.2.0.7');
});

test('a group being deleted stays on its lost host (the host reports its removal when back); deleted after a move, it ends with its new host', async () => {
  await ready('h1');
  await service.createOrUpdate(ref('d'), body());
  const d = await waitFor('d placed', async () => (await recordOf('d')).host || undefined);
  await service.delete(ref('d'));
  await notReady(d);
  await settle();
  assert.equal((await recordOf('d')).host, d, 'not moved: only its host can say it is gone');
  await ready(d);

  const b = await recordOf('b');
  await service.delete(ref('b'));
  await service.gateway.reportRemoved('h1', b.uid); // the host it was lost from, back: not the end of it
  assert.ok(await store.get(groupKey('s', 'rg', 'b')), 'the record waits for the host it runs on');
  await service.gateway.reportRemoved('h2', b.uid);
  assert.equal(await store.get(groupKey('s', 'rg', 'b')), undefined);
});

test('a host NotReady when a leader starts gets a grace to beat: back within it, nothing moves', async () => {
  await stopReconcilers();
  const c = await recordOf('c');
  await notReady('h2');
  startReconcilers(leadership.fence, 1000);
  await settle();
  await ready('h2');
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(await recordOf('c'), c, 'the same host, the same generation');
});

test("a deposed leader's moves fail: only the new leader's land", async () => {
  await stopReconcilers();
  await leadership.resign();
  const next = await new Election(store, RECONCILERS_ELECTION).campaign({ replica: 'b' }, { ttlSeconds: 5 });
  startReconcilers(leadership.fence);
  const c = await recordOf('c');
  await notReady('h2');
  await settle();
  assert.deepEqual(await recordOf('c'), c, "the old leadership's writes fail");
  await stopReconcilers();
  startReconcilers(next.fence);
  await waitFor('c moved by the new leader', async () => (await recordOf('c')).host === 'h1');
  assert.equal((await recordOf('c')).generation, c.generation + 1);
  leadership = next;
});

test("a group its Ready host refused to start for a port the host's own sockets hold moves to another host; one that runs stays", async () => {
  await ready('h1');
  await ready('h2');
  const { operation } = await service.createOrUpdate(ref('refused'), body(8443));
  await service.createOrUpdate(ref('runs'), body(8444));
  const host = await waitFor('refused placed', async () => (await recordOf('refused')).host || undefined);
  const other = host === 'h1' ? 'h2' : 'h1';
  const runsHost = await waitFor('runs placed', async () => (await recordOf('runs')).host || undefined);
  const refused = await recordOf('refused');
  const runs = await recordOf('runs');
  // the host took 8443 after it last reported its ports: its agent refused the start, then reported them again
  const failed: GroupStatus = { ...statusOf(refused, '10.1.0.9'), provisioning: 'Failed', state: 'Failed', error: { code: 'PortAlreadyInUse', message: 'The port 8443/TCP is already in use on this host.' } };
  await service.gateway.reportStatuses(host, [failed]);
  assert.equal((await service.operation('s', operation.id)).status, 'InProgress', 'on a cluster a refusal for a held port is no outcome: the group moves');
  await service.gateway.reportStatuses(runsHost, [statusOf(runs, '10.1.0.10')]);
  await service.gateway.reportHeldPorts(host, [{ protocol: 'TCP', port: 8443 }]);
  await service.gateway.reportHeldPorts(runsHost, [{ protocol: 'TCP', port: 8443 }, { protocol: 'TCP', port: 8444 }]);
  assert.equal(await waitFor('refused placed again', async () => { const r = await recordOf('refused'); return r.generation > refused.generation && r.host ? r.host : undefined; }), other);
  assert.equal((await recordOf('refused')).generation, refused.generation + 1);
  assert.ok(await store.get(removingKey(host, refused.uid)), 'the refusing host removes what it made of it');
  const events = (await service.get(ref('refused'))).events ?? [];
  assert.ok(events.some((e) => e.name === 'Rescheduled' && e.message.includes(`Host '${host}' keeps a port of the group`)), JSON.stringify(events));
  // its create ends with what the new host reports
  await service.gateway.reportStatuses(other, [statusOf(await recordOf('refused'), '10.2.0.9')]);
  assert.equal((await service.operation('s', operation.id)).status, 'Succeeded');
  await settle();
  assert.deepEqual(await recordOf('runs'), runs, 'a running group keeps its host, whatever took its port there since');
  for (const h of ['h1', 'h2']) await service.gateway.reportHeldPorts(h, []);
  for (const n of ['refused', 'runs']) await service.delete(ref(n));
});
