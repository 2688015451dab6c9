// The leader's placement over a real SQLite store, behind the instances service of a cluster (groups admitted on no host): groups land on Ready hosts with their spec and host ports in one transaction, wait while nothing fits, avoid the ports a host reported it keeps, follow their records once placed, and a deposed leader's writes fail.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PublishedPort } from '../../agent/spec.js';
import { Election, type Leadership } from '../../store/election.js';
import { waitFor } from '../../lib/wait.js';
import { SqliteStore } from '../../store/sqlite.js';
import { HostsView } from '../hosts/hosts-view.js';
import { groupKey, hostPortKey, hostSpecKey, RECONCILERS_ELECTION, removingKey } from '../keys.js';
import { parseGroupSpec } from '../model.js';
import type { GroupRecord } from '../records.js';
import { InstancesService, UNPLACED } from '../service.js';
import { fakeDataPlane } from '../testing.js';
import type { Placer } from './placer.js';

let store: SqliteStore;
let hosts: HostsView;
let service: InstancesService;
let leadership: Leadership;
let placer: Placer;
/** What each host was asked of its ports (nothing: the placement decides from what hosts reported). */
const asked: Record<string, number[][]> = {};

const ref = (name: string) => ({ subscriptionId: 's', resourceGroup: 'rg', name });
const body = (o: { cpu?: number; port?: number; image?: string; dns?: string } = {}) => parseGroupSpec({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'main', properties: { image: o.image ?? 'img', ports: o.port ? [{ port: o.port }] : [], resources: { requests: { cpu: o.cpu ?? 1, memoryInGB: 1 } } } }],
    ...(o.port && { ipAddress: { type: 'Public', ports: [{ port: o.port, protocol: 'TCP' }], ...(o.dns && { dnsNameLabel: o.dns }) } }),
  },
});
const create = (name: string, o: { cpu?: number; port?: number; dns?: string } = {}) => service.createOrUpdate(ref(name), body(o));
const recordOf = async (name: string) => (await store.get<GroupRecord>(groupKey('s', 'rg', name)))!;
const hostOf = async (name: string) => (await store.get<GroupRecord>(groupKey('s', 'rg', name)))?.value.host;
const addHost = async (name: string, cpu: number, ready = true, where: { zone?: string; labels?: Record<string, string> } = {}) => {
  await store.put(`/hosts/${name}`, { name, address: '10.0.0.1', labels: where.labels ?? {}, ...(where.zone && { zone: where.zone }), allocatable: { cpu, memoryGB: 64 }, agentVersion: 't', registeredAt: '', updatedAt: '' });
  if (ready) await store.put(`/hostleases/${name}`, { host: name });
};

/** Waits long enough for a placement that would happen to have happened (the placer retries every 100 ms here). */
const settle = () => new Promise((r) => setTimeout(r, 300));

before(async () => {
  store = new SqliteStore(':memory:');
  service = new InstancesService(store, (host) => fakeDataPlane([], (asked[host] ??= [])), { placeOn: UNPLACED });
  await service.start();
  hosts = new HostsView(store, () => placer?.hostsChanged());
  await addHost('h1', 2);
  await addHost('h2', 2);
  await hosts.ready();
  leadership = await new Election(store, RECONCILERS_ELECTION).campaign({ replica: 'a' }, { ttlSeconds: 5 });
  placer = service.placer(hosts, leadership.fence, { retryMs: 100 });
  placer.start();
});

after(async () => {
  await placer.stop();
  hosts.stop();
  await service.stop();
  await store.close();
});

test('a group is admitted on no host; placement gives it one, with its spec on that host and its host port, in one revision', async () => {
  await placer.stop(); // admitted while no leader places
  await create('a', { port: 80 });
  assert.equal(await hostOf('a'), UNPLACED);
  assert.equal((await store.list('/hostspecs/')).length, 0, 'no host runs it yet');
  assert.equal((await store.list('/hostports/')).length, 0, 'no host holds its port yet');
  placer = service.placer(hosts, leadership.fence, { retryMs: 100 });
  placer.start();
  const host = await waitFor('a placed', () => hostOf('a'));
  const rec = await recordOf('a');
  const spec = (await store.get<{ uid: string; generation: number; spec: { ports: PublishedPort[] } }>(hostSpecKey(host, rec.value.uid)))!;
  const port = (await store.get<{ uid: string }>(hostPortKey(host, 'TCP', 80)))!;
  assert.deepEqual([spec.value.uid, spec.value.generation, spec.value.spec.ports], [rec.value.uid, 1, [{ port: 80, protocol: 'TCP' }]]);
  assert.equal(spec.modRevision, rec.modRevision);
  assert.equal(port.modRevision, rec.modRevision);
  assert.equal(port.value.uid, rec.value.uid);
});

