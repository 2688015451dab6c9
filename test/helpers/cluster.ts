// Test fixture: a real berth cluster on this machine made by scripts/dev-cluster.sh (the script a person uses), and
// what tests look at in it: each host's processes (by its mount namespace), the leader, the host of a group.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { EtcdStore } from '../../src/store/etcd.js';
import { Api } from './berth.js';
import { buildImage } from './images.js';
import { startRegistry, type TestRegistry } from './registry.js';

const execFileP = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const script = join(repo, 'scripts/dev-cluster.sh');

export const UNDERLAY = '10.250.0.1';

export interface DevCluster {
  url: string;
  token: string;
  hosts: string[];
  ca: string;
  replicas: string[];
  /** Replica 1's plain HTTP on loopback. */
  http: string;
  joinToken: string;
  dir: string;
  /** Runs `dev-cluster.sh ARGS…` on this cluster; its stderr and stdout. */
  run(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** `down`, then the state dir's parent goes too (its logs are kept in $BERTH_DEV_CLUSTER_LOGS first, when set). */
  down(): Promise<void>;
}

export interface DevClusterOptions {
  hosts: number;
  replicas?: number;
  /** Registries the hosts reach over plain HTTP (host:port). */
  insecureRegistries?: string[];
  /** A CA (ca.crt, ca.key) to make the cluster's: the test process trusts it already (NODE_EXTRA_CA_CERTS). */
  caDir?: string;
}

export async function devClusterUp(o: DevClusterOptions): Promise<DevCluster> {
  const parent = mkdtempSync(join(tmpdir(), 'berth-dev-cluster-'));
  const env = {
    ...process.env,
    BERTH_DEV_CLUSTER_DIR: join(parent, 'cluster'),
    ...(o.insecureRegistries && { BERTH_DEV_CLUSTER_INSECURE_REGISTRIES: o.insecureRegistries.join(',') }),
    ...(o.caDir && { BERTH_DEV_CLUSTER_CA_DIR: o.caDir }),
  };
  const run = async (...args: string[]) => {
    try {
      return await execFileP('bash', [script, ...args], { env, maxBuffer: 16 << 20 });
    } catch (e) {
      const x = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`dev-cluster.sh ${args.join(' ')} failed: ${x.message}\n${x.stderr ?? ''}`);
    }
  };
  let out: { stdout: string };
  try {
    out = await run('up', String(o.hosts), '--replicas', String(o.replicas ?? 2));
  } catch (e) {
    rmSync(parent, { recursive: true, force: true });
    throw e;
  }
  const last = out.stdout.trim().split('\n').at(-1)!;
  const c = JSON.parse(last) as Omit<DevCluster, 'run' | 'down'>;
  let isDown = false;
  return {
    ...c,
    run,
    /** Takes everything down (once: a test that took it down itself leaves nothing for its `after`). */
    async down() {
      if (isDown) return;
      isDown = true;
      if (process.env.BERTH_DEV_CLUSTER_LOGS) await execFileP('bash', ['-c', `mkdir -p "$1" && cd "$2" && find . -name '*.log' -exec cp --parents -t "$1" {} +`, 'logs', process.env.BERTH_DEV_CLUSTER_LOGS, c.dir]).catch(() => undefined);
      try {
        await run('down');
      } finally {
        rmSync(parent, { recursive: true, force: true });
      }
    },
  };
}

