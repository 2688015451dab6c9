// Profiles and NGroups over the ARM edge in process (a real service on SQLite, an agent that runs nothing): revisions,
// groups made from a profile, NGroup validation and update rules, the status document's ETag, cancel, and errors.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../arm/auth.js';
import { SqliteStore } from '../store/sqlite.js';
import { buildServer } from './http.js';
import { createProvider, type Provider } from './provider.js';
import { InstancesService } from './service.js';
import { fakeDataPlane, fakeHost } from './testing.js';

let app: FastifyInstance;
let provider: Provider;
const T = 'token';
const V = '2025-09-01';
const RG = '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerInstance';
const PROFILE = `${RG}/containerGroupProfiles/web`;
const NG = `${RG}/ngroups/ng`;

before(async () => {
  const store = new SqliteStore(':memory:');
  const service = new InstancesService(store, () => fakeDataPlane());
  await service.start();
  fakeHost(service.gateway);
  provider = createProvider(store, service);
  await provider.start();
  app = buildServer({ provider, auth: new Authenticator([T], [], Buffer.alloc(32, 2)), advertiseAddress: '127.0.0.1', subscriptions: ['s1'] });
  await app.ready();
});
after(async () => {
  await app.close();
  provider.stop();
  await provider.service.stop();
});

async function call(method: string, path: string, body?: unknown, o: { version?: string; headers?: Record<string, string> } = {}) {
  const r = await app.inject({
    method: method as 'GET', url: `${path}${path.includes('?') ? '&' : '?'}api-version=${o.version ?? V}`,
    payload: body === undefined ? undefined : JSON.stringify(body),
    headers: { authorization: `Bearer ${T}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...o.headers },
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: r.statusCode, body: r.body ? JSON.parse(r.body) as any : undefined, headers: r.headers };
}

const profile = (image: string, extra: Record<string, unknown> = {}) => ({
  location: 'local',
  properties: {
    osType: 'Linux',
    containers: [{ name: 'web', properties: { image, environmentVariables: [{ name: 'S', secureValue: 'hidden-1' }], resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }],
    ...extra,
  },
});

test('a profile keeps numbered revisions: a changed template is the next one, tags and echoes of read-only fields are not', async () => {
  const created = await call('PUT', PROFILE, profile('img:1'));
  assert.equal(created.status, 201);
  assert.equal(created.body.properties.revision, 1);
  assert.deepEqual(created.body.properties.containers[0].properties.environmentVariables, [{ name: 'S' }], 'secure values are never echoed');
  const echo = profile('img:1', { revision: 9, registeredRevisions: [9] });
  const again = await call('PUT', PROFILE, { ...echo, tags: { a: 'b' } });
  assert.equal(again.status, 200);
  assert.equal(again.body.properties.revision, 1, 'the same template: the same revision');
  const second = await call('PUT', PROFILE, profile('img:2'));
  assert.deepEqual([second.body.properties.revision, second.body.properties.registeredRevisions], [2, [1, 2]]);
  assert.equal((await call('GET', `${PROFILE}/revisions/1`)).body.properties.containers[0].properties.image, 'img:1');
  assert.deepEqual((await call('GET', `${PROFILE}/revisions`)).body.value.map((p: { properties: { revision: number } }) => p.properties.revision), [1, 2]);
  assert.equal((await call('GET', `${PROFILE}/revisions/9`)).body.error.code, 'ContainerGroupProfileRevisionNotFound');
  assert.deepEqual((await call('PATCH', PROFILE, { tags: { t: '1' } })).body.tags, { t: '1' });
  assert.equal((await call('GET', PROFILE)).body.properties.revision, 2);
  assert.deepEqual((await call('GET', '/subscriptions/s1/providers/Microsoft.ContainerInstance/containerGroupProfiles')).body.value.map((p: { name: string }) => p.name), ['web']);
});

test('a profile is validated as a container group is, and what berth cannot honour is refused by name', async () => {
  const bad = await call('PUT', `${RG}/containerGroupProfiles/bad`, profile('img', { restartPolicy: 'Sometimes' }));
  assert.deepEqual([bad.status, bad.body.error.code, bad.body.error.target], [400, 'InvalidRestartPolicy', 'properties.restartPolicy']);
  const ttl = await call('PUT', `${RG}/containerGroupProfiles/bad`, profile('img', { timeToLive: 'PT1H' }));
  assert.deepEqual([ttl.body.error.code, ttl.body.error.target], ['UnsupportedFeature', 'properties.timeToLive']);
  assert.equal((await call('PUT', `${RG}/containerGroupProfiles/-x`, profile('img'))).body.error.code, 'InvalidResourceName');
  // where its groups run is refused as a group's is, until the scheduler places groups (never dropped from the groups)
  const zones = await call('PUT', `${RG}/containerGroupProfiles/bad`, { ...profile('img'), zones: ['1'] });
  assert.deepEqual([zones.body.error.code, zones.body.error.target], ['UnsupportedFeature', 'zones']);
  const placement = await call('PUT', `${RG}/containerGroupProfiles/bad`, profile('img', { placement: { strategy: 'Spread' } }));
  assert.deepEqual([placement.body.error.code, placement.body.error.target], ['UnsupportedFeature', 'properties.placement']);
  assert.equal((await call('GET', `${RG}/containerGroupProfiles/bad`)).status, 404, 'nothing half-made');
  // profiles came in 2024-05-01-preview
  assert.equal((await call('GET', PROFILE, undefined, { version: '2023-05-01' })).body.error.code, 'InvalidApiVersionParameter');
});

test('a group made from a profile gets its properties (secrets too) and what the body adds, and shows the revision', async () => {
  const g = await call('PUT', `${RG}/containerGroups/from-profile`, {
    location: 'local',
    properties: { containerGroupProfile: { id: PROFILE, revision: 1 }, orchestratorId: NG, containers: [{ name: 'web', properties: { environmentVariables: [{ name: 'EXTRA', value: 'x' }] } }] },
  });
  assert.equal(g.status, 201);
  assert.equal(g.body.properties.containers[0].properties.image, 'img:1');
  assert.deepEqual(g.body.properties.containers[0].properties.environmentVariables, [{ name: 'S' }, { name: 'EXTRA', value: 'x' }]);
  assert.deepEqual(g.body.properties.containerGroupProfile, { id: PROFILE, revision: 1 });
  assert.equal(g.body.properties.orchestratorId, NG);
  const group = await provider.service.get({ subscriptionId: 's1', resourceGroup: 'rg', name: 'from-profile' });
  assert.equal(group.record.spec.containers[0].environmentVariables[0].secureValue, 'hidden-1', 'the secret reached the group');
  // the latest revision when none is named; orchestratorId kept when a PUT says nothing of it
  const latest = await call('PUT', `${RG}/containerGroups/from-profile`, { location: 'local', properties: { containerGroupProfile: { id: PROFILE } } });
  assert.deepEqual([latest.body.properties.containerGroupProfile.revision, latest.body.properties.orchestratorId], [2, NG]);
  // older versions do not show what they do not know
  const old = await call('GET', `${RG}/containerGroups/from-profile`, undefined, { version: '2023-05-01' });
  assert.ok(!('containerGroupProfile' in old.body.properties) && !('orchestratorId' in old.body.properties));
  // a group's own placement is its own (refused as any group's is until the scheduler places groups)
  const placed = await call('PUT', `${RG}/containerGroups/from-profile`, { location: 'local', zones: ['1'], properties: { containerGroupProfile: { id: PROFILE } } });
  assert.deepEqual([placed.body.error.code, placed.body.error.target], ['UnsupportedFeature', 'zones']);
  const rules = await call('PUT', `${RG}/containerGroups/from-profile`, { location: 'local', properties: { containerGroupProfile: { id: PROFILE }, placement: { strategy: 'Spread' } } });
  assert.deepEqual([rules.body.error.code, rules.body.error.target], ['UnsupportedFeature', 'properties.placement']);
  const refused = await call('PUT', `${RG}/containerGroups/from-profile`, { location: 'local', properties: { containerGroupProfile: { id: PROFILE }, restartPolicy: 'Never' } });
  assert.deepEqual([refused.body.error.code, refused.body.error.target], ['InvalidRequestContent', 'properties.restartPolicy']);
  const missing = await call('PUT', `${RG}/containerGroups/nope`, { location: 'local', properties: { containerGroupProfile: { id: `${RG}/containerGroupProfiles/none` } } });
  assert.deepEqual([missing.status, missing.body.error.code], [404, 'ContainerGroupProfileNotFound']);
  const badId = await call('PUT', `${RG}/containerGroups/nope`, { ...profile('img'), properties: { ...profile('img').properties, orchestratorId: '/subscriptions/other/resourceGroups/rg/providers/Microsoft.ContainerInstance/ngroups/x' } });
  assert.deepEqual([badId.body.error.code, badId.body.error.target], ['InvalidRequestContent', 'properties.orchestratorId']);
  await call('DELETE', `${RG}/containerGroups/from-profile`);
});

test('NGroups: created (as NGroups too), validated, updated by the rules of an update, patched, listed', async () => {
  const body = { location: 'local', zones: ['1', '2'], properties: { elasticProfile: { desiredCount: 2, maintainDesiredCount: true }, placementProfile: { faultDomainCount: 2 }, containerGroupProfiles: [{ resource: { id: PROFILE } }], updateProfile: { updateMode: 'rolling', rollingUpdateProfile: { maxBatchPercent: 50 } } } };
  const created = await call('PUT', `${RG}/NGroups/ng`, body);
  assert.equal(created.status, 201);
  assert.equal(created.body.type, 'Microsoft.ContainerInstance/ngroups');
  assert.equal(created.body.properties.updateProfile.updateMode, 'Rolling');
  assert.equal(created.body.properties.provisioningState, 'Creating');
  assert.match(String(created.headers['azure-asyncoperation']), /\/operationStatuses\//);
  // maintainDesiredCount left out keeps its value; zones cannot be removed; faultDomainCount cannot change
  const kept = await call('PUT', NG, { ...body, properties: { ...body.properties, elasticProfile: { desiredCount: 3 } } });
  assert.equal(kept.body.properties.elasticProfile.maintainDesiredCount, true);
  assert.equal((await call('PUT', NG, { ...body, zones: ['1'] })).body.error.code, 'InvalidNGroupUpdate');
  assert.equal((await call('PUT', NG, { ...body, properties: { ...body.properties, placementProfile: { faultDomainCount: 3 } } })).body.error.code, 'InvalidNGroupUpdate');
  const patched = await call('PATCH', NG, { properties: { elasticProfile: { desiredCount: 5 } }, tags: { env: 'test' } });
  assert.deepEqual([patched.status, patched.body.properties.elasticProfile.desiredCount, patched.body.properties.elasticProfile.maintainDesiredCount, patched.body.tags], [200, 5, true, { env: 'test' }]);
  for (const [bad, code, target] of [
    [{ properties: { elasticProfile: { desiredCount: -1 } } }, 'InvalidRequestContent', 'properties.elasticProfile.desiredCount'],
    [{ properties: { containerGroupProfiles: [{ resource: { id: `${RG}/containerGroupProfiles/none` } }] } }, 'ContainerGroupProfileNotFound', 'properties.containerGroupProfiles[0].resource.id'],
    [{ properties: { containerGroupProfiles: [{ resource: { id: PROFILE }, revision: 7 }] } }, 'ContainerGroupProfileRevisionNotFound', 'properties.containerGroupProfiles[0].revision'],
    [{ properties: { containerGroupProfiles: [{ resource: { id: PROFILE }, networkProfile: { loadBalancer: { backendAddressPools: [{ resource: 'x' }] } } }] } }, 'UnsupportedFeature', 'properties.containerGroupProfiles[0].networkProfile'],
    [{ properties: { updateProfile: { rollingUpdateProfile: { pauseTimeBetweenBatches: 'soon' } } } }, 'InvalidRequestContent', 'properties.updateProfile.rollingUpdateProfile.pauseTimeBetweenBatches'],
    [{ properties: { elasticProfile: { containerGroupNamingPolicy: { guidNamingPolicy: { prefix: 'Bad_' } } } } }, 'InvalidRequestContent', 'properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy.prefix'],
    [{ properties: { elasticProfile: { desiredCount: 1, autoscale: { minCount: 2, maxCount: 4, targetCpuUtilizationPercent: 50 } } } }, 'InvalidRequestContent', 'properties.elasticProfile.desiredCount'],
    [{ identity: { type: 'SystemAssigned' } }, 'UnsupportedFeature', 'identity'],
  ] as const) {
    const r = await call('PUT', `${RG}/ngroups/other`, { location: 'local', ...bad });
    assert.deepEqual([r.status >= 400, r.body.error.code, r.body.error.target], [true, code, target], JSON.stringify(bad));
  }
  assert.equal((await call('GET', `${RG}/ngroups/other`)).status, 404);
  assert.deepEqual((await call('GET', `${RG}/ngroups`)).body.value.map((n: { name: string }) => n.name), ['ng']);
  assert.deepEqual((await call('GET', '/providers/Microsoft.ContainerInstance/ngroups')).body.value.map((n: { id: string }) => n.id), [NG]);
  // an older version shows no field it did not have; versions before NGroups do not have them
  assert.ok(!('updateProfile' in (await call('GET', NG, undefined, { version: '2024-09-01-preview' })).body.properties));
  assert.equal((await call('GET', NG, undefined, { version: '2024-05-01-preview' })).body.error.code, 'InvalidApiVersionParameter');
  // a profile an NGroup references stays
  assert.equal((await call('DELETE', PROFILE)).body.error.code, 'ContainerGroupProfileInUse');
});

test("the status document is written with the ETag it was read with; cancel needs an update in progress", async () => {
  const read = await call('GET', `${NG}/status`);
  assert.equal(read.body.generation, 3);
  const etag = String(read.headers.etag);
  assert.equal((await call('GET', `${NG}/latestRollingUpdate`)).body.error.code, 'RollingUpdateNotFound');
  assert.equal((await call('POST', `${NG}/cancelRollingUpdate`)).body.error.code, 'RollingUpdateNotInProgress');
  const update = { state: 'RollingForward', startTime: 't', lastAction: 'Start', lastActionTime: 't' };
  const put = await call('PUT', `${NG}/status`, { observedGeneration: 3, provisioning: { generation: 3, state: 'Succeeded' }, rollingUpdate: update }, { headers: { 'if-match': etag } });
  assert.equal(put.status, 204);
  assert.equal((await call('PUT', `${NG}/status`, { observedGeneration: 3 }, { headers: { 'if-match': etag } })).body.error.code, 'PreconditionFailed');
  assert.equal((await call('GET', NG)).body.properties.provisioningState, 'Succeeded');
  const cancelled = await call('POST', `${NG}/cancelRollingUpdate`);
  assert.deepEqual([cancelled.body.state, cancelled.body.lastAction], ['Cancelled', 'Cancel']);
  assert.equal((await call('GET', `${NG}/latestRollingUpdate`)).body.state, 'Cancelled');
  assert.equal((await call('PUT', `${NG}/status`, { rollingUpdate: { state: 'Sideways' } })).body.error.code, 'InvalidRequestContent');
});

test('deleting an NGroup without members removes it at once; deleting its resource group removes its profiles', async () => {
  const del = await call('DELETE', NG);
  assert.equal(del.status, 202);
  assert.equal((await call('GET', NG)).status, 404);
  assert.equal((await call('DELETE', NG)).status, 204);
  assert.equal((await call('DELETE', '/subscriptions/s1/resourcegroups/rg')).status, 202);
  assert.equal((await call('GET', PROFILE)).status, 404);
});
