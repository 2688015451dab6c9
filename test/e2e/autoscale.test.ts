// End to end: autoscaling an NGroup on its members' CPU (Azure Monitor's CpuUsage of each group, from its cgroup) with the
// HPA's algorithm: a load that needs 4 members brings 1 to 4 within 30 s and back after the stabilisation window; a
// constant load with ±10% noise changes nothing. Windows are shortened (2 s sync, 20 s scale-down window); the load is
// real HTTP requests, spread over the ready members as a load balancer would, each burning a fixed amount of CPU (CGI).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ContainerInstanceClient, NGROUPS_API_VERSION, StaticTokenCredential, type AutoscaleProfile } from '../../src/client/index.js';
import { until } from '../helpers/assertions.js';
import { endE2e, startBerth, type BerthProcess } from '../helpers/berth.js';
import { buildImage } from '../helpers/images.js';
import { isReady, profileBody } from '../helpers/ngroups.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const BRIDGE = 'btscale0';
const SUB = 'autoscale-sub';
const RG = 'scale';
/** Each member requests 0.1 CPU (its limit is 1): the target, 50%, is 50 millicores per member. */
const REQUEST_CORES = 0.1;
const TARGET = 50;
const PER_MEMBER_MC = REQUEST_CORES * 1000 * (TARGET / 100);
const BURN = '#!/bin/sh\ni=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\nprintf "Content-Type: text/plain\\r\\n\\r\\nburned\\n"\n';

let registry: TestRegistry;
let berth: BerthProcess;
let client: ContainerInstanceClient;
let image: string;
/** CPU one request costs a member, in ms (measured once). */
let costMs: number;

before(async () => {
  registry = await startRegistry();
  image = (await buildImage(registry.host, 'burn', '1', { files: { '/www/cgi-bin/burn': BURN } })).reference;
  berth = await startBerth({ bridge: BRIDGE, subnet: '10.213.133.0/24', config: { metricsIntervalMs: 1000 } });
  client = new ContainerInstanceClient({ endpoint: berth.url, subscriptionId: SUB, credential: new StaticTokenCredential(berth.token), apiVersion: NGROUPS_API_VERSION, pollIntervalMs: 100 });
  await client.containerGroupProfiles.createOrUpdate(RG, 'burn', profileBody(image, {
    cpu: REQUEST_CORES, cpuLimit: 1, command: ['sh', '-c', 'chmod +x /www/cgi-bin/burn && exec httpd -f -p 80 -h /www'],
  }));
});
after(async () => {
  client?.close();
  await endE2e({ berth, subscriptions: [SUB], registry, bridge: BRIDGE });
});

const ngroupId = (name: string) => client.ngroups.id(RG, name);
const desiredOf = async (name: string) => (await client.ngroups.get(RG, name)).properties?.elasticProfile?.desiredCount;
const readyMembers = async (name: string) =>
  (await client.containerGroups.listByResourceGroup(RG).toArray()).filter((g) => g.properties.orchestratorId === ngroupId(name) && isReady(g));

/**
 * Requests at a rate (per second, times a noise factor drawn each second) to the NGroup's ready members in turn,
 * as a load balancer in front of them would; members are looked up twice a second. With `holdMillicores`, the rate
 * is corrected every 2 s so that the members' CPU use (as the metrics show it) is that much: a load defined by
 * the CPU it needs, whatever one request turns out to cost on a busy machine.
 */
function load(name: string, o: { rate: number; noise?: number; holdMillicores?: number }) {
  let stopped = false;
  let targets: { ip: string; id: string }[] = [];
  let sent = 0;
  let rate = o.rate;
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const refresh = async () => {
    while (!stopped) {
      targets = (await readyMembers(name).catch(() => [])).filter((g) => g.properties.ipAddress?.ip).map((g) => ({ ip: g.properties.ipAddress!.ip!, id: g.id }));
      await pause(500);
    }
  };
  const hold = async () => {
    while (!stopped && o.holdMillicores !== undefined) {
      await pause(2000);
      const used = await Promise.all(targets.map((t) => client.metrics.list(t.id, { metricnames: 'CpuUsage', timespan: 'PT4S', interval: 'FULL' })
        .then((m) => m.value[0].timeseries[0].data[0]?.average ?? 0, () => 0)));
      const total = used.reduce((n, x) => n + x, 0);
      if (total > 0) rate *= Math.min(1.4, Math.max(0.7, o.holdMillicores / total));
    }
  };
  const send = async () => {
    let factor = 1;
    let lastDraw = 0;
    let owed = 0;
    let last = Date.now();
    while (!stopped) {
      const now = Date.now();
      if (now - lastDraw >= 1000) {
        factor = 1 + (Math.random() * 2 - 1) * (o.noise ?? 0);
        lastDraw = now;
      }
      owed += ((now - last) / 1000) * rate * factor;
      last = now;
      for (; owed >= 1 && targets.length > 0; owed--) {
        const { ip } = targets[sent++ % targets.length];
        void fetch(`http://${ip}/cgi-bin/burn`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => undefined);
      }
      await pause(20);
    }
  };
  const running = Promise.all([refresh(), send(), hold()]);
  return { stop: async () => ((stopped = true), await running), sent: () => sent, rate: () => rate };
}

