// NGroups benchmark: an NGroup of N made from scratch, a replacement after a delete, a rolling update and a rollback, and
// (with --autoscale) the autoscaler with the HPA's real windows (15 s sync, 30 s metric window, 5-minute scale-down
// window, 10% tolerance; the server's metrics every 5 s) under a real load: its timeline, and 5 minutes of noise.
// Usage: node dist/bench/ngroups.js [--members N] [--samples N] [--autoscale] [--json FILE]   (as root, like the tests)
import { writeFileSync } from 'node:fs';
import { ContainerInstanceClient, NGROUPS_API_VERSION, StaticTokenCredential, type NGroup } from '../src/client/index.js';
import { until } from '../test/helpers/assertions.js';
import { endE2e, startBerth } from '../test/helpers/berth.js';
import { buildImage } from '../test/helpers/images.js';
import { BURN_CGI, cpuLoad, membersOf, profileBody, readyMembersOf, requestCost } from '../test/helpers/ngroups.js';
import { startRegistry } from '../test/helpers/registry.js';
import { summarize } from './lib.js';

const argv = process.argv.slice(2);
const num = (flag: string, d: number) => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : d);
const MEMBERS = num('--members', 20);
const SAMPLES = num('--samples', 5);
const RG = 'bench';
const SUB = 'ngbench';
/** Each burning member requests 0.1 CPU: the autoscaler's target, 50%, is 50 millicores a member. */
const PER_MEMBER_MC = 50;

const registry = await startRegistry();
const image = (await buildImage(registry.host, 'ngbench', '1', { files: { '/www/cgi-bin/burn': BURN_CGI } })).reference;
// the server's defaults (metrics read every 5 s, the orchestrator in the server)
const berth = await startBerth({ bridge: 'btngbench0', subnet: '10.213.136.0/22' });
const client = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token), apiVersion: NGROUPS_API_VERSION, pollIntervalMs: 50 });
const results: Record<string, unknown> = {};
const id = (name: string) => client.ngroups.id(RG, name);
const ngroup = (profile: string, count: number, o: { revision?: number; rolling?: object; elastic?: object } = {}): NGroup => ({
  location: 'local',
  properties: {
    elasticProfile: { desiredCount: count, ...o.elastic },
    containerGroupProfiles: [{ resource: { id: client.containerGroupProfiles.id(RG, profile) }, ...(o.revision !== undefined && { revision: o.revision }) }],
    ...(o.rolling && { updateProfile: { updateMode: 'Rolling', rollingUpdateProfile: { pauseTimeBetweenBatches: 'PT0S', ...o.rolling } } }),
  },
});
const allReady = async (name: string, count: number, revision?: number) => {
  const ms = (await membersOf(client, RG, id(name))).filter((m) => !m.deleting);
  return ms.length === count && ms.every((m) => m.ready && (revision === undefined || m.revision === revision));
};
const desiredOf = async (name: string) => (await client.ngroups.get(RG, name)).properties!.elasticProfile!.desiredCount!;
const log = (line: string) => process.stderr.write(`${line}\n`);

