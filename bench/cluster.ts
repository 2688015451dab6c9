// Create-to-running through a remote agent (a dev cluster: etcd, a control plane replica, one host in its own network
// namespace) against the embedded default (SQLite, the agent in-process), in one run, samples interleaved.
// Run inside scripts/isolated.sh (the dev cluster's bridge and addresses are fixed): bash bench/cluster.sh
import { writeFileSync } from 'node:fs';
import { Api, group, startBerth, type BerthProcess } from '../test/helpers/berth.js';
import { devClusterUp, UNDERLAY, type DevCluster } from '../test/helpers/cluster.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { httpdOn } from './bench.js';
import { run, summarize, waitTcp, type Summary } from './lib.js';

const REGISTRY_PORT = 25000;
const BRIDGE = 'btbenchc0';
const SUBNET = '10.213.84.0/22';
const HOST_IP = '10.250.0.11';
const log = (s: string) => console.error(`bench: ${s}`);
const ms = (t0: number) => performance.now() - t0;

interface Subject {
  name: string;
  api: Api;
  /** Where its groups' published ports answer. */
  address: string;
  firstPort: number;
}

/** PUT, then the group's published port answering (what a user waits for); then its delete, to an empty host again. */
async function sample(s: Subject, image: string, i: number): Promise<number> {
  const port = s.firstPort + i;
  const t0 = performance.now();
  const r = await s.api.req('PUT', s.api.groupPath('lat', `l${i}`), group(image, { command: httpdOn(port), ports: [port], publish: true }));
  if (r.status !== 201) throw new Error(`${s.name} PUT: ${r.status} ${r.text}`);
  await waitTcp(s.address, port);
  const t = ms(t0);
  await s.api.deleteAndWait('lat', `l${i}`);
  return t;
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
      { name: 'embedded (SQLite, in-process agent)', api: new Api(berth, 'bench'), address: '127.0.0.1', firstPort: 33000, image: images.embedded },
      // the replica's loopback listener: plain HTTP, as the embedded server's
      { name: 'cluster (etcd, remote agent)', api: new Api({ url: cluster.http, token: cluster.token }, 'bench'), address: HOST_IP, firstPort: 34000, image: images.cluster },
    ];
    // warm-up: each pulls and unpacks the image once, and its pools are filled
    for (const s of subjects) await sample(s, s.image, samples);
    const times = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
    for (let i = 0; i < samples; i++) {
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(i + k) % subjects.length];
        times.get(s.name)!.push(await sample(s, s.image, i));
      }
      if ((i + 1) % 10 === 0) log(`round ${i + 1}/${samples}`);
    }
    const latency: Record<string, Summary | undefined> = {};
    for (const [k, v] of times) latency[k] = summarize(v);
    const [a, b] = subjects.map((s) => latency[s.name]!.p50);
    const result = { samples, latency, ratio: { 'cluster/embedded p50': Math.round((b / a) * 100) / 100 } };
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
      console.log(`ratio: ${JSON.stringify(r.ratio)}`);
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
