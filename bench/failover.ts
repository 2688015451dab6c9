// Failover benchmark on a real dev cluster (3 hosts, 2 replicas): the time from kill-host of a host running N groups to the last of them Running elsewhere, over repeated kills, with where it went (NotReady, moved off, placed, Running); and what the hosts' heartbeats cost the control plane.
// Usage: bash bench/failover.sh [--groups 10,50] [--kills 3] [--idle-seconds 30] [--json FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_HOST_LEASE_SECONDS } from '../src/instances/hosts/gateway.js';
import { heartbeatMs } from '../src/instances/hosts/host-leases.js';
import { EtcdStore } from '../src/store/etcd.js';
import { Api, group } from '../test/helpers/berth.js';
import { devClusterUp, UNDERLAY, type DevCluster } from '../test/helpers/cluster.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry } from '../test/helpers/registry.js';
import { procStat, sleep, summarize } from './lib.js';

const { values: args } = parseArgs({
  options: { groups: { type: 'string', default: '10,50' }, kills: { type: 'string', default: '3' }, 'idle-seconds': { type: 'string', default: '30' }, json: { type: 'string' } },
});
const sizes = args.groups.split(',').map(Number);
const kills = Number(args.kills);
const idleSeconds = Number(args['idle-seconds']);
const HOSTS = ['devh1', 'devh2', 'devh3'];
const SUB = 'bench-sub';
const RG = 'failover';
const REGISTRY_PORT = 25002;

const cluster: DevCluster = await devClusterUp({ hosts: 3, replicas: 2, insecureRegistries: [`${UNDERLAY}:${REGISTRY_PORT}`], caDir: process.env.BERTH_TEST_TLS_DIR });
const registry = await startRegistry({ listen: { host: UNDERLAY, port: REGISTRY_PORT } });
const etcd = await EtcdStore.connect({ endpoints: ['127.0.0.1:23790'] });
const api = new Api({ url: cluster.url, token: cluster.token }, SUB);

const ready = async (host: string) => !!(await etcd.get(`/hostleases/${host}`));
const records = async () => (await etcd.list<{ uid: string; name: string; host: string }>(`/groups/${SUB}/${RG}/`)).map((kv) => kv.value);
/** uid -> the status's host when it says Running. */
const running = async () => new Map((await etcd.list<{ uid: string; host: string; state: string }>('/status/')).filter((kv) => kv.value.state === 'Running').map((kv) => [kv.value.uid, kv.value.host]));

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 120_000, everyMs = 20) {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

interface Kill {
  groups: number;
  victim: string;
  notReadyMs: number;
  movedMs: number;
  placedMs: number;
  runningMs: number;
}

/** start-host, again after a moment when it fails (dev-cluster.sh may find an exiting process of the host and enter its namespace). */
async function startHost(host: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      await cluster.run('start-host', host);
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      console.error(`start-host ${host} failed (again in 1 s): ${(e as Error).message.split('\n')[0]}`);
      await sleep(1000);
    }
  }
}

/** N groups pinned on `victim` (the other hosts are off while they are placed), then its power loss. */
async function failover(n: number, victim: string, image: string): Promise<Kill> {
  for (const r of await records()) await api.req('DELETE', api.groupPath(RG, r.name));
  await until('the last round gone', async () => (await records()).length === 0);
  const others = HOSTS.filter((h) => h !== victim);
  // powered off rather than their agents killed: start-host boots them afresh (entering a running host's namespace failed here at times)
  for (const h of others) await cluster.run('kill-host', h);
  await until('the others NotReady', async () => !(await ready(others[0])) && !(await ready(others[1])));
  const names = Array.from({ length: n }, (_, i) => `k${i}`);
  for (let i = 0; i < n; i += 10)
    await Promise.all(names.slice(i, i + 10).map((name) => api.req('PUT', api.groupPath(RG, name), group(image, { command: ['sleep', '100000'], cpu: 0.01, memoryInGB: 0.01 }))));
  await until(`${n} Running on ${victim}`, async () => {
    const r = await running();
    const recs = await records();
    return recs.length === n && recs.every((g) => r.get(g.uid) === victim);
  });
  for (const h of others) await startHost(h);
  await until('the others Ready', async () => (await ready(others[0])) && (await ready(others[1])));
  await sleep(1000);

  const t0 = Date.now();
  await cluster.run('kill-host', victim);
  const at: Partial<Kill> = {};
  await until('every group Running elsewhere', async () => {
    const now = Date.now() - t0;
    if (at.notReadyMs === undefined && !(await ready(victim))) at.notReadyMs = now;
    const recs = await records();
    if (at.movedMs === undefined && recs.every((g) => g.host !== victim)) at.movedMs = now;
    if (at.placedMs === undefined && recs.every((g) => g.host && g.host !== victim)) at.placedMs = now;
    const r = await running();
    if (recs.every((g) => r.get(g.uid) && r.get(g.uid) !== victim)) at.runningMs = now;
    return at.runningMs !== undefined;
  }, 60_000, 10);
  await startHost(victim);
  await until(`${victim} back, its removals reported`, async () => (await ready(victim)) && (await etcd.list(`/removing/${victim}/`)).length === 0);
  return { groups: n, victim, notReadyMs: at.notReadyMs ?? at.runningMs!, movedMs: at.movedMs ?? at.runningMs!, placedMs: at.placedMs ?? at.runningMs!, runningMs: at.runningMs! };
}