test('groups spread over the hosts; one that fits nowhere waits, and is placed once a host with room is Ready', async () => {
  await create('b', { port: 80 }); // h1 or h2 holds port 80: the other
  await create('c');
  const [a, b, c] = [await hostOf('a'), await waitFor('b placed', () => hostOf('b')), await waitFor('c placed', () => hostOf('c'))];
  assert.notEqual(a, b, 'port 80 is taken on the first host');
  assert.deepEqual(new Set([a, b, c]), new Set(['h1', 'h2']));
  await create('d', { cpu: 3 });
  await settle();
  assert.equal(await hostOf('d'), UNPLACED, 'no host has 3 cores');
  const waiting = (await service.get(ref('d'))).events?.find((e) => e.name === 'FailedScheduling');
  assert.match(waiting?.message ?? '', /insufficient cpu/, 'the group says why it waits');
  assert.equal(waiting?.type, 'Warning');
  await addHost('h3', 4, false);
  await settle();
  assert.equal(await hostOf('d'), UNPLACED, 'h3 is not Ready');
  await store.put('/hostleases/h3', { host: 'h3' });
  assert.equal(await waitFor('d placed', () => hostOf('d')), 'h3');
  assert.ok((await service.get(ref('d'))).events?.some((e) => e.name === 'Scheduled' && e.message === "Placed on host 'h3'."), 'and where it went');
});

test("a new group admitted while this process's placer runs is placed in its admission's own transaction; one the admission refuses leaves nothing", async () => {
  const made = await create('inline', { cpu: 0.5, port: 8080, dns: 'inline-label' });
  const host = made.view.record.host;
  assert.ok(host === 'h1' || host === 'h2' || host === 'h3', `placed as it was admitted: '${host}'`);
  const rec = await recordOf('inline');
  assert.equal(rec.value.host, host);
  const spec = (await store.get(hostSpecKey(host, rec.value.uid)))!;
  const port = (await store.get<{ uid: string }>(hostPortKey(host, 'TCP', 8080)))!;
  assert.deepEqual([spec.modRevision, port.modRevision], [rec.modRevision, rec.modRevision], 'one revision: the admission is the placement');
  assert.deepEqual(rec.value.generation, 1);
  await waitFor('the Scheduled event', async () => (await service.get(ref('inline'))).events?.some((e) => e.name === 'Scheduled' && e.message === `Placed on host '${host}'.`));
  // refused by the admission (its DNS label is taken): no record, no spec anywhere, no port held
  const specsBefore = (await store.list('/hostspecs/')).length;
  await assert.rejects(create('refused', { cpu: 0.5, port: 8081, dns: 'inline-label' }), /DNS name label 'inline-label'/);
  assert.equal(await store.get(groupKey('s', 'rg', 'refused')), undefined);
  assert.equal((await store.list('/hostspecs/')).length, specsBefore);
  assert.equal(await store.get(hostPortKey(host, 'TCP', 8081)), undefined);
  await service.delete(ref('inline'));
});

test('a host that keeps a port for its own sockets gets no group publishing it, decided from what it reported: no host is asked', async () => {
  await addHost('h4', 100); // the roomiest: the first choice
  await addHost('h5', 8);
  await service.gateway.reportHeldPorts('h4', [{ protocol: 'TCP', port: 22 }, { protocol: 'TCP', port: 9000 }]);
  await waitFor('h4\'s ports seen', async () => hosts.heldPorts('h4').includes('TCP/9000'));
  await create('e', { cpu: 4, port: 9000 });
  assert.equal(await waitFor('e placed', () => hostOf('e')), 'h5');
  // the host lets the port go: the next group publishing it goes to the roomiest host again
  await service.gateway.reportHeldPorts('h4', [{ protocol: 'TCP', port: 22 }]);
  await waitFor('h4\'s ports seen', async () => !hosts.heldPorts('h4').includes('TCP/9000'));
  await create('e2', { cpu: 4, port: 9000 });
  assert.equal(await waitFor('e2 placed', () => hostOf('e2')), 'h4');
  assert.deepEqual(Object.values(asked).flat(), [], 'no host was asked about its ports on the way');
});

