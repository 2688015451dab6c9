// InstancesService's admission (host ports, quotas) and its contract with the host (specs placed, statuses waited on), against a real SQLite store and a host that runs nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GroupStatus } from '../agent/types.js';
import { isBerthError } from '../lib/errors.js';
import { SqliteStore } from '../store/sqlite.js';
import { InstancesService, type ServiceOptions } from './service.js';
import { parseGroupSpec } from './model.js';
import { fakeDataPlane, fakeHost } from './testing.js';

const ref = (subscriptionId: string, resourceGroup: string, name: string) => ({ subscriptionId, resourceGroup, name });
const put = (body: unknown) => parseGroupSpec(body);

const body = (o: { port?: number; cpu?: number; image?: string } = {}) => ({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'main', properties: { image: o.image ?? 'example/img:1', ports: o.port ? [{ port: o.port }] : [], resources: { requests: { cpu: o.cpu ?? 0.5, memoryInGB: 0.5 } } } }],
    ...(o.port && { ipAddress: { type: 'Public', ports: [{ port: o.port, protocol: 'TCP' }] } }),
  },
});

const code = async (p: Promise<unknown>) => (await outcome(p)).code;
const outcome = async (p: Promise<unknown>): Promise<{ code: string; message?: string; target?: string }> => {
  try {
    await p;
    return { code: 'ok' };
  } catch (e) {
    return isBerthError(e) ? { code: e.code, message: e.message, target: e.target } : { code: String(e) };
  }
};

/** A service on `store` with a host that runs nothing (and reports removals at once). */
const started = async (store: SqliteStore, opts: ServiceOptions = {}, plane = fakeDataPlane()) => {
  const svc = new InstancesService(store, () => plane, opts);
  await svc.start();
  fakeHost(svc.gateway);
  return svc;
};

const waitFor = async (what: string, cond: () => boolean) => {
  for (const deadline = Date.now() + 10_000; !cond(); await new Promise((r) => setTimeout(r, 5)))
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
};

const gone = async (svc: InstancesService, sub: string, rg: string, name: string) => {
  await svc.delete(ref(sub, rg, name));
  for (let i = 0; i < 100 && (await code(svc.get(ref(sub, rg, name)))) === 'ok'; i++) await new Promise((r) => setTimeout(r, 5));
};

test('a published host port belongs to one group until it is deleted; other ports and updates are fine', async () => {
  const store = new SqliteStore(':memory:');
  const svc = await started(store);
  assert.equal(await code(svc.createOrUpdate(ref('sub-a', 'rg', 'one'), put(body({ port: 8080 })))), 'ok');
  const across = await outcome(svc.createOrUpdate(ref('sub-b', 'other', 'two'), put(body({ port: 8080 }))));
  assert.deepEqual(across, { code: 'PortAlreadyInUse', message: 'The port 8080/TCP is already in use on this host.', target: 'properties.ipAddress.ports' }, 'across subscriptions too (the host is shared), naming no group of another');
  assert.match((await outcome(svc.createOrUpdate(ref('sub-a', 'rg2', 'two'), put(body({ port: 8080 }))))).message!, /container group 'one'/, 'its own subscription is told which group');
  assert.equal(await code(svc.createOrUpdate(ref('sub-a', 'rg', 'one'), put(body({ port: 8080, image: 'example/img:2' })))), 'ok', 'the owner may update itself');
  assert.equal(await code(svc.createOrUpdate(ref('sub-b', 'other', 'two'), put(body({ port: 8081 })))), 'ok');
  await gone(svc, 'sub-a', 'rg', 'one');
  assert.equal(await code(svc.createOrUpdate(ref('sub-b', 'other', 'three'), put(body({ port: 8080 })))), 'ok', 'free again once its owner is gone');
  // a server started on the same store knows who holds what
  await svc.stop();
  const again = await started(store);
  assert.equal(await code(again.createOrUpdate(ref('sub-a', 'rg', 'four'), put(body({ port: 8081 })))), 'PortAlreadyInUse');
  await again.stop();
  await store.close();
});

test('quotas count groups and cores per subscription and location, and free them on delete', async () => {
  const store = new SqliteStore(':memory:');
  const svc = await started(store, { quotas: { containerGroups: 2, standardCores: 1 } });
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'a'), put(body({ cpu: 0.3 })))), 'ok');
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'b'), put(body({ cpu: 0.8 })))), 'StandardCoresQuotaReached');
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'b'), put(body({ cpu: 0.7 })))), 'ok');
  assert.deepEqual(await svc.usage('sub', 'LOCAL'), { containerGroups: { current: 2, limit: 2 }, standardCores: { current: 1, limit: 1 } });
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'c'), put(body({ cpu: 0.1 })))), 'ContainerGroupQuotaReached');
  assert.equal(await code(svc.createOrUpdate(ref('other-sub', 'rg', 'c'), put(body({ cpu: 0.1 })))), 'ok', 'another subscription has its own');
  await gone(svc, 'sub', 'rg', 'a');
  assert.deepEqual(await svc.usage('sub', 'local'), { containerGroups: { current: 1, limit: 2 }, standardCores: { current: 0.7, limit: 1 } });
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'c'), put(body({ cpu: 0.3 })))), 'ok');
  await svc.stop();
  await store.close();
});