/** CPU seconds a process has used (user + system). */
const cpuSeconds = (pid: number) => {
  const f = procStat(pid).fields;
  return (f[11] + f[12]) / 100;
};
const pidOf = (file: string) => Number(readFileSync(join(cluster.dir, file), 'utf8'));

/** What heartbeats cost while nothing else happens: the replicas' and etcd's CPU over a quiet while, per beat received. */
async function heartbeatCost() {
  const terms = { heartbeatMs: heartbeatMs(DEFAULT_HOST_LEASE_SECONDS) };
  const pids = { replicas: [pidOf('cp1/server.pid'), pidOf('cp2/server.pid')], etcd: pidOf('etcd.pid'), agents: HOSTS.map((h) => pidOf(`hosts/${h}/agent.pid`)) };
  const sum = (ps: number[]) => ps.reduce((s, p) => s + cpuSeconds(p), 0);
  const before = { replicas: sum(pids.replicas), etcd: cpuSeconds(pids.etcd), agents: sum(pids.agents) };
  await sleep(idleSeconds * 1000);
  const used = { replicas: sum(pids.replicas) - before.replicas, etcd: cpuSeconds(pids.etcd) - before.etcd, agents: sum(pids.agents) - before.agents };
  const beatsPerSecond = HOSTS.length * (1000 / terms.heartbeatMs);
  const per100Hosts = (cpu: number) => (cpu / idleSeconds / HOSTS.length) * 100;
  return {
    hosts: HOSTS.length, seconds: idleSeconds, beatsPerSecond,
    beatsPerSecondPer100Hosts: 100 * (1000 / terms.heartbeatMs),
    // upper bounds: everything else the processes did while idle is counted as heartbeats
    cpuCoresPer100Hosts: { replicas: per100Hosts(used.replicas), etcd: per100Hosts(used.etcd) },
    agentCpuPercentEach: (used.agents / idleSeconds / HOSTS.length) * 100,
  };
}

try {
  const image = (await buildImage(registry.host, 'failover/sleep', '1', { cmd: ['sleep', '100000'] })).reference;
  const cost = await heartbeatCost();
  console.log(`heartbeats: ${cost.beatsPerSecondPer100Hosts} beats/s per 100 hosts; idle CPU per 100 hosts (upper bound): replicas ${cost.cpuCoresPer100Hosts.replicas.toFixed(3)} cores, etcd ${cost.cpuCoresPer100Hosts.etcd.toFixed(3)} cores; each agent ${cost.agentCpuPercentEach.toFixed(2)} % of a core`);
  const results: Kill[] = [];
  for (const n of sizes) for (let k = 0; k < kills; k++) {
    const r = await failover(n, HOSTS[k % HOSTS.length], image);
    results.push(r);
    console.log(`failover of ${n} groups (${r.victim}): NotReady ${r.notReadyMs} ms, all moved off ${r.movedMs} ms, all placed ${r.placedMs} ms, all Running elsewhere ${r.runningMs} ms after the kill`);
  }
  const summary = sizes.map((n) => {
    const rs = results.filter((r) => r.groups === n);
    return { groups: n, kills: rs.length, notReady: summarize(rs.map((r) => r.notReadyMs)), placed: summarize(rs.map((r) => r.placedMs)), running: summarize(rs.map((r) => r.runningMs)) };
  });
  for (const s of summary) console.log(`${s.groups} groups over ${s.kills} kills: Running elsewhere p50 ${s.running?.p50} ms, max ${s.running?.max} ms (NotReady p50 ${s.notReady?.p50} ms, placed p50 ${s.placed?.p50} ms)`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ heartbeats: cost, kills: results, summary }, null, 2));
} finally {
  await etcd.close();
  try {
    await cluster.down();
  } finally {
    await registry.stop();
  }
}
