// The ARM edge in process: every route declares who may call it, authorization judges the path that runs, and
// malformed requests get ARM envelopes with nothing created. A real service on SQLite; a host that runs nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { SqliteStore } from '../store/sqlite.js';
import { Authenticator } from '../arm/auth.js';
import { buildServer } from './http.js';
import { createProvider, type Provider } from './provider.js';
import { InstancesService, UNPLACED } from './service.js';
import { fakeDataPlane, fakeHost } from './testing.js';

let app: FastifyInstance;
let service: InstancesService;
let provider: Provider;
const A = 'token-a';
const B = 'token-b';
const G = (sub: string, name: string) => `/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/${name}`;
const group = (o: { location?: string; image?: string } = {}) => ({
  location: o.location ?? 'local',
  properties: { containers: [{ name: 'main', properties: { image: o.image ?? '127.0.0.1:1/img:1', resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } } }] },
});

before(async () => {
  const store = new SqliteStore(':memory:');
  service = new InstancesService(store, () => fakeDataPlane());
  await service.start();
  fakeHost(service.gateway);
  provider = createProvider(store, service);
  await provider.start();
  const auth = new Authenticator([{ token: A, subscriptions: ['sub-a'] }, { token: B, subscriptions: ['sub-b'] }], [], Buffer.alloc(32, 1));
  app = buildServer({ provider, auth, advertiseAddress: '127.0.0.1', subscriptions: ['sub-a', 'sub-b'] });
  await app.ready();
});
after(async () => {
  await app.close();
  provider.stop();
  await service.stop();
});

const call = async (method: string, url: string, token: string | undefined, body?: unknown) => {
  const r = await app.inject({
    method: method as 'GET', url, payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
  });
  return { status: r.statusCode, body: r.body ? (JSON.parse(r.body) as { error?: { code: string; message: string } } & Record<string, unknown>) : undefined };
};

test('every route declares who may call it; exactly the login, metadata and liveness routes are public', () => {
  assert.ok(app.routeTable.length > 30);
  for (const r of app.routeTable) assert.ok(['public', 'caller', 'subscription'].includes(r.scope), `${r.method} ${r.url}`);
  const open = app.routeTable.filter((r) => r.scope === 'public').map((r) => `${r.method} ${r.url}`).sort();
  assert.deepEqual(open, [
    'GET /adfs/.well-known/openid-configuration', 'GET /adfs/discovery/keys', 'GET /healthz', 'GET /metadata/endpoints',
    'HEAD /adfs/.well-known/openid-configuration', 'HEAD /adfs/discovery/keys', 'HEAD /healthz', 'HEAD /metadata/endpoints',
    'POST /:tenant/oauth2/token', 'POST /:tenant/oauth2/v2.0/token', 'POST /adfs/oauth2/token',
  ]);
  for (const r of app.routeTable.filter((x) => x.url.includes(':sub'))) assert.equal(r.scope, 'subscription', `${r.method} ${r.url}`);
});

test("a subscription is judged as the router reads it: no spelling of B's path lets A in", async () => {
  assert.equal((await call('PUT', `${G('sub-b', 'g')}?api-version=2023-05-01`, B, group())).status, 201);
  for (const path of [
    G('sub-b', 'g'), G('SUB-B', 'g'), G('%73ub-b', 'g'), `/%73ubscriptions/sub-b${G('x', 'g').slice('/subscriptions/x'.length)}`,
    `/%53UBSCRIPTIONS/sub-b${G('x', 'g').slice('/subscriptions/x'.length)}`, `//subscriptions//sub-b${G('x', 'g').slice('/subscriptions/x'.length)}/`,
  ]) {
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
      const r = await call(method, `${path}?api-version=2023-05-01`, A, method === 'PUT' || method === 'PATCH' ? group() : undefined);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body?.error?.code, 'AuthorizationFailed');
    }
  }
  assert.equal((await call('GET', `${G('sub-b', 'g')}?api-version=2023-05-01`, B)).status, 200);
  // (dot segments and absolute-form cannot be sent through inject, whose URL parser resolves them: the
  // end-to-end cross-tenant suite sends them as raw request targets)
});

