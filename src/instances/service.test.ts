// InstancesService's O(1) create checks (host ports, quotas) against a real SQLite store and a stand-in agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../lib/errors.js';
import { SqliteStore } from '../store/sqlite.js';
import { InstancesService } from './service.js';
import { fakeAgent } from './testing.js';

const body = (o: { port?: number; cpu?: number; image?: string } = {}) => ({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'main', properties: { image: o.image ?? 'example/img:1', ports: o.port ? [{ port: o.port }] : [], resources: { requests: { cpu: o.cpu ?? 0.5, memoryInGB: 0.5 } } } }],
    ...(o.port && { ipAddress: { type: 'Public', ports: [{ port: o.port, protocol: 'TCP' }] } }),
  },
});

const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isBerthError(e) ? e.code : String(e);
  }
};

const gone = async (svc: InstancesService, sub: string, rg: string, name: string) => {
  await svc.delete(sub, rg, name);
  for (let i = 0; i < 100 && (await code(svc.get(sub, rg, name))) === 'ok'; i++) await new Promise((r) => setTimeout(r, 5));
};

test('a published host port belongs to one group until it is deleted; other ports and updates are fine', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, fakeAgent());
  await svc.start();
  assert.equal(await code(svc.createOrUpdate('sub-a', 'rg', 'one', body({ port: 8080 }))), 'ok');
  assert.equal(await code(svc.createOrUpdate('sub-b', 'other', 'two', body({ port: 8080 }))), 'PortAlreadyInUse', 'across subscriptions too: the host is shared');
  assert.equal(await code(svc.createOrUpdate('sub-a', 'rg', 'one', body({ port: 8080, image: 'example/img:2' }))), 'ok', 'the owner may update itself');
  assert.equal(await code(svc.createOrUpdate('sub-b', 'other', 'two', body({ port: 8081 }))), 'ok');
  await gone(svc, 'sub-a', 'rg', 'one');
  assert.equal(await code(svc.createOrUpdate('sub-b', 'other', 'three', body({ port: 8080 }))), 'ok', 'free again once its owner is gone');
  // a server started on the same store knows who holds what
  await svc.stop();
  const again = new InstancesService(store, fakeAgent());
  await again.start();
  assert.equal(await code(again.createOrUpdate('sub-a', 'rg', 'four', body({ port: 8081 }))), 'PortAlreadyInUse');
  await again.stop();
  await store.close();
});

test('quotas count groups and cores per subscription and location, and free them on delete', async () => {
  const store = new SqliteStore(':memory:');
  const svc = new InstancesService(store, fakeAgent(), { quotas: { containerGroups: 2, standardCores: 1 } });
  await svc.start();
  assert.equal(await code(svc.createOrUpdate('sub', 'rg', 'a', body({ cpu: 0.3 }))), 'ok');
  assert.equal(await code(svc.createOrUpdate('sub', 'rg', 'b', body({ cpu: 0.8 }))), 'StandardCoresQuotaReached');
  assert.equal(await code(svc.createOrUpdate('sub', 'rg', 'b', body({ cpu: 0.7 }))), 'ok');
  assert.deepEqual(await svc.usage('sub', 'LOCAL'), { containerGroups: { current: 2, limit: 2 }, standardCores: { current: 1, limit: 1 } });
  assert.equal(await code(svc.createOrUpdate('sub', 'rg', 'c', body({ cpu: 0.1 }))), 'ContainerGroupQuotaReached');
  assert.equal(await code(svc.createOrUpdate('other-sub', 'rg', 'c', body({ cpu: 0.1 }))), 'ok', 'another subscription has its own');
  await gone(svc, 'sub', 'rg', 'a');
  assert.deepEqual(await svc.usage('sub', 'local'), { containerGroups: { current: 1, limit: 2 }, standardCores: { current: 0.7, limit: 1 } });
  assert.equal(await code(svc.createOrUpdate('sub', 'rg', 'c', body({ cpu: 0.3 }))), 'ok');
  await svc.stop();
  await store.close();
});