try {
  await client.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image, { cpu: 0.01 }));
  await client.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image, { cpu: 0.01, env: [{ name: 'V', value: '2' }] }));
  await client.containerGroupProfiles.createOrUpdate(RG, 'web', profileBody(image, { cpu: 0.01, ready: false }));
  const big = (revision: number) => ngroup('web', MEMBERS, { revision, elastic: { maintainDesiredCount: true }, rolling: { maxBatchPercent: 20, healthyDeadline: 'PT10S' } });

  // an NGroup of N from scratch: from the PUT to every member ready (then deleted, untimed), SAMPLES times
  const createMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = Date.now();
    await client.ngroups.beginCreateOrUpdate(RG, 'big', big(1));
    await until('all members ready', () => allReady('big', MEMBERS, 1), 300_000, 50);
    createMs.push(Date.now() - t0);
    if (i < SAMPLES - 1) await client.ngroups.delete(RG, 'big', { timeoutMs: 300_000 });
  }
  results.createMs = summarize(createMs);
  log(`${MEMBERS} members ready after the PUT: ${JSON.stringify(results.createMs)}`);

  // a deleted member: until its replacement is Running
  const replaceMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const before = (await membersOf(client, RG, id('big'))).map((m) => m.name);
    const t0 = Date.now();
    await client.containerGroups.beginDelete(RG, before[0]);
    await until('a replacement Running', async () => {
      const fresh = (await client.containerGroups.listByResourceGroup(RG).toArray()).find((g) => g.properties.orchestratorId === id('big') && !before.includes(g.name));
      return !!fresh && (await client.containerGroups.get(RG, fresh.name)).properties.instanceView?.state === 'Running';
    }, 60_000, 20);
    replaceMs.push(Date.now() - t0);
    await until('settled', () => allReady('big', MEMBERS), 60_000, 50);
  }
  results.replaceMs = summarize(replaceMs);
  log(`replacement Running after a delete: ${JSON.stringify(results.replaceMs)}`);

  // a rolling update to revision 2 (batches of 20%, no pause), then one to a revision that never becomes ready
  let t0 = Date.now();
  await client.ngroups.beginCreateOrUpdate(RG, 'big', big(2));
  await until('the update completed', async () => (await client.ngroups.latestRollingUpdate(RG, 'big'))?.state === 'Completed', 600_000, 100);
  results.rollingUpdateMs = Date.now() - t0;
  log(`rolling update of ${MEMBERS} members, batches of 20%, no pause: ${results.rollingUpdateMs} ms`);
  t0 = Date.now();
  await client.ngroups.beginCreateOrUpdate(RG, 'big', big(3));
  await until('rolled back', async () => (await client.ngroups.latestRollingUpdate(RG, 'big'))?.state === 'RolledBack', 600_000, 100);
  await until('every member back on revision 2 and ready', () => allReady('big', MEMBERS, 2), 300_000, 100);
  results.rollbackMs = Date.now() - t0;
  log(`rollback of a revision never ready (healthyDeadline 10 s), until every member is ready on the old one: ${results.rollbackMs} ms`);
  await client.ngroups.delete(RG, 'big', { timeoutMs: 300_000 });

  if (argv.includes('--autoscale')) {
    await client.containerGroupProfiles.createOrUpdate(RG, 'burn', profileBody(image, { cpu: 0.1, cpuLimit: 1, burn: true }));
    // the HPA's defaults: nothing but the bounds and the target given
    const auto = { autoscale: { minCount: 1, maxCount: 10, targetCpuUtilizationPercent: 50 } };
    // what a request costs a member under the load that follows
    await client.ngroups.createOrUpdate(RG, 'calibrate', ngroup('burn', 1), { timeoutMs: 60_000 });
    await until('ready', async () => (await readyMembersOf(client, RG, id('calibrate'))).length === 1, 60_000);
    const cost = await requestCost(client, RG, id('calibrate'), 3.5 * PER_MEMBER_MC);
    await client.ngroups.delete(RG, 'calibrate', { timeoutMs: 60_000 });
    log(`one request costs ${cost.toFixed(1)} ms of CPU`);

    // the timeline: a load of 3.5 members' worth on 1 member, then none
    await client.ngroups.createOrUpdate(RG, 'up', ngroup('burn', 1, { elastic: auto }), { timeoutMs: 60_000 });
    // a load arriving at a member that runs already: once the autoscaler measures it (a member's first metric
    // window holds its start-up, which the autoscaler leaves out)
    await until('the autoscaler measures the idle member', async () => (await client.ngroups.get(RG, 'up')).properties?.instanceView?.autoscale?.utilizationPercent !== undefined, 120_000, 1000);
    const timeline: { s: number; desired: number; ready: number; utilization?: number; load: boolean }[] = [];
    let loadOn = true;
    t0 = Date.now();
    const sampling = (async () => {
      while (timeline.length === 0 || timeline[timeline.length - 1].desired !== 1 || loadOn) {
        const ng = await client.ngroups.get(RG, 'up');
        timeline.push({
          s: Math.round((Date.now() - t0) / 100) / 10, desired: ng.properties!.elasticProfile!.desiredCount!, ready: (await readyMembersOf(client, RG, id('up'))).length,
          utilization: ng.properties?.instanceView?.autoscale?.utilizationPercent as number | undefined, load: loadOn,
        });
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const load = cpuLoad(client, RG, id('up'), { rate: (3.5 * PER_MEMBER_MC) / cost, holdMillicores: 3.5 * PER_MEMBER_MC });
    await until('4 members ready', async () => (await desiredOf('up')) === 4 && (await readyMembersOf(client, RG, id('up'))).length === 4, 300_000, 200);
    results.autoscaleUpMs = Date.now() - t0;
    // a minute at 4 under the load, then the load stops
    await until('a minute at 4', () => Date.now() - t0 - (results.autoscaleUpMs as number) >= 60_000, 61_000, 1000);
    await load.stop();
    loadOn = false;
    const stoppedAt = Date.now();
    await until('back to 1', async () => (await desiredOf('up')) === 1, 900_000, 1000);
    results.autoscaleDownMs = Date.now() - stoppedAt;
    await sampling;
    results.autoscaleTimeline = timeline;
    results.autoscaleMaxDesired = Math.max(...timeline.map((x) => x.desired));
    log(`autoscale (real windows): 1 -> 4 ready ${results.autoscaleUpMs} ms after a load of 3.5 members' worth began (highest desiredCount ${results.autoscaleMaxDesired}); back to 1 ${results.autoscaleDownMs} ms after it stopped`);
    await client.ngroups.delete(RG, 'up', { timeoutMs: 120_000 });

    // 5 minutes of a load at 90% of the target on 4 members, ±10% each second
    await client.ngroups.createOrUpdate(RG, 'steady', ngroup('burn', 4), { timeoutMs: 60_000 });
    await until('4 ready', async () => (await readyMembersOf(client, RG, id('steady'))).length === 4, 60_000);
    const noisy = cpuLoad(client, RG, id('steady'), { rate: (3.6 * PER_MEMBER_MC) / cost, noise: 0.1, holdMillicores: 3.6 * PER_MEMBER_MC });
    await noisy.settled(120_000);
    await client.ngroups.update(RG, 'steady', { properties: { elasticProfile: auto } });
    const counts = new Set<number>();
    const utilization: number[] = [];
    t0 = Date.now();
    await until('5 minutes of autoscaling', async () => {
      const ng = await client.ngroups.get(RG, 'steady');
      counts.add(ng.properties!.elasticProfile!.desiredCount!);
      const u = ng.properties?.instanceView?.autoscale?.utilizationPercent as number | undefined;
      if (u !== undefined && u !== utilization[utilization.length - 1]) utilization.push(u);
      return Date.now() - t0 >= 300_000;
    }, 310_000, 1000);
    await noisy.stop();
    results.noisyLoad = { desiredCounts: [...counts], utilizationPercent: { min: Math.min(...utilization), max: Math.max(...utilization), readings: utilization.length } };
    log(`5 minutes of a load at 90% of the target ±10%: desiredCount took the values ${JSON.stringify([...counts])}; the autoscaler measured ${JSON.stringify(results.noisyLoad)}`);
    await client.ngroups.delete(RG, 'steady', { timeoutMs: 120_000 });
  }
} finally {
  client.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: 'btngbench0' });
}
const out = JSON.stringify({ members: MEMBERS, samples: SAMPLES, ...results }, null, 2);
process.stdout.write(`${out}\n`);
if (argv.includes('--json')) writeFileSync(argv[argv.indexOf('--json') + 1], out);
