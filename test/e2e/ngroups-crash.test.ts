// kill -9 of the orchestrator (`berth orchestrator --api URL`, a process of its own) in the middle of a scale to 20 and
// of a rolling update: restarted, it converges with exactly the desired count of members, none orphaned or made twice.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ContainerInstanceClient, NGROUPS_API_VERSION, StaticTokenCredential } from '../../src/client/index.js';
import { until } from '../helpers/assertions.js';
import { endE2e, startBerth, type BerthProcess } from '../helpers/berth.js';
import { buildImage } from '../helpers/images.js';
import { membersOf, profileBody } from '../helpers/ngroups.js';
import { repo } from '../helpers/python-clients.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const BRIDGE = 'btngcrash0';
const SUB = 'ngcrash-sub';
const RG = 'crash';
let registry: TestRegistry;
let berth: BerthProcess;
let client: ContainerInstanceClient;
let image: string;
let orchestrator: ChildProcess | undefined;

/** The orchestrator as its own process; resolves once it follows the NGroups. */
async function startOrchestrator(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'orchestrator', '--api', berth.url, '--token', berth.token], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      if (/following the NGroups/.test(err)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the orchestrator exited with ${code}: ${err}`)));
  });
  return child;
}

async function kill9(child: ChildProcess) {
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
}

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'crashweb', '1')).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.132.0/24', extraArgs: ['--no-orchestrator'] });
  client = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token), apiVersion: NGROUPS_API_VERSION, pollIntervalMs: 100 });
  await client.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image, { cpu: 0.01 }));
  await client.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image, { cpu: 0.01, env: [{ name: 'V', value: '2' }] }));
  orchestrator = await startOrchestrator();
});
after(async () => {
  if (orchestrator && orchestrator.exitCode === null && orchestrator.signalCode === null) await kill9(orchestrator);
  // the members go with their NGroups, which need an orchestrator
  orchestrator = await startOrchestrator().catch(() => undefined);
  client?.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE });
  if (orchestrator) await kill9(orchestrator);
});

const ngroupId = (name: string) => client.ngroups.id(RG, name);

/** Every group of the resource group is a member of the NGroup (none orphaned), and there are exactly `count`, all ready at `revision`, for a while. */
async function converged(name: string, count: number, revision: number) {
  await until(`${count} members ready at revision ${revision}`, async () => {
    const all = await client.containerGroups.listByResourceGroup(RG).toArray();
    const members = await membersOf(client, RG, ngroupId(name));
    return all.length === count && members.length === count && members.every((m) => m.ready && m.revision === revision && !m.deleting);
  }, 120_000, 200);
  // and it stays so: nothing made twice after the fact
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    const all = await client.containerGroups.listByResourceGroup(RG).toArray();
    assert.equal(all.length, count, `${all.map((g) => g.name).join(', ')}`);
    assert.ok(all.every((g) => g.properties.orchestratorId === ngroupId(name)), 'no group of the resource group is outside the NGroup');
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('kill -9 in the middle of a scale to 20, twice: restarted, it ends with exactly 20 members', async () => {
  await client.ngroups.createOrUpdate(RG, 'big', {
    location: 'local',
    properties: { elasticProfile: { desiredCount: 1 }, containerGroupProfiles: [{ resource: { id: client.containerGroupProfiles.id(RG, 'web') }, revision: 1 }] },
  }, { timeoutMs: 60_000 });
  await client.ngroups.beginUpdate(RG, 'big', { properties: { elasticProfile: { desiredCount: 20 } } });
  const killedAt: number[] = [];
  for (const atLeast of [3, 10]) {
    await until(`${atLeast} members`, async () => (await membersOf(client, RG, ngroupId('big'))).length >= atLeast, 60_000, 20);
    await kill9(orchestrator!);
    killedAt.push((await membersOf(client, RG, ngroupId('big'))).length);
    orchestrator = await startOrchestrator();
  }
  assert.ok(killedAt[0] < 20, `killed with ${killedAt.join(' and ')} members made`);
  await converged('big', 20, 1);
  console.log(`killed at ${killedAt.join(' and ')} of 20 members; converged to exactly 20`);
  await client.ngroups.delete(RG, 'big', { timeoutMs: 120_000 });
});

test('kill -9 in the middle of a rolling update, twice: restarted, it finishes it with exactly the desired count', async () => {
  const spec = (revision: number) => ({
    location: 'local',
    properties: {
      elasticProfile: { desiredCount: 6 }, containerGroupProfiles: [{ resource: { id: client.containerGroupProfiles.id(RG, 'web') }, revision }],
      updateProfile: { updateMode: 'Rolling' as const, rollingUpdateProfile: { maxBatchPercent: 34, pauseTimeBetweenBatches: 'PT1S', healthyDeadline: 'PT60S' } },
    },
  });
  await client.ngroups.createOrUpdate(RG, 'roll', spec(1), { timeoutMs: 60_000 });
  await converged('roll', 6, 1);
  await client.ngroups.beginCreateOrUpdate(RG, 'roll', spec(2));
  const killedAt: string[] = [];
  for (const atLeast of [1, 3]) {
    await until(`${atLeast} members at revision 2`, async () => (await membersOf(client, RG, ngroupId('roll'))).filter((m) => m.revision === 2).length >= atLeast, 60_000, 20);
    await kill9(orchestrator!);
    const ms = await membersOf(client, RG, ngroupId('roll'));
    killedAt.push(`${ms.filter((m) => m.revision === 2).length} of ${ms.length}`);
    orchestrator = await startOrchestrator();
  }
  await until('the update completed', async () => (await client.ngroups.latestRollingUpdate(RG, 'roll'))?.state === 'Completed', 120_000, 200);
  await converged('roll', 6, 2);
  console.log(`killed with ${killedAt.join(' and ')} members at revision 2; completed with exactly 6`);
});
