// Two service principals, two subscriptions: each logs in through berth's token endpoint and sees only its own.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Api, endE2e, group, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'bttenant0';
let berth: BerthProcess;
const principals = [
  { clientId: 'app-a', clientSecret: 'secret-a-123', tenantId: '11111111-1111-1111-1111-111111111111', subscriptions: ['sub-a'] },
  { clientId: 'app-b', clientSecret: 'secret-b-456', tenantId: '22222222-2222-2222-2222-222222222222', subscriptions: ['sub-b'] },
];

before(async () => {
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.70.0/24', config: { servicePrincipals: principals, subscriptions: ['sub-a', 'sub-b'] } });
});
after(() => endE2e({ berth, subscriptions: ['sub-a', 'sub-b'], bridge: BRIDGE }));

async function login(clientId: string, clientSecret: string, tenant = 'adfs') {
  const conf = await (await fetch(`${berth.httpsUrl}/adfs/.well-known/openid-configuration`)).json() as { token_endpoint: string };
  const tokenUrl = tenant === 'adfs' ? conf.token_endpoint : `${berth.httpsUrl}/${tenant}/oauth2/token`;
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, resource: `${berth.httpsUrl}/` }),
  });
  return { status: res.status, body: await res.json() as Record<string, string> };
}

test('each principal gets a token, lists only its subscription, and cannot see or touch the other one', async () => {
  const a = await login('app-a', 'secret-a-123');
  const b = await login('app-b', 'secret-b-456', principals[1].tenantId);
  assert.equal(a.status, 200);
  assert.equal(a.body.token_type, 'Bearer');
  assert.equal(b.status, 200);
  const bad = await login('app-a', 'wrong');
  assert.equal(bad.status, 401);
  assert.equal(bad.body.error, 'invalid_client');

  const apiA = new Api({ url: berth.httpsUrl, token: a.body.access_token }, 'sub-a');
  const apiB = new Api({ url: berth.httpsUrl, token: b.body.access_token }, 'sub-b');
  const subsA = await apiA.req('GET', '/subscriptions?api-version=2019-11-01');
  assert.deepEqual(subsA.body.value.map((s: { subscriptionId: string; tenantId: string }) => [s.subscriptionId, s.tenantId]), [['sub-a', principals[0].tenantId]]);

  await apiA.create('rg', 'mine', group('127.0.0.1:5999/never:1'));
  await apiB.create('rg', 'mine', group('127.0.0.1:5999/never:1'));
  const listA = await apiA.req('GET', '/subscriptions/sub-a/providers/Microsoft.ContainerInstance/containerGroups');
  assert.deepEqual(listA.body.value.map((g: { id: string }) => g.id), ['/subscriptions/sub-a/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/mine']);

  // A's token on B's subscription: every verb refused as ARM refuses it, and B's group untouched.
  const asA = new Api({ url: berth.httpsUrl, token: a.body.access_token }, 'sub-b');
  for (const [method, path] of [
    ['GET', asA.groupPath('rg', 'mine')],
    ['DELETE', asA.groupPath('rg', 'mine')],
    ['PUT', asA.groupPath('rg', 'other')],
    ['POST', `${asA.groupPath('rg', 'mine')}/stop`],
    ['GET', `${asA.groupPath('rg', 'mine')}/containers/main/logs`],
    ['GET', '/subscriptions/sub-b/providers/Microsoft.ContainerInstance/containerGroups'],
    ['GET', '/subscriptions/sub-b/resourcegroups/rg'],
  ] as const) {
    const r = await asA.req(method, path, method === 'PUT' ? group('x/y:1') : undefined);
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal(r.body.error.code, 'AuthorizationFailed', `${method} ${path}`);
  }
  assert.equal((await apiB.req('GET', apiB.groupPath('rg', 'mine'))).status, 200);

  // A forged or expired token is refused; the static token of the server sees both.
  const forged = a.body.access_token.replace(/\.[^.]+$/, '.AAAA');
  assert.equal((await new Api({ url: berth.httpsUrl, token: forged }, 'sub-a').req('GET', apiA.groupPath('rg', 'mine'))).body.error.code, 'InvalidAuthenticationToken');
  const admin = new Api(berth, 'sub-b');
  assert.equal((await admin.req('GET', admin.groupPath('rg', 'mine'))).status, 200);

  // The login endpoints are the only paths open without a token, even for a subscription named like them.
  for (const path of ['/subscriptions/oauth2/token', '/subscriptions/oauth2/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups', '/adfs/anything'])
    assert.equal((await new Api({ url: berth.httpsUrl, token: null as unknown as string }).req('GET', path, undefined, { token: null })).status, 401, path);
});

