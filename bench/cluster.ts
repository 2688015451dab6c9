// Create-to-running through a remote agent (a dev cluster: etcd, a control plane replica, one host in its own network
// namespace) against the embedded default (SQLite, the agent in-process), in one run, samples interleaved.
// Run inside scripts/isolated.sh (the dev cluster's bridge and addresses are fixed): bash bench/cluster.sh
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Api, group, startBerth, type BerthProcess } from '../test/helpers/berth.js';
import { devClusterUp, UNDERLAY, type DevCluster } from '../test/helpers/cluster.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { httpdOn } from './bench.js';
import { machineCpuMs, run, summarize, treeCpuMs, waitTcp, type Summary } from './lib.js';

const REGISTRY_PORT = 25000;
const BRIDGE = 'btbenchc0';
const SUBNET = '10.213.84.0/22';
const HOST_IP = '10.250.0.11';
const log = (s: string) => console.error(`bench: ${s}`);
const ms = (t0: number) => performance.now() - t0;

const pidIn = (...path: string[]) => Number(readFileSync(join(...path), 'utf8').trim());

interface Subject {
  name: string;
  api: Api;
  /** Where its groups' published ports answer. */
  address: string;
  firstPort: number;
  /** Its processes (each with its descendants): what each used of the CPU during its samples. */
  processes: Record<string, number>;
}

/**
 * PUT, then the group's published port answering (what a user waits for); then its delete, to an empty host again.
 * Also what every process of the machine used of its CPUs meanwhile (ms; ticks of 10 ms, so summed over samples).
 */
async function sample(s: Subject, image: string, i: number): Promise<{ ms: number; cpuMs: number; byProcess: Record<string, number> }> {
  const port = s.firstPort + i;
  const trees0 = Object.entries(s.processes).map(([k, pid]) => [k, treeCpuMs(pid)] as const);
  const cpu0 = machineCpuMs();
  const t0 = performance.now();
  const r = await s.api.req('PUT', s.api.groupPath('lat', `l${i}`), group(image, { command: httpdOn(port), ports: [port], publish: true }));
  if (r.status !== 201) throw new Error(`${s.name} PUT: ${r.status} ${r.text}`);
  await waitTcp(s.address, port);
  const t = ms(t0);
  const cpuMs = machineCpuMs() - cpu0;
  const byProcess = Object.fromEntries(trees0.map(([k, v]) => [k, treeCpuMs(s.processes[k]) - v]));
  await s.api.deleteAndWait('lat', `l${i}`);
  return { ms: t, cpuMs, byProcess };
}

export async function main(argv: string[]) {
  const num = (flag: string, d: number) => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : d);
  const samples = num('--samples', 30);
  const json = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
  let registry: TestRegistry | undefined;
  let berth: BerthProcess | undefined;
  let cluster: DevCluster | undefined;
  try {
    cluster = await devClusterUp({ hosts: 1, replicas: 1, insecureRegistries: [`${UNDERLAY}:${REGISTRY_PORT}`] });
    // one registry for both: the embedded server pulls from loopback, the host from the underlay address
    registry = await startRegistry({ listen: { host: '0.0.0.0', port: REGISTRY_PORT } });
    const built = await buildImage(`127.0.0.1:${REGISTRY_PORT}`, 'bench', '1', { cmd: httpdOn(80) });
    const images = { embedded: built.reference, cluster: built.reference.replace('127.0.0.1', UNDERLAY) };
    berth = await startBerth({ bridge: BRIDGE, subnet: SUBNET });
    const subjects: (Subject & { image: string })[] = [
      { name: 'embedded (SQLite, in-process agent)', api: new Api(berth, 'bench'), address: '127.0.0.1', firstPort: 33000, image: images.embedded, processes: { server: berth.child.pid! } },
      // the replica's loopback listener: plain HTTP, as the embedded server's
      {
        name: 'cluster (etcd, remote agent)', api: new Api({ url: cluster.http, token: cluster.token }, 'bench'), address: HOST_IP, firstPort: 34000, image: images.cluster,
        processes: { etcd: pidIn(cluster.dir, 'etcd.pid'), replica: pidIn(cluster.dir, 'cp1', 'server.pid'), agent: pidIn(cluster.dir, 'hosts', cluster.hosts[0], 'agent.pid') },
      },
    ];
    // warm-up: each pulls and unpacks the image once, and its pools are filled
    for (const s of subjects) await sample(s, s.image, samples);
    const times = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
    const cpu = new Map<string, number>(subjects.map((s) => [s.name, 0]));
    const byProcess = new Map<string, Record<string, number>>(subjects.map((s) => [s.name, {}]));
    for (let i = 0; i < samples; i++) {
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(i + k) % subjects.length];
        const one = await sample(s, s.image, i);
        times.get(s.name)!.push(one.ms);
        cpu.set(s.name, cpu.get(s.name)! + one.cpuMs);
        const mine = byProcess.get(s.name)!;
        for (const [k, v] of Object.entries(one.byProcess)) mine[k] = (mine[k] ?? 0) + v;
      }
      if ((i + 1) % 10 === 0) log(`round ${i + 1}/${samples}`);
    }
    const latency: Record<string, Summary | undefined> = {};
    for (const [k, v] of times) latency[k] = summarize(v);
    const [a, b] = subjects.map((s) => latency[s.name]!.p50);
    const perCreate = (v: number) => Math.round((v / samples) * 10) / 10;
    const cpuMsPerCreate = Object.fromEntries([...cpu].map(([k, v]) => [k, perCreate(v)]));
    const cpuMsPerCreateByProcess = Object.fromEntries([...byProcess].map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([p, x]) => [p, perCreate(x)]))]));
    const result = { samples, latency, cpuMsPerCreate, cpuMsPerCreateByProcess, ratio: { 'cluster/embedded p50': Math.round((b / a) * 100) / 100 } };
    if (json) writeFileSync(json, JSON.stringify(result, null, 2));
    return result;
  } finally {
    await berth?.destroy(['bench']).catch((e) => log(`stopping berth: ${(e as Error).message}`));
    await run('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
    await cluster?.down().catch((e) => log(`down: ${(e as Error).message}`));
    await registry?.stop();
  }
}

if (process.argv[1]?.endsWith('cluster.js')) {
  main(process.argv.slice(2)).then(
    (r) => {
      console.log('create-to-running (ms)                       n     p50     p95     p99');
      for (const [k, s] of Object.entries(r.latency)) if (s) console.log(`${k.padEnd(42)} ${String(s.n).padStart(3)} ${s.p50.toFixed(1).padStart(7)} ${s.p95.toFixed(1).padStart(7)} ${s.p99.toFixed(1).padStart(7)}`);
      console.log(`machine CPU per create, from PUT to the port answering (ms, every process): ${JSON.stringify(r.cpuMsPerCreate)}`);
      console.log(`  by process (with their descendants): ${JSON.stringify(r.cpuMsPerCreateByProcess)}`);
      console.log(`ratio: ${JSON.stringify(r.ratio)}`);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