/** The mount namespace a host's processes share (as dev-cluster.sh recorded it), or undefined when it is off. */
export function hostMountNamespace(c: DevCluster, host: string): string | undefined {
  try {
    return readFileSync(join(c.dir, 'hosts', host, 'mntns'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface Proc {
  pid: number;
  /** When it started (clock ticks after boot): with the PID, what tells it from a later process given the same PID. */
  start: number;
  ppid: number;
  comm: string;
  cmdline: string[];
  mnt?: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue;
      let mnt: string | undefined;
      try {
        mnt = readlinkSync(`/proc/${e}/ns/mnt`);
      } catch {
        /* gone */
      }
      out.push({ pid: Number(e), start: Number(fields[19]), ppid: Number(fields[1]), comm: stat.slice(stat.indexOf('(') + 1, close), cmdline: readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0'), mnt });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** A host's processes: those in its mount namespace and their descendants (its containers have namespaces of their own). */
export function hostProcesses(c: DevCluster, host: string): Proc[] {
  const ns = hostMountNamespace(c, host);
  if (!ns) return [];
  const all = processes();
  const mine = new Set(all.filter((p) => p.mnt === ns).map((p) => p.pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) if (!mine.has(p.pid) && mine.has(p.ppid)) {
      mine.add(p.pid);
      grew = true;
    }
  }
  return all.filter((p) => mine.has(p.pid));
}

/** The containers running on a host: conmon's container id (`uid-gN-name`) -> the PID of the container's first process. */
export function hostContainers(c: DevCluster, host: string): Map<string, number> {
  const procs = hostProcesses(c, host);
  const out = new Map<string, number>();
  for (const p of procs) {
    if (p.comm !== 'conmon') continue;
    const id = p.cmdline[p.cmdline.indexOf('-c') + 1];
    const child = procs.find((x) => x.ppid === p.pid);
    if (id && child) out.set(id, child.pid);
  }
  return out;
}

/** Whether this very process (not a later one with its PID) still runs. */
export function stillRuns(p: Pick<Proc, 'pid' | 'start'>): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && Number(fields[19]) === p.start;
  } catch {
    return false;
  }
}

/** The cluster's own processes as the script recorded them (agents, replicas, etcd, partition timers) that run now. */
export function recordedProcesses(c: DevCluster): Pick<Proc, 'pid' | 'start'>[] {
  const files = [join(c.dir, 'etcd.pid'), ...readdirSync(c.dir).filter((d) => /^cp\d+$/.test(d)).map((d) => join(c.dir, d, 'server.pid')),
    ...readdirSync(join(c.dir, 'hosts')).flatMap((h) => [join(c.dir, 'hosts', h, 'agent.pid'), join(c.dir, 'hosts', h, 'partition.pid')])];
  return files.flatMap((f) => {
    try {
      const pid = Number(readFileSync(f, 'utf8'));
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return [{ pid, start: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) }];
    } catch {
      return [];
    }
  });
}

/** What a test file on a dev cluster works with, once its `before` hook has made it. */
export interface ClusterUnderTest {
  cluster: DevCluster;
  registry: TestRegistry;
  /** berth's API on the first replica (HTTPS), for `sub`. */
  api: Api;
  /** The test image, in the registry on the underlay (the hosts pull it from there). */
  image: string;
  /** The cluster's etcd, read directly (what the store says); open only when asked. */
  etcd: EtcdStore;
}

/**
 * Registers the `before` and `after` hooks of a test file on `dev-cluster.sh up 3`: the cluster, a registry on the
 * underlay with one image built into it, the API for a subscription, and (when asked) a connection to its etcd; all
 * of it goes in `after`, whatever failed. Resolves once it is all made.
 */
export function onDevCluster(o: { replicas: number; sub: string; registryPort: number; image: { name: string; cmd: string[] }; etcd?: boolean }): Promise<ClusterUnderTest> {
  const t = {} as ClusterUnderTest;
  // a file's top-level hooks do not wait for each other: its own `before` awaits this instead
  let made!: (t: ClusterUnderTest) => void;
  let failed!: (e: unknown) => void;
  const ready = new Promise<ClusterUnderTest>((resolve, reject) => ((made = resolve), (failed = reject)));
  ready.catch(() => undefined);
  let cluster: DevCluster | undefined;
  let registry: TestRegistry | undefined;
  let etcd: EtcdStore | undefined;
  before(async () => {
    try {
      if (!process.env.BERTH_TEST_TLS_DIR) throw new Error('run through scripts/test.sh (it makes the CA the test process trusts)');
      t.cluster = cluster = await devClusterUp({ hosts: 3, replicas: o.replicas, insecureRegistries: [`${UNDERLAY}:${o.registryPort}`], caDir: process.env.BERTH_TEST_TLS_DIR });
      t.registry = registry = await startRegistry({ listen: { host: UNDERLAY, port: o.registryPort } });
      t.image = (await buildImage(registry.host, o.image.name, '1', { cmd: o.image.cmd })).reference;
      t.api = new Api({ url: cluster.url, token: cluster.token }, o.sub);
      if (o.etcd) t.etcd = etcd = await EtcdStore.connect({ endpoints: ['127.0.0.1:23790'] });
      made(t);
    } catch (e) {
      failed(e);
      throw e;
    }
  });
  after(async () => {
    // a test may have closed it (to take the cluster down itself)
    await etcd?.close().catch(() => undefined);
    try {
      await cluster?.down();
    } finally {
      await registry?.stop();
    }
  });
  return ready;
}