test('malformed requests get ARM envelopes and create nothing', async () => {
  const before = (await service.list('sub-a')).views.length;
  let deep = '"x"';
  for (let i = 0; i < 10_000; i++) deep = `[${deep}]`;
  const cases: [string, string, unknown, number, string][] = [
    ['PUT', G('sub-a', 'deep'), `{"location":"local","properties":{"osType":${deep}}}`, 400, 'RequestContentTooComplex'],
    ['PUT', G('sub-a', 'far'), group({ location: 'elsewhere' }), 400, 'LocationNotAvailableForResourceType'],
    ['PUT', G('sub-a', 'lone'), JSON.stringify(group()).replace('"local"', '"\\uD800"'), 400, 'LocationNotAvailableForResourceType'],
    ['PUT', G('sub-a', 'huge'), group({ location: 'x'.repeat(100_000) }), 400, 'LocationNotAvailableForResourceType'],
    ['PUT', G('sub-a', 'upper'), group({ image: 'Registry.example/Upper/Case:1' }), 400, 'InvalidImage'],
    ['PUT', G('sub-a', 'tag'), group({ image: 'img:bad tag' }), 400, 'InvalidImage'],
    ['GET', '/subscriptions/sub-a/providers/Microsoft.ContainerInstance/locations/elsewhere/usages', undefined, 400, 'LocationNotAvailableForResourceType'],
    ['GET', '/subscriptions/sub-a/resourcegroups/%zz', undefined, 400, 'InvalidRequestUri'],
    ['GET', `/subscriptions/sub-a/resourcegroups/${'r'.repeat(500)}`, undefined, 400, 'InvalidResourceName'],
    ['GET', `/subscriptions/sub-a/resourcegroups/${'r'.repeat(2000)}`, undefined, 414, 'RequestUriTooLong'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const r = await call(method, `${path}${path.includes('?') ? '&' : '?'}api-version=2023-05-01`, A, body);
    assert.equal(r.status, status, `${method} ${path.slice(0, 80)}: ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body?.error?.code, code, path.slice(0, 80));
    assert.equal(typeof r.body?.error?.message, 'string');
    assert.ok(r.body!.error!.message.length < 1000, 'messages quote requests briefly');
  }
  assert.equal((await service.list('sub-a')).views.length, before);
  // ARM matches location names without case and spaces; the served name is what is stored
  assert.equal((await call('PUT', `${G('sub-a', 'spelled')}?api-version=2023-05-01`, A, group({ location: 'LO CAL' }))).body?.location, 'local');
});

test('a Host header that is not a host[:port] is never echoed into the URLs berth answers with', async () => {
  for (const host of ['evil.example/x?', 'a b', 'x"y']) {
    const meta = await app.inject({ method: 'GET', url: '/metadata/endpoints?api-version=2022-09-01', headers: { host } });
    assert.equal(meta.statusCode, 200);
    assert.ok(!meta.body.includes(host), `${host}: ${meta.body.slice(0, 200)}`);
    const put = await app.inject({
      method: 'PUT', url: `${G('sub-a', 'hosted')}?api-version=2023-05-01`, payload: JSON.stringify(group()),
      headers: { host, authorization: `Bearer ${A}`, 'content-type': 'application/json' },
    });
    assert.ok(put.statusCode < 300, put.body);
    assert.ok(!String(put.headers['azure-asyncoperation']).includes(host), String(put.headers['azure-asyncoperation']));
  }
  const named = await app.inject({ method: 'GET', url: '/metadata/endpoints?api-version=2022-09-01', headers: { host: 'berth.example:8743' } });
  assert.match(named.body, /https?:\/\/berth\.example:8743\//, 'a real host name is kept');
});

test('a server closes with watch streams open: they end, and so does it', async () => {
  const auth = new Authenticator([{ token: A, subscriptions: ['sub-a'] }], [], Buffer.alloc(32, 1));
  const live = buildServer({ provider, auth, advertiseAddress: '127.0.0.1', subscriptions: ['sub-a'] });
  const url = await live.listen({ host: '127.0.0.1', port: 0 });
  const paths = ['/subscriptions/sub-a/providers/Microsoft.ContainerInstance/containerGroups', '/subscriptions/sub-a/providers/Microsoft.ContainerInstance/ngroups'];
  const streams = await Promise.all(paths.map(async (path) => {
    const r = await fetch(`${url}${path}?api-version=2025-09-01&watch=true`, { headers: { authorization: `Bearer ${A}` } });
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /HEARTBEAT/);
    return reader;
  }));
  // a client that keeps watching must not hold a stopping server up
  let deadline: NodeJS.Timeout | undefined;
  const closed = await Promise.race([live.close().then(() => true), new Promise((r) => (deadline = setTimeout(() => r(false), 5000)))]);
  clearTimeout(deadline);
  assert.equal(closed, true, 'the server closed within 5 s');
  for (const reader of streams) {
    let end = await reader.read();
    while (!end.done) end = await reader.read();
  }
});

test("the provider's registration names its resource types and api-versions; zones only where groups are placed on hosts", async () => {
  const url = (sub: string) => `/subscriptions/${sub}/providers/Microsoft.ContainerInstance?api-version=2022-09-01`;
  const r = await call('GET', url('sub-a'), A);
  assert.equal(r.status, 200);
  const types = r.body!.resourceTypes as { resourceType: string; apiVersions: string[]; zoneMappings?: unknown }[];
  const groups = types.find((t) => t.resourceType === 'containerGroups')!;
  assert.ok(groups.apiVersions.includes('2023-05-01') && groups.apiVersions.includes('2025-09-01'));
  assert.ok(types.find((t) => t.resourceType === 'ngroups')!.apiVersions.every((v) => v >= '2024-09-01'));
  assert.ok(types.every((t) => t.zoneMappings === undefined), 'a single-host berth honours no zones and lists none');
  assert.equal((await call('GET', url('sub-b'), A)).status, 403, "another tenant's subscription");
  assert.equal((await call('GET', url('sub-a'), undefined)).status, 401);

  const cluster = new InstancesService(new SqliteStore(':memory:'), () => fakeDataPlane(), { placeOn: UNPLACED, readyZones: () => ['z2', 'z1', 'z2'] });
  assert.deepEqual(cluster.zonesInForce(), ['z1', 'z2']);
  assert.deepEqual(new InstancesService(new SqliteStore(':memory:'), () => fakeDataPlane(), { placeOn: UNPLACED }).zonesInForce(), []);
});