test("zones and placement rules are honoured: required anti-affinity spreads, the group too many waits with the reason, affinity joins", async () => {
  for (const [h, zone] of [['p1', 'z1'], ['p2', 'z2'], ['p3', 'z3']]) await addHost(h, 16, true, { zone, labels: { pool: 'rules' } });
  const spec = (placement: unknown, zones?: string[]) => parseGroupSpec({
    location: 'local', ...(zones && { zones }), tags: { app: 'web' },
    properties: { containers: [{ name: 'main', properties: { image: 'img', resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }], placement },
  });
  const web = { hostLabels: { pool: 'rules' }, antiAffinity: [{ selector: { tags: { app: 'web' } }, scope: 'Host' }] };
  for (const n of ['w1', 'w2', 'w3']) await service.createOrUpdate(ref(n), spec(web));
  const placed = await Promise.all(['w1', 'w2', 'w3'].map((n) => waitFor(`${n} placed`, () => hostOf(n))));
  assert.deepEqual(new Set(placed), new Set(['p1', 'p2', 'p3']), 'one per host of the pool');
  assert.deepEqual((await Promise.all(['w1', 'w2', 'w3'].map(async (n) => (await recordOf(n)).value.zone))).sort(), ['z1', 'z2', 'z3'], "each record says its host's zone");
  await service.createOrUpdate(ref('w4'), spec(web));
  await settle();
  assert.equal(await hostOf('w4'), UNPLACED);
  const why = (await service.get(ref('w4'))).events?.find((e) => e.name === 'FailedScheduling');
  assert.match(why?.message ?? '', /anti-affinity/, 'it says why it waits');
  await service.delete(ref('w2'));
  await service.gateway.reportRemoved(placed[1], (await recordOf('w2')).value.uid);
  assert.equal(await waitFor('w4 placed once room appears', () => hostOf('w4')), placed[1]);

  await service.createOrUpdate(ref('near'), spec({ hostLabels: { pool: 'rules' }, affinity: [{ selector: { names: ['w1'] }, scope: 'Host' }] }));
  assert.equal(await waitFor('near placed', () => hostOf('near')), placed[0], 'with the group it asked to be near');
  await service.createOrUpdate(ref('zoned'), spec(undefined, ['z3']));
  assert.equal(await waitFor('zoned placed', () => hostOf('zoned')), 'p3', 'in its zone');
  assert.deepEqual((await service.get(ref('zoned'))).record.zone, 'z3');
});

test("once placed, a group's spec follows its record, and its deletion takes it off its host; one never placed is gone at once", async () => {
  const rec = (await recordOf('a')).value;
  await service.createOrUpdate(ref('a'), body({ port: 81, image: 'img:2' }));
  const placed = await store.get<{ generation: number }>(hostSpecKey(rec.host, rec.uid));
  assert.equal(placed?.value.generation, 2, 'written with the record');
  assert.equal(await store.get(hostPortKey(rec.host, 'TCP', 80)), undefined, 'the port it no longer publishes is free');
  assert.ok(await store.get(hostPortKey(rec.host, 'TCP', 81)));
  await service.delete(ref('a'));
  assert.equal(await store.get(hostSpecKey(rec.host, rec.uid)), undefined);
  assert.ok(await store.get(removingKey(rec.host, rec.uid)), 'its host reports it removed');
  await placer.stop();
  await create('f');
  assert.equal(await hostOf('f'), UNPLACED);
  const usageBefore = (await service.usage('s', 'local')).containerGroups.current;
  await service.delete(ref('f'));
  assert.equal(await store.get(groupKey('s', 'rg', 'f')), undefined, 'on no host: nothing to wait for');
  assert.equal((await service.usage('s', 'local')).containerGroups.current, usageBefore - 1, 'its quota released with it');
});

test("a deposed leader's placements fail: only the new leader's land", async () => {
  await leadership.resign();
  const next = await new Election(store, RECONCILERS_ELECTION).campaign({ replica: 'b' }, { ttlSeconds: 5 });
  const stale = service.placer(hosts, leadership.fence, { retryMs: 100 });
  stale.start();
  await create('g');
  await settle();
  assert.equal(await hostOf('g'), UNPLACED, "the old leadership's writes fail");
  await stale.stop();
  placer = service.placer(hosts, next.fence, { retryMs: 100 });
  placer.start();
  assert.ok(await waitFor('g placed by the new leader', () => hostOf('g')));
  leadership = next;
});