test('resource groups are resources: create, read, list, and delete with the container groups in them', async () => {
  const api = new Api(berth, 'sub-a');
  const put = await api.req('PUT', '/subscriptions/sub-a/resourcegroups/team?api-version=2022-09-01', { location: 'local', tags: { owner: 'a' } });
  assert.equal(put.status, 201);
  assert.deepEqual(put.body, { id: '/subscriptions/sub-a/resourceGroups/team', name: 'team', type: 'Microsoft.Resources/resourceGroups', location: 'local', tags: { owner: 'a' }, properties: { provisioningState: 'Succeeded' } });
  assert.equal((await api.req('PUT', '/subscriptions/sub-a/resourcegroups/team?api-version=2022-09-01', { location: 'elsewhere' })).status, 409);
  assert.equal((await api.req('GET', '/subscriptions/sub-a/resourcegroups/nope?api-version=2022-09-01')).body.error.code, 'ResourceGroupNotFound');
  await api.create('team', 'g1', group('127.0.0.1:5999/never:1'));
  await api.create('team', 'g2', group('127.0.0.1:5999/never:1'));
  const del = await api.req('DELETE', '/subscriptions/sub-a/resourcegroups/team?api-version=2022-09-01');
  assert.equal(del.status, 202);
  const location = del.headers.get('location')!;
  await api.waitFor('the resource group to go', async () => (await api.req('GET', location)).status === 200, 30_000);
  assert.equal((await api.req('GET', '/subscriptions/sub-a/resourcegroups/team?api-version=2022-09-01')).status, 404);
  const left = await api.req('GET', '/subscriptions/sub-a/resourceGroups/team/providers/Microsoft.ContainerInstance/containerGroups');
  assert.deepEqual(left.body.value, []);
});

test("ARM's cloud metadata answers without a token, in the shape of each api-version clients send, doubled slashes too", async () => {
  const B = berth.httpsUrl;
  const get = async (path: string) => {
    const r = await fetch(`${B}${path}`);
    return { status: r.status, body: await r.json() as any };
  };
  // Debian's az (msrestazure): 2015-01-01, after a doubled slash when the endpoint ends in '/'
  const old = await get('//metadata/endpoints?api-version=2015-01-01');
  assert.equal(old.status, 200);
  assert.deepEqual(old.body.authentication, { loginEndpoint: `${B}/adfs`, audiences: [`${B}/`], tenant: 'adfs', identityProvider: 'ADFS' });
  assert.equal(old.body.graphEndpoint, `${B}/`);
  // today's az: 2022-09-01, one cloud with its name, endpoints and suffixes
  const now = await get('//metadata/endpoints?api-version=2022-09-01');
  assert.equal(now.status, 200);
  assert.equal(now.body.resourceManager, `${B}/`);
  assert.equal(now.body.authentication.loginEndpoint, `${B}/adfs`);
  assert.ok(now.body.name && typeof now.body.suffixes === 'object', JSON.stringify(now.body));
  // 2019-05-01 and 2020-06-01: a list of clouds
  const list = await get('/metadata/endpoints?api-version=2019-05-01');
  assert.deepEqual(list.body, [now.body]);
  // nothing else is public: an ARM route without a token is still refused
  assert.equal((await fetch(`${B}//subscriptions?api-version=2022-09-01`)).status, 401);
});
