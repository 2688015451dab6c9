// A store an earlier berth wrote (records only, admission decided in memory) is brought to the current layout at start, once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../lib/errors.js';
import { SqliteStore } from '../store/sqlite.js';
import { hostSpecOf } from './host-specs.js';
import { parseGroupSpec } from './model.js';
import type { GroupRecord } from './records.js';
import { InstancesService } from './service.js';
import { fakeDataPlane } from './testing.js';
import { LAYOUT } from './upgrade.js';

const spec = (port: number, cpu: number) => parseGroupSpec({
  location: 'local',
  properties: { containers: [{ name: 'c', properties: { image: 'i:1', ports: [{ port }], resources: { requests: { cpu, memoryInGB: 0.5 } } } }], ipAddress: { type: 'Public', ports: [{ port }] } },
}).spec;

/** A record as berth wrote it before hosts had specs: the host under `node`. */
const oldRecord = (uid: string, name: string, port: number, o: Partial<GroupRecord> = {}) => {
  const rec = {
    uid, subscriptionId: 'sub', resourceGroup: 'rg', name, location: 'Local', tags: {}, spec: spec(port, 0.5), generation: 3, state: 'Running',
    deleting: false, node: 'local', createdAt: '2026-01-01T00:00:00.000Z', ...o,
  } as Partial<GroupRecord>;
  delete rec.host;
  return rec;
};

const code = (p: Promise<unknown>) => p.then(() => 'ok', (e) => (isBerthError(e) ? e.code : String(e)));

test('groups of an earlier berth are placed on their host with their specs, and their ports and quota shares become keys', async () => {
  const store = new SqliteStore(':memory:');
  await store.put('/groups/sub/rg/a', oldRecord('00000000000a', 'a', 8080));
  await store.put('/groups/sub/rg/b', oldRecord('00000000000b', 'b', 8081, { state: 'Stopped' }));
  await store.put('/groups/sub/rg/c', oldRecord('00000000000c', 'c', 8082, { deleting: true }));
  const reported = { uid: '00000000000a', generation: 3, provisioning: 'Succeeded', state: 'Running', containers: {}, events: [] };
  await store.put('/status/00000000000a', reported);
  const svc = new InstancesService(store, () => fakeDataPlane(), { quotas: { containerGroups: 4, standardCores: 100 } });
  await svc.start();
  const a = (await store.get<GroupRecord>('/groups/sub/rg/a'))!.value;
  assert.equal(a.host, 'local');
  assert.equal(a.node, undefined);
  assert.deepEqual((await store.get('/hostspecs/local/00000000000a'))?.value, hostSpecOf(a));
  assert.equal((await store.get<{ spec: { state: string } }>('/hostspecs/local/00000000000b'))?.value.spec.state, 'Stopped');
  assert.equal(await store.get('/hostspecs/local/00000000000c'), undefined, 'a deleting group is not placed…');
  assert.deepEqual((await store.get('/removing/local/00000000000c'))?.value, { groupKey: '/groups/sub/rg/c' }, '…its removal is awaited');
  assert.deepEqual(await svc.gateway.resume('local'), { statuses: [reported], removing: ['00000000000c'] }, 'the host resumes from its last report');
  assert.deepEqual(await svc.usage('sub', 'local'), { containerGroups: { current: 3, limit: 4 }, standardCores: { current: 1.5, limit: 100 } });
  assert.equal(await code(svc.createOrUpdate({ subscriptionId: 'sub', resourceGroup: 'rg', name: 'd' }, { spec: spec(8082, 0.5), tags: {} })), 'PortAlreadyInUse', "the deleting group's port is held until it is gone");
  assert.equal(await code(svc.createOrUpdate({ subscriptionId: 'sub', resourceGroup: 'rg', name: 'd' }, { spec: spec(9000, 0.5), tags: {} })), 'ok');
  assert.equal(await code(svc.createOrUpdate({ subscriptionId: 'sub', resourceGroup: 'rg', name: 'e' }, { spec: spec(9001, 0.5), tags: {} })), 'ContainerGroupQuotaReached');
  assert.equal((await store.get('/meta/layout'))?.value, LAYOUT);
  await svc.stop();

  // done once: a second start changes nothing
  const revision = await store.revision();
  const again = new InstancesService(store, () => fakeDataPlane());
  await again.start();
  assert.equal(await store.revision(), revision);
  await again.stop();
  await store.close();
});