async function makeNGroup(name: string, desiredCount: number, autoscale: AutoscaleProfile) {
  await client.ngroups.createOrUpdate(RG, name, {
    location: 'local',
    properties: { elasticProfile: { desiredCount, autoscale }, containerGroupProfiles: [{ resource: { id: client.containerGroupProfiles.id(RG, 'burn') } }] },
  }, { timeoutMs: 60_000 });
  await until(`${desiredCount} ready`, async () => (await readyMembers(name)).length === desiredCount, 30_000);
}

const windows = { syncPeriod: 'PT2S', metricWindow: 'PT6S', scaleDownStabilizationWindow: 'PT20S' };

describe('autoscaling on CPU', () => {
  before(async () => {
    // what one request costs: a member's CPU over a run of requests one after another
    await makeNGroup('calibrate', 1, { minCount: 1, maxCount: 1, targetCpuUtilizationPercent: TARGET, ...windows });
    const [member] = await readyMembers('calibrate');
    const t0 = Date.now();
    const n = 40;
    for (let i = 0; i < n; i++) await (await fetch(`http://${member.properties.ipAddress!.ip}/cgi-bin/burn`)).text();
    await new Promise((r) => setTimeout(r, 2500));
    const t1 = Date.now();
    const span = `${new Date(t0 - 1000).toISOString()}/${new Date(t1).toISOString()}`;
    const m = await client.metrics.list(member.id, { metricnames: 'CpuUsage', timespan: span, interval: 'FULL', aggregation: 'Average' });
    const millicores = m.value[0].timeseries[0].data[0].average!;
    costMs = (millicores * (t1 - t0 + 1000)) / 1000 / n;
    assert.ok(costMs > 1 && costMs < 1000, `a request costs ${costMs} ms of CPU`);
    console.log(`one request costs ${costMs.toFixed(1)} ms of CPU`);
    await client.ngroups.delete(RG, 'calibrate', { timeoutMs: 60_000 });
  });

  test('a load that needs 4 members brings 1 to 4 within 30 s, and back to 1 after the stabilisation window', async () => {
    await makeNGroup('up', 1, { minCount: 1, maxCount: 4, targetCpuUtilizationPercent: TARGET, ...windows });
    // 4.5 members' worth at the target: more than 4 can carry, so 4 (the maximum) it is, whatever the noise
    const l = load('up', { rate: (4.5 * PER_MEMBER_MC) / costMs });
    const t0 = Date.now();
    let upMs: number;
    try {
      await until('4 members ready', async () => (await desiredOf('up')) === 4 && (await readyMembers('up')).length === 4, 30_000, 200);
      upMs = Date.now() - t0;
    } catch (e) {
      await l.stop();
      throw e;
    }
    const ng = await client.ngroups.get(RG, 'up');
    assert.ok(ng.properties?.instanceView?.events?.some((e) => e.name === 'Autoscaled' && /-> 4/.test(e.message ?? '')), JSON.stringify(ng.properties?.instanceView?.events));
    assert.ok((ng.properties?.instanceView?.autoscale?.utilizationPercent as number) > 0);
    await l.stop();
    const stoppedAt = Date.now();
    // the window (20 s) holds the count after the load is gone; then it falls to the minimum
    await until('still 4 some 15 s after the load stopped', async () => Date.now() - stoppedAt >= 15_000, 16_000, 500);
    assert.equal(await desiredOf('up'), 4, 'the scale-down waited for its stabilisation window');
    await until('back to 1', async () => (await desiredOf('up')) === 1, 60_000, 500);
    const downMs = Date.now() - stoppedAt;
    await until('1 member left', async () => (await readyMembers('up')).length === 1, 30_000);
    console.log(`1 -> 4 members in ${upMs} ms under load; back to 1 ${downMs} ms after it stopped (window 20 s)`);
    await client.ngroups.delete(RG, 'up', { timeoutMs: 60_000 });
  });

  test('a constant load with ±10% noise changes nothing', async () => {
    await makeNGroup('steady', 4, { minCount: 1, maxCount: 10, targetCpuUtilizationPercent: TARGET, ...windows });
    // 3.6 members' worth at the target on 4 members: 90% of the target each, ±10%
    const l = load('steady', { rate: (3.6 * PER_MEMBER_MC) / costMs, noise: 0.1, holdMillicores: 3.6 * PER_MEMBER_MC });
    const counts = new Set<number>();
    const t0 = Date.now();
    try {
      while (Date.now() - t0 < 60_000) {
        counts.add((await desiredOf('steady'))!);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await l.stop();
    }
    const ng = await client.ngroups.get(RG, 'steady');
    assert.deepEqual([...counts], [4], `desiredCount moved: ${JSON.stringify(ng.properties?.instanceView?.events)}`);
    assert.ok(!ng.properties?.instanceView?.events?.some((e) => e.name === 'Autoscaled'));
    const utilization = ng.properties?.instanceView?.autoscale?.utilizationPercent as number;
    assert.ok(utilization > 20 && utilization < 80, `measured ${utilization}% (the load asks for ~45%)`);
    console.log(`60 s of a noisy constant load: desiredCount stayed 4 (last measured ${utilization}% of the requests)`);
    await client.ngroups.delete(RG, 'steady', { timeoutMs: 60_000 });
  });
});
