// The berth CLI's profile and ngroup commands against a real server: az-style output, progress while members are
// made, scaled and rolled to a new revision, rollback to the revision before, and delete.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { buildImage } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { endE2e, startBerth, type BerthProcess } from '../helpers/berth.js';

const run = promisify(execFile);
const cli = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'bin/berth');
const BRIDGE = 'btngcli0';
const SUB = 'ngcli-sub';
let registry: TestRegistry;
let berth: BerthProcess;
let image: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'ngcli', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.134.0/24' });
  env = { ...process.env, BERTH_ENDPOINT: berth.url, BERTH_TOKEN: berth.token, BERTH_SUBSCRIPTION: SUB, BERTH_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'berth-cli-')) };
});
after(() => endE2e({
  berth, subscriptions: [SUB], registry, bridge: BRIDGE,
  cleanup: () => env?.BERTH_CONFIG_DIR && rmSync(env.BERTH_CONFIG_DIR, { recursive: true, force: true }),
}));

const berthCli = async (...args: string[]) => run(cli, args, { env, timeout: 180_000 });
const json = async (...args: string[]) => JSON.parse((await berthCli(...args)).stdout);

test('profile and ngroup: create, scale, update to a new revision, roll back, show, list and delete', async () => {
  const p1 = await berthCli('profile', 'create', '-g', 'cli', '-n', 'web', '--image', image, '--cpu', '0.05', '--memory', '0.05', '--ports', '80',
    '--ip-address', 'Private', '--command-line', 'httpd -f -p 80 -h /www', '--environment-variables', 'V=1');
  assert.equal(JSON.parse(p1.stdout).revision, 1, 'az shape: properties flattened');
  assert.match(p1.stderr, /web: revision 1/);
  const made = await berthCli('ngroup', 'create', '-g', 'cli', '-n', 'front', '--profile', 'web', '--count', '2', '--update-mode', 'Rolling',
    '--max-batch-percent', '50', '--pause', 'PT1S', '--prefix', 'front-', '--maintain-desired-count');
  const front = JSON.parse(made.stdout);
  assert.deepEqual([front.provisioningState, front.elasticProfile.desiredCount, front.instanceView.readyCount, front.resourceGroup], ['Succeeded', 2, 2, 'cli']);
  assert.match(made.stderr, /front: 2\/2 ready, 2 members \(revision 1: 2\)/, 'progress on stderr');

  const scaled = await berthCli('ngroup', 'scale', '-g', 'cli', '-n', 'front', '--count', '3');
  assert.equal(JSON.parse(scaled.stdout).instanceView.readyCount, 3);
  assert.match(scaled.stderr, /front: 3\/3 ready, 3 members/);

  assert.equal(JSON.parse((await berthCli('profile', 'create', '-g', 'cli', '-n', 'web', '--image', image, '--cpu', '0.05', '--memory', '0.05', '--ports', '80',
    '--ip-address', 'Private', '--command-line', 'httpd -f -p 80 -h /www', '--environment-variables', 'V=2')).stdout).revision, 2);
  const updated = await berthCli('ngroup', 'update', '-g', 'cli', '-n', 'front', '--profile-revision', '2');
  assert.deepEqual(JSON.parse(updated.stdout).instanceView.revisions, [{ revision: 2, count: 3 }]);
  // (a second between its three batches: the CLI, polling every 500 ms, sees it under way)
  assert.match(updated.stderr, /rolling update 1 -> 2: RollingForward/);
  assert.match(updated.stderr, /rolling update 1 -> 2: Completed/);

  const back = await berthCli('ngroup', 'rollback', '-g', 'cli', '-n', 'front');
  assert.deepEqual(JSON.parse(back.stdout).instanceView.revisions, [{ revision: 1, count: 3 }]);
  assert.match(back.stderr, /rolling update 2 -> 1: Completed/);

  const shown = await json('ngroup', 'show', '-g', 'cli', '-n', 'front');
  assert.equal(shown.members.length, 3);
  assert.ok(shown.members.every((m: { name: string; revision: number }) => m.name.startsWith('front-') && m.revision === 1));
  assert.equal(shown.latestRollingUpdate.toRevision, 1);
  assert.deepEqual((await json('ngroup', 'list', '-g', 'cli')).map((n: { name: string }) => n.name), ['front']);
  assert.deepEqual((await json('profile', 'revisions', '-g', 'cli', '-n', 'web')).map((p: { revision: number }) => p.revision), [1, 2]);
  assert.equal((await json('profile', 'show', '-g', 'cli', '-n', 'web', '--revision', '1')).containers[0].environmentVariables[0].value, '1');
  // a profile in use stays; the NGroup goes with its members, then the profile
  const inUse = await berthCli('profile', 'delete', '-g', 'cli', '-n', 'web').then(() => undefined, (e: { stderr: string }) => e.stderr);
  assert.match(String(inUse), /ContainerGroupProfileInUse/);
  await berthCli('ngroup', 'delete', '-g', 'cli', '-n', 'front');
  assert.deepEqual(await json('container', 'list', '-g', 'cli'), []);
  await berthCli('profile', 'delete', '-g', 'cli', '-n', 'web');
  assert.deepEqual(await json('profile', 'list'), []);
});