test('stop returns when the host reports the group stopped, or when a later start supersedes it; never before', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, () => fakeDataPlane());
  await svc.start();
  const host = fakeHost(svc.gateway);
  const { view } = await svc.createOrUpdate(ref('sub', 'rg', 'g'), put(body()));
  const uid = view.record.uid;
  const status = (generation: number, state: GroupStatus['state']): GroupStatus => ({ uid, generation, provisioning: 'Succeeded', state, containers: {}, events: [] });
  await host.report(status(1, 'Running'));
  const settled = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);

  const stopping = svc.setRunState(ref('sub', 'rg', 'g'), 'stop');
  await waitFor('the stop placed', () => host.placed.get(uid)?.generation === 2);
  assert.deepEqual([host.placed.get(uid)!.generation, (host.placed.get(uid)!.spec as { state: string }).state], [2, 'Stopped'], 'the host was told to stop it');
  await host.report(status(1, 'Running')); // an older report does not end the wait
  assert.equal(await settled(stopping, 300), false);
  await host.report(status(2, 'Stopped'));
  assert.equal(await settled(stopping, 10_000), true);

  const again = svc.setRunState(ref('sub', 'rg', 'g'), 'stop');
  await new Promise((r) => setTimeout(r, 100));
  await svc.setRunState(ref('sub', 'rg', 'g'), 'start'); // superseded before the host got to it
  await host.report(status(4, 'Running'));
  assert.equal(await settled(again, 10_000), true);
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).record.state, 'Running');
  host.stop();
  await svc.stop();
  await store.close();
});

test("a port the host keeps is refused at admission, asked only for what a group newly publishes", async () => {
  const store = new SqliteStore(':memory:');
  const asked: number[][] = [];
  const svc = await started(store, {}, fakeDataPlane([8780], asked));
  assert.deepEqual(await outcome(svc.createOrUpdate(ref('sub', 'rg', 'thief'), put(body({ port: 8780 })))),
    { code: 'PortAlreadyInUse', message: 'The port 8780/TCP is already in use on this host.', target: 'properties.ipAddress.ports' });
  assert.equal(await code(svc.get(ref('sub', 'rg', 'thief'))), 'ResourceNotFound', 'nothing admitted');
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'web'), put(body({ port: 8080 })))), 'ok');
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'web'), put(body({ port: 8080, image: 'example/img:2' })))), 'ok');
  assert.equal(await code(svc.createOrUpdate(ref('sub', 'rg', 'private'), put(body()))), 'ok');
  assert.deepEqual(asked, [[8780], [8080]], 'an update keeping its port, and a group without one, ask nothing');
  await svc.stop();
  await store.close();
});

test('a group and its host spec are written in one transaction; a delete takes the spec off, and the record stays until the host reports the group gone', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, () => fakeDataPlane());
  await svc.start();
  const { view } = await svc.createOrUpdate(ref('sub', 'rg', 'g'), put(body({ port: 8080 })));
  const uid = view.record.uid;
  assert.equal(view.record.host, 'local');
  const rev = async (key: string) => (await store.get(key))?.modRevision;
  const spec = async () => (await store.get<{ generation: number }>(`/hostspecs/local/${uid}`))?.value;
  assert.equal(await rev(`/hostspecs/local/${uid}`), await rev('/groups/sub/rg/g'));
  assert.equal((await spec())?.generation, 1);
  await svc.createOrUpdate(ref('sub', 'rg', 'g'), put(body({ port: 8080, image: 'example/img:2' })));
  assert.equal((await spec())?.generation, 2);
  assert.equal(await rev(`/hostspecs/local/${uid}`), await rev('/groups/sub/rg/g'));
  const placedAt = await rev(`/hostspecs/local/${uid}`);
  await svc.updateTags(ref('sub', 'rg', 'g'), { a: 'b' });
  assert.equal(await rev(`/hostspecs/local/${uid}`), placedAt, 'tags are nothing the host runs');

  await svc.gateway.reportRemoved('local', uid);
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).record.deleting, false, 'a removal of a group still placed is ignored');
  await svc.delete(ref('sub', 'rg', 'g'));
  assert.equal(await spec(), undefined);
  assert.equal(await rev(`/removing/local/${uid}`), await rev('/groups/sub/rg/g'));
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).provisioningState, 'Deleting');
  assert.deepEqual((await svc.gateway.reportStatuses('local', [{ uid, generation: 2, provisioning: 'Succeeded', state: 'Running', containers: {}, events: [] }])).refused, [uid], 'no status is taken for a group no longer placed');
  await svc.gateway.reportRemoved('local', uid);
  assert.equal(await code(svc.get(ref('sub', 'rg', 'g'))), 'ResourceNotFound');
  assert.deepEqual((await store.list('/')).map((kv) => kv.key).filter((k) => !k.startsWith('/ops/') && !k.startsWith('/meta/')), ['/rgs/sub/rg'], 'its status, port, quota share and removal record went with it');
  await svc.stop();
  await store.close();
});

test("a host's statuses are taken only for the groups placed on it", async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, () => fakeDataPlane());
  await svc.start();
  const { view } = await svc.createOrUpdate(ref('sub', 'rg', 'g'), put(body()));
  const status: GroupStatus = { uid: view.record.uid, generation: 1, provisioning: 'Succeeded', state: 'Running', containers: {}, events: [] };
  assert.deepEqual(await svc.gateway.reportStatuses('elsewhere', [status]), { refused: [view.record.uid] });
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).status, undefined);
  assert.deepEqual(await svc.gateway.reportStatuses('local', [status]), { refused: [] });
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).status?.host, 'local');
  await svc.stop();
  await store.close();
});
