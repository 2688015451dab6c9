// provisioningTimeoutInSeconds against a registry that accepts connections and never answers.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { Api, endE2e, group, hostFootprint, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btdns1';
let berth: BerthProcess;
let api: Api;
let stall: Server;
const open = new Set<Socket>();
let accepted = 0;
let image: string;

before(async () => {
  // Takes the connection, reads the request, says nothing: what a hung registry looks like to a client.
  stall = createServer((s) => {
    accepted++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.resume();
  });
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  image = `127.0.0.1:${(stall.address() as { port: number }).port}/stalled/app:1`;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.121.0/24' });
  api = new Api(berth, 'prov-sub');
});
after(() => endE2e({
  berth, subscriptions: ['prov-sub'], bridge: BRIDGE,
  cleanup: async () => {
    for (const s of open) s.destroy();
    await new Promise((r) => stall?.close(r));
  },
}));

const waitClosed = (what: string) => api.waitFor(what, async () => open.size === 0, 10_000);

test('provisioning that outruns provisioningTimeoutInSeconds fails with ARM\'s error and leaves nothing behind', async () => {
  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const spec = group(image, { ports: [8097], publish: true });
  const body = { ...spec, properties: { ...spec.properties, provisioningTimeoutInSeconds: 2 } };
  const t0 = Date.now();
  const put = await api.req('PUT', api.groupPath('rg', 'slow'), body);
  assert.equal(put.status, 201, put.text);
  const op = await api.waitOp(put.headers.get('azure-asyncoperation')!, 20_000);
  const took = Date.now() - t0;
  assert.equal(op.status, 'Failed');
  assert.equal(op.error?.code, 'ResourceDeploymentFailure');
  assert.match(op.error!.message, /did not complete within the allowed timeout period/);
  assert.match(op.error!.message, /within 2 s \(provisioningTimeoutInSeconds\); still pulling image "127\.0\.0\.1:\d+\/stalled\/app:1"/);
  assert.ok(took >= 1900 && took < 10_000, `failed after ${took} ms`);
  assert.ok(accepted > 0, 'berth did reach the registry');

  const g = (await api.req('GET', api.groupPath('rg', 'slow'))).body;
  assert.equal(g.properties.provisioningState, 'Failed');
  assert.equal(g.properties.instanceView.state, 'Failed');
  assert.ok(g.properties.instanceView.events.some((e: { name: string; message: string }) => e.name === 'Failed' && /timeout/.test(e.message)));
  // Nothing left: no sandbox, no containers, no rules, and the stalled pull itself was abandoned.
  await waitClosed('the stalled pull to be abandoned');
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
  await api.deleteAndWait('rg', 'slow');
});

test('a group stuck in provisioning is deleted at once (its pull is abandoned), without waiting for the timeout', async () => {
  const put = await api.req('PUT', api.groupPath('rg', 'stuck'), group(image));
  assert.equal(put.status, 201, put.text);
  await api.waitFor('the pull to begin', async () => open.size > 0, 10_000);
  const t0 = Date.now();
  await api.deleteAndWait('rg', 'stuck');
  assert.ok(Date.now() - t0 < 5000, `deleted in ${Date.now() - t0} ms`);
  await waitClosed('the stalled pull to be abandoned');
  assert.equal((await api.req('GET', api.groupPath('rg', 'stuck'))).status, 404);
});
