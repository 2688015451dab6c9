// InstancesService's O(1) create checks (host ports, quotas) against a real SQLite store and a stand-in agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentHandle, GroupStatus } from '../agent/types.js';
import { isBerthError } from '../lib/errors.js';
import { SqliteStore } from '../store/sqlite.js';
import { InstancesService } from './service.js';
import { parseGroupSpec } from './model.js';
import { fakeAgent } from './testing.js';

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

const gone = async (svc: InstancesService, sub: string, rg: string, name: string) => {
  await svc.delete(ref(sub, rg, name));
  for (let i = 0; i < 100 && (await code(svc.get(ref(sub, rg, name)))) === 'ok'; i++) await new Promise((r) => setTimeout(r, 5));
};

test('a published host port belongs to one group until it is deleted; other ports and updates are fine', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, fakeAgent());
  await svc.start();
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
  const again = new InstancesService(store, fakeAgent());
  await again.start();
  assert.equal(await code(again.createOrUpdate(ref('sub-a', 'rg', 'four'), put(body({ port: 8081 })))), 'PortAlreadyInUse');
  await again.stop();
  await store.close();
});

test('quotas count groups and cores per subscription and location, and free them on delete', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, fakeAgent(), { quotas: { containerGroups: 2, standardCores: 1 } });
  await svc.start();
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

test('stop returns when the agent reports the group stopped, or when a later start supersedes it; never before', async () => {
  const store = new SqliteStore(':memory:');
  // an agent that reports what it is told to, when the test says so
  let report!: (s: GroupStatus) => void;
  const applied: { uid: string; generation: number; state: string }[] = [];
  const agent: AgentHandle = { ...fakeAgent(), onStatus: (fn) => void (report = fn), apply: (d) => void applied.push(d) };
  const svc = new InstancesService(store, agent);
  await svc.start();
  await svc.createOrUpdate(ref('sub', 'rg', 'g'), put(body()));
  const status = (generation: number, state: GroupStatus['state']): GroupStatus => ({ uid: applied[0].uid, generation, provisioning: 'Succeeded', state, containers: {}, events: [] });
  report(status(1, 'Running'));
  const settled = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);

  const stopping = svc.setRunState(ref('sub', 'rg', 'g'), 'stop');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(applied.at(-1), { ...applied.at(-1)!, generation: 2, state: 'Stopped' }, 'the agent was told to stop it');
  report(status(1, 'Running')); // an older report does not end the wait
  assert.equal(await settled(stopping, 300), false);
  report(status(2, 'Stopped'));
  assert.equal(await settled(stopping, 10_000), true);

  const again = svc.setRunState(ref('sub', 'rg', 'g'), 'stop');
  await new Promise((r) => setTimeout(r, 100));
  await svc.setRunState(ref('sub', 'rg', 'g'), 'start'); // superseded before the agent got to it
  report(status(4, 'Running'));
  assert.equal(await settled(again, 10_000), true);
  assert.equal((await svc.get(ref('sub', 'rg', 'g'))).record.state, 'Running');
  await svc.stop();
  await store.close();
});

test("a port the host keeps is refused at admission, asked only for what a group newly publishes", async () => {
  const store = new SqliteStore(':memory:');
  const asked: number[][] = [];
  const svc = new InstancesService(store, fakeAgent([8780], asked));
  await svc.start();
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
