// Stop is synchronous as in ACI: it answers once the containers have stopped, and survives a kill -9 of berth midway.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btstop0';
const SUBNET = '10.213.73.0/24';
const SUB = 'stop-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'ticker', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET }); // stop grace 1 s
  api = new Api(berth, SUB);
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

// PID 1 traps SIGTERM and carries on: only the kill at the end of the stop grace ends it.
const stubborn = () => group(image, { command: ['sh', '-c', "trap 'echo got TERM' TERM; while true; do sleep 0.2; done"], cpu: 0.1, memoryInGB: 0.05 });
const mine = (uid: string) => [...ociContainers(berth.runcRoot).keys()].filter((id) => id.startsWith(uid));
const uidOf = async (name: string) => {
  // the runtime ids start with the group's uid; it is the one container of the group named `name`
  const before = new Set(ociContainers(berth.runcRoot).keys());
  await api.createAndWait('stop', name, stubborn());
  const id = [...ociContainers(berth.runcRoot).keys()].find((i) => !before.has(i))!;
  return id.split('-')[0];
};

test('stop answers once the group has stopped: the first read after it shows Stopped; start brings it back', async () => {
  const footprint = hostFootprint(berth.runcRoot, berth.dataDir);
  const uid = await uidOf('stubborn');
  assert.equal(mine(uid).length, 1);
  const t0 = Date.now();
  const stop = await api.req('POST', `${api.groupPath('stop', 'stubborn')}/stop`);
  const stopMs = Date.now() - t0;
  assert.equal(stop.status, 204, stop.text);
  const g = (await api.req('GET', api.groupPath('stop', 'stubborn'))).body;
  assert.equal(g.properties.instanceView.state, 'Stopped');
  assert.equal(g.properties.provisioningState, 'Succeeded');
  assert.equal(g.properties.containers[0].properties.instanceView.currentState.state, 'Terminated');
  assert.deepEqual(mine(uid), [], 'no container of the group is left in the runtime');

  // stopping a stopped group is a no-op that answers the same
  assert.equal((await api.req('POST', `${api.groupPath('stop', 'stubborn')}/stop`)).status, 204);
  const start = await api.req('POST', `${api.groupPath('stop', 'stubborn')}/start`);
  assert.equal(start.status, 202);
  assert.equal((await api.waitOp(start.headers.get('azure-asyncoperation')!)).status, 'Succeeded');
  assert.equal((await api.req('GET', api.groupPath('stop', 'stubborn'))).body.properties.instanceView.state, 'Running');
  await api.deleteAndWait('stop', 'stubborn');
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), footprint);
  process.stderr.write(`stop of a group whose PID 1 ignores SIGTERM answered in ${stopMs} ms (stop grace 1 s)\n`);
});

test('a kill -9 of berth during a stop: the group is Stopped after the restart and its containers are gone', async () => {
  const uid = await uidOf('crashy');
  const path = api.groupPath('stop', 'crashy');
  const stopping = api.req('POST', `${path}/stop`).then((r) => r.status, () => 'no answer');
  // Midway: the new generation is recorded (the group reads as still running, being changed) and
  // its container still runs out its stop grace; other requests are answered meanwhile.
  await api.waitFor('the stop under way', async () => {
    const g = (await api.req('GET', path)).body;
    return g.properties.provisioningState === 'Pending' && g.properties.instanceView.state === 'Running' && mine(uid).length === 1;
  }, 5_000);
  await berth.stop('SIGKILL');
  assert.equal(await stopping, 'no answer');
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET, dataDir: berth.dataDir });
  api = new Api(berth, SUB);
  await api.waitFor('the group Stopped', async () => (await api.req('GET', path)).body.properties.instanceView.state === 'Stopped', 30_000);
  await api.waitFor('its container gone', async () => mine(uid).length === 0, 30_000);
  await api.deleteAndWait('stop', 'crashy');
});
