// kill -9 of berth while groups run: after a restart every group is still Running with the same processes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btcrash0';
const SUBNET = '10.213.66.0/24';
const N = 20;
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'ticker', '1')).reference;
});
after(() => endE2e({ berth, subscriptions: ['crash-sub'], registry, bridge: BRIDGE }));

test(`kill -9 of berth with ${N} groups running loses nothing, and a create in the crash window is all or nothing`, async () => {
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET });
  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  let api = new Api(berth, 'crash-sub');
  const ticker = group(image, { command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done'], cpu: 0.1, memoryInGB: 0.05 });
  const names = Array.from({ length: N }, (_, i) => `g${i}`);
  await Promise.all(names.map((n) => api.createAndWait('crash', n, ticker)));
  const pidsBefore = ociContainers(berth.runcRoot);
  assert.equal(pidsBefore.size, N);
  const logLen = async (n: string) => (await api.req('GET', `${api.groupPath('crash', n)}/containers/main/logs`)).body.content.length as number;
  const lenBefore = await logLen('g0');

  // The crash window: a create is in flight when berth dies.
  const inflight = api.req('PUT', api.groupPath('crash', 'window'), ticker).catch((e: Error) => ({ status: 0, error: e }));
  await new Promise((r) => setTimeout(r, 5));
  await berth.stop('SIGKILL');
  const answered = await inflight;

  // Containers outlive berth: same PIDs, still running, logs still growing.
  assert.deepEqual(new Map([...ociContainers(berth.runcRoot)].filter(([id]) => pidsBefore.has(id))), pidsBefore);
  const dataDir = berth.dataDir;
  berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET, dataDir });
  api = new Api(berth, 'crash-sub');
  for (const n of names) {
    const g = (await api.req('GET', api.groupPath('crash', n))).body;
    assert.equal(g.properties.instanceView.state, 'Running', n);
    assert.equal(g.properties.containers[0].properties.instanceView.restartCount, 0, n);
  }
  const pidsAfter = ociContainers(berth.runcRoot);
  for (const [id, pid] of pidsBefore) assert.equal(pidsAfter.get(id), pid, `container ${id} kept its PID`);
  await api.waitFor('logs to keep flowing', async () => (await logLen('g0')) > lenBefore + 20, 10_000);

  // The group of the crash window is either fully there (and comes up) or fully gone.
  const w = await api.req('GET', api.groupPath('crash', 'window'));
  if (w.status === 200) {
    await api.waitFor('the crash-window group to run', async () => (await api.req('GET', api.groupPath('crash', 'window'))).body.properties.instanceView.state === 'Running', 30_000);
    assert.equal(ociContainers(berth.runcRoot).size, N + 1);
  } else {
    assert.equal(w.status, 404);
    assert.notEqual(answered.status, 201, 'a create that was acknowledged must not be lost');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(ociContainers(berth.runcRoot).size, N);
  }

  const all = (await api.req('GET', '/subscriptions/crash-sub/providers/Microsoft.ContainerInstance/containerGroups')).body.value as { name: string }[];
  await Promise.all(all.map((g) => api.deleteAndWait('crash', g.name)));
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
});
