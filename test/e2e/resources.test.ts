// Resources inside a group: an init reaps what a fork bomb and dropped exec sessions leave; a group's disk is bounded and it is told when full.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { execSession } from '../helpers/exec.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Api, endE2e, group, groupDiskLoops, hostFootprint, ociContainers, startBerth, type BerthProcess } from '../helpers/berth.js';

const BRIDGE = 'btres0';
const SUB = 'res-sub';
const RG = 'res';
const MiB = 1 << 20;
/** 64 MiB disks: small enough to fill in a test. */
const DISK_GB = 1 / 16;
let registry: TestRegistry;
let berth: BerthProcess;
let api: Api;
let image: string;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'tools', '1')).reference;
  // a quick backstop poll: a full disk is noticed there when no container exits
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.124.0/24', config: { diskLimitGB: DISK_GB, agentPollMs: 500, sandboxPool: 2 } });
  api = new Api(berth, SUB);
});
after(() => endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE }));

const get = async (name: string) => (await api.req('GET', api.groupPath(RG, name))).body;
const logs = async (name: string) => (await api.req('GET', `${api.groupPath(RG, name)}/containers/main/logs`)).body?.content as string;
type Ev = { name: string; message: string; type: string };

/** The pids cgroup file of a berth container (default parent /berth); pids.current counts zombies until they are reaped. */
const pidsFile = (id: string, file: string) => readFileSync(`/sys/fs/cgroup/pids/berth/${id}/${file}`, 'utf8').trim();

test('a fork bomb and a dropped exec session leave no zombie in the container, and exec keeps working', async () => {
  // `sleep` never reaps: as the container's PID 1 it would keep every orphan a zombie
  const others = new Set(ociContainers(berth.runcRoot).keys());
  await api.createAndWait(RG, 'bomb', group(image, { command: ['sleep', '100000'], cpu: 0.25, memoryInGB: 0.25 }));
  const id = [...ociContainers(berth.runcRoot).keys()].find((c) => !others.has(c))!;
  const pids = () => Number(pidsFile(id, 'pids.current'));
  const comm = (pid: string) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  await api.waitFor('the command to run', async () => pidsFile(id, 'cgroup.procs').split('\n').some((p) => comm(p) === 'sleep'));
  const base = pids(); // the init and its command

  // orphans: backgrounded sleeps outlive the exec'd shell and are reparented to the container's PID 1
  const orphans = await execSession(api, RG, 'bomb', 'main', "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done'");
  assert.deepEqual(await orphans.closed, { code: 1000, reason: 'exit 0' });
  await api.waitFor('the orphans reaped', async () => pids() === base, 15_000);

  // a fork bomb until the pids limit refuses forks, then its client goes away without a close frame
  const bomb = await execSession(api, RG, 'bomb', 'main', "sh -c 'b() { b | b & }; b; exec sleep 1000'");
  await api.waitFor('the pids limit to refuse forks', async () => Number(/max (\d+)/.exec(pidsFile(id, 'pids.events'))?.[1]) > 0, 60_000);
  bomb.ws.terminate();
  await api.waitFor('every process of the bomb gone and reaped', async () => pids() === base, 60_000);

  const echo = await execSession(api, RG, 'bomb', 'main', 'echo still forks');
  assert.deepEqual(await echo.closed, { code: 1000, reason: 'exit 0' });
  assert.equal(echo.output(), 'still forks\n');
  const g = await get('bomb');
  assert.equal(g.properties.instanceView.state, 'Running');
  assert.equal(g.properties.containers[0].properties.instanceView.restartCount, 0);
  await api.deleteAndWait(RG, 'bomb');
});

test('a group writing past its disk limit gets ENOSPC and keeps running, its view says why; its delete frees the loop device, mount and image', async () => {
  const before = hostFootprint(berth.runcRoot, berth.dataDir);
  const disksDir = join(berth.dataDir, 'disks');
  const body = group(image, {
    command: ['sh', '-c', [
      'dd if=/dev/zero of=/layer bs=1M count=40 2>/dev/null; echo layer=$?',
      'dd if=/dev/zero of=/scratch/volume bs=1M count=40; echo volume=$?',
      'echo done; exec sleep 100000',
    ].join('; ')],
  }) as any;
  body.properties.volumes = [{ name: 'scratch', emptyDir: {} }];
  body.properties.containers[0].properties.volumeMounts = [{ name: 'scratch', mountPath: '/scratch' }];
  const others = new Set(ociContainers(berth.runcRoot).keys());
  await api.createAndWait(RG, 'filler', body);
  const uid = [...ociContainers(berth.runcRoot).keys()].find((id) => !others.has(id))!.replace(/-g\d+-main$/, '');
  const text = await api.waitFor('the writes to end', async () => (await logs('filler'))?.includes('done') && logs('filler'), 30_000);
  // the writable layer and the emptyDir share the limit: 40 MiB fit, the next 40 MiB do not
  assert.match(text, /^layer=0$/m);
  assert.match(text, /No space left on device/);
  assert.match(text, /^volume=1$/m);

  const g = await api.waitFor('a DiskFull event', async () => {
    const x = await get('filler');
    return x.properties.instanceView.events.some((e: Ev) => e.name === 'DiskFull') && x;
  }, 15_000);
  const groupEvent = g.properties.instanceView.events.find((e: Ev) => e.name === 'DiskFull');
  assert.equal(groupEvent.type, 'Warning');
  assert.match(groupEvent.message, /disk is full: .* share a limit of 64(\.0)? MiB .*No space left on device/);
  const view = g.properties.containers[0].properties.instanceView;
  assert.ok(view.events.some((e: Ev) => e.name === 'DiskFull' && e.message === groupEvent.message), 'the container is told too');
  assert.equal(view.currentState.state, 'Running', 'a full disk does not stop the group');
  assert.equal(view.restartCount, 0);
  assert.equal(g.properties.instanceView.state, 'Running');

  // bounded on the host too: the sparse image never takes more real disk than its size
  const disks = readdirSync(disksDir).filter((f) => f.startsWith(uid));
  assert.equal(disks.length, 1);
  assert.ok(statSync(join(disksDir, disks[0], 'disk.img')).blocks * 512 <= 64 * MiB);
  assert.equal(groupDiskLoops(berth.dataDir).length, 1);

  await api.deleteAndWait(RG, 'filler');
  assert.deepEqual(hostFootprint(berth.runcRoot, berth.dataDir), before);
  assert.deepEqual(readdirSync(disksDir).filter((f) => f.startsWith(uid)), [], 'image and mount point gone');
  assert.equal(groupDiskLoops(berth.dataDir).length, 0);
  assert.ok(existsSync(join(disksDir, 'pool')));
});
