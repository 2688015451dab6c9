// Test fixture: a real `berth server` process on a private data dir, bridge and subnet, plus host-state probes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ContainerInstanceClient, StaticTokenCredential, type ContainerGroup } from '../../src/client/index.js';
import { berthNftObjects, hostVethOf } from '../../src/runtime/container/testing.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const API = '2023-05-01';

export interface BerthProcess {
  url: string;
  /** HTTPS endpoint; clients trust it through the CA in `caCert`. */
  httpsUrl: string;
  caCert: string;
  /** `host:port` of the server's DNS (UDP and TCP), on a free loopback port. */
  dnsAddress?: string;
  token: string;
  dataDir: string;
  runcRoot: string;
  child: ChildProcess;
  log: () => string;
  /** Ends the server by PID (SIGTERM, or SIGKILL to simulate a crash). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Deletes every group the tests left in these subscriptions, stops the server, removes its data. */
  destroy(subscriptions: string[]): Promise<void>;
}

export interface BerthOptions {
  dataDir?: string;
  bridge: string;
  subnet: string;
  listen?: string;
  runcRoot?: string;
  /** Where Public groups' ports are published; 127.0.0.1 unless given. */
  advertiseAddress?: string;
  extraArgs?: string[];
  /** Written to DATA_DIR/config.json before the server starts (service principals, subscriptions, …). */
  config?: Record<string, unknown>;
  /** Options for node itself, before the script (e.g. --cpu-prof for bench/profile.js). */
  nodeArgs?: string[];
}

export async function startBerth(o: BerthOptions): Promise<BerthProcess> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'berth-e2e-'));
  const runcRoot = o.runcRoot ?? join('/run', `berth-test-${process.pid}`, 'runc');
  const token = 'test-token-' + process.pid;
  if (o.config) writeFileSync(join(dataDir, 'config.json'), JSON.stringify(o.config));
  let out = '';
  const child = spawn(process.execPath, [
    ...(o.nodeArgs ?? []),
    join(repo, 'dist/src/cli/main.js'), 'server', '--listen', o.listen ?? '127.0.0.1:0', '--listen-https', '127.0.0.1:0', '--data-dir', dataDir, '--token', token,
    // One CA for every server of a test run, so a test process can trust it from the start (NODE_EXTRA_CA_CERTS).
    ...(process.env.BERTH_TEST_TLS_DIR ? ['--tls-dir', process.env.BERTH_TEST_TLS_DIR] : []),
    ...(o.extraArgs ?? []),
    // Its own DNS port, so servers of parallel runs never compete for the default one.
    ...(o.extraArgs?.includes('--dns-listen') ? [] : ['--dns-listen', '127.0.0.1:0']),
    '--bridge', o.bridge, '--subnet', o.subnet, '--runc-root', runcRoot, '--advertise-address', o.advertiseAddress ?? '127.0.0.1', '--stop-grace', '1',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const [url, httpsUrl, caCert] = await new Promise<string[]>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`berth did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = /serving the ACI API on (http:\/\/\S+) and (https:\/\/\S+) \(CA certificate: (\S+)\)/.exec(out);
      if (m) {
        clearTimeout(t);
        res([m[1], m[2], m[3]]);
      }
    };
    child.stderr!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`berth exited with ${code}:\n${out}`));
    });
  });
  const dnsAddress = /serving DNS for zone \S+ on (\S+)/.exec(out)?.[1];
  const b: BerthProcess = {
    url, httpsUrl, caCert, dnsAddress, token, dataDir, runcRoot, child, log: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid!, signal);
      await exited;
    },
    async destroy(subscriptions: string[]) {
      if (child.exitCode === null && child.signalCode === null) {
        for (const sub of subscriptions) {
          const api = new Api(b, sub);
          // NGroups first: their orchestrator would make their members again
          const ngroups = await api.client.ngroups.list().toArray().catch(() => []);
          await Promise.all(ngroups.map((n) => api.client.ngroups.delete(n.id.split('/')[4], n.name, { timeoutMs: 120_000 })
            .catch((e: Error) => console.error(`cleanup of NGroup ${n.name}: ${e.message}`))));
          const all = await api.req('GET', `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/containerGroups`).catch(() => undefined);
          await Promise.all((all?.body?.value ?? []).map((g: { id: string; name: string }) =>
            api.deleteAndWait(g.id.split('/')[4], g.name).catch((e: Error) => console.error(`cleanup of ${g.name}: ${e.message}`))));
        }
      }
      await b.stop();
      cleanupDir(dataDir);
      // runc's state dir is empty once every container is gone; rmdir (not rm -r) keeps it if not.
      for (const d of [runcRoot, dirname(runcRoot)]) try { rmdirSync(d); } catch { /* in use, or shared */ }
    },
  };
  return b;
}

/**
 * The tests' handle on a server: `req` speaks raw HTTP (tests assert the wire); the rest goes
 * through the client (src/client), as every caller above the API does.
 */
export class Api {
  /** The client for this server and subscription; operations are polled every 100 ms, not as Retry-After says. */
  readonly client: ContainerInstanceClient;

  constructor(private b: { url: string; token: string }, readonly sub = 'e2e-sub') {
    this.client = new ContainerInstanceClient({ endpoint: b.url, credential: new StaticTokenCredential(b.token), subscriptionId: sub, pollIntervalMs: 100 });
  }

  groupPath(rg: string, name: string) {
    return `/subscriptions/${this.sub}/resourceGroups/${rg}/providers/Microsoft.ContainerInstance/containerGroups/${name}`;
  }

  async req(method: string, path: string, body?: unknown, opts: { token?: string | null; apiVersion?: string | null; rawBody?: string; contentType?: string } = {}) {
    const u = new URL(path.startsWith('http') ? path : this.b.url + path);
    if (opts.apiVersion !== null && !u.searchParams.has('api-version')) u.searchParams.set('api-version', opts.apiVersion ?? API);
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? this.b.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const payload = opts.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    if (payload !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    const res = await fetch(u, { method, headers, body: payload });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, body: json, text, headers: res.headers };
  }

  /** Follows an Azure-AsyncOperation URL to its end: its last status, Succeeded or not. */
  async waitOp(url: string, timeoutMs = 60_000) {
    return this.client.waitForOperation(url, { timeoutMs });
  }

  async waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
    const t0 = Date.now();
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** A raw PUT (its answer as sent); throws unless it is 200 or 201. */
  async create(rg: string, name: string, body: unknown) {
    const r = await this.req('PUT', this.groupPath(rg, name), body);
    if (r.status !== 201 && r.status !== 200) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    return r;
  }

  /** PUT and wait for provisioning: the group as it then is (its ArmError when provisioning failed). */
  async createAndWait(rg: string, name: string, body: unknown) {
    return this.client.containerGroups.createOrUpdate(rg, name, body as ContainerGroup, { timeoutMs: 60_000 }) as Promise<any>;
  }

  /** DELETE and wait until the group is gone (nothing to do when there is none). */
  async deleteAndWait(rg: string, name: string) {
    await this.client.containerGroups.delete(rg, name, { timeoutMs: 60_000 });
  }
}

export const group = (image: string, o: { command?: string[]; ports?: number[]; publish?: boolean; restartPolicy?: string; memoryInGB?: number; cpu?: number; env?: unknown[]; containers?: unknown[] } = {}) => ({
  location: 'local',
  properties: {
    osType: 'Linux',
    restartPolicy: o.restartPolicy ?? 'Always',
    containers: o.containers ?? [{
      name: 'main',
      properties: {
        image,
        ...(o.command && { command: o.command }),
        ports: (o.ports ?? []).map((port) => ({ port })),
        environmentVariables: o.env ?? [],
        resources: { requests: { cpu: o.cpu ?? 0.5, memoryInGB: o.memoryInGB ?? 0.25 } },
      },
    }],
    ...(o.publish && o.ports && { ipAddress: { type: 'Public', ports: o.ports.map((port) => ({ port, protocol: 'TCP' })) } }),
  },
});

/**
 * What a leak would leave on the host: counted before and after a test. With the data dir of a
 * running server, what belongs to the server rather than to any group is left out: its warm
 * sandbox pool (netns and veths, made and claimed in the background) and its network's shared
 * rules (present while it has any sandbox). Without it (a stopped server), everything counts.
 */
/**
 * An end-to-end file's after(): deletes the groups of `subscriptions` and stops the server, then
 * runs `cleanup`, stops the registry and removes the test's bridge, each even when one before failed.
 */
export async function endE2e(o: { berth?: BerthProcess; subscriptions: string[]; registry?: { stop(): Promise<void> }; bridge: string; cleanup?: () => unknown }) {
  try {
    await o.berth?.destroy(o.subscriptions);
  } finally {
    try {
      await o.cleanup?.();
    } finally {
      await o.registry?.stop();
      try {
        execFileSync('ip', ['link', 'del', o.bridge], { stdio: 'ignore' });
      } catch {
        /* never made, or gone with the server */
      }
    }
  }
}

export function hostFootprint(runcRoot: string, dataDir?: string) {
  const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { encoding: 'utf8' });
  // listed before the pool's state files are read: a pool netns (and its veth, and their elements
  // in the isolation tables) always has its file first
  const nft = berthNftObjects();
  const netns = sh('ip netns list').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  const veths = sh('ip -o link show type veth').split('\n').filter(Boolean);
  const rules = sh('iptables-save').split('\n').filter((l) => l.startsWith('-A'));
  const pool = new Set<string>();
  if (dataDir) {
    const dir = join(dataDir, 'network', 'pool');
    for (const f of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : []) {
      try {
        pool.add((JSON.parse(readFileSync(join(dir, f), 'utf8')) as { netnsName: string }).netnsName);
      } catch {
        /* claimed or torn down meanwhile */
      }
    }
  }
  const networkRule = (l: string) => dataDir !== undefined && (l.includes('berth-net:') || l.startsWith('-A BERTH-MASQ-'));
  const poolVeths = new Set([...pool].map((n) => JSON.stringify(hostVethOf(n))));
  return {
    netns: netns.filter((n) => !pool.has(n)).length,
    veth: veths.filter((l) => !pool.has(/ link-netns (\S+)/.exec(l)?.[1] ?? '')).length,
    iptablesRules: rules.filter((l) => !networkRule(l)).length,
    // a running server's isolation tables, their base chains and rules are the network's; each group's veth and segment are not
    nftObjects: dataDir !== undefined
      ? nft.segmentChains + nft.elements.filter((e) => !poolVeths.has(e)).length
      : nft.tables + nft.chains + nft.rules + nft.elements.length,
    overlayMounts: Number(sh("grep -c ' overlay ' /proc/mounts || true")),
    // groups' disks: their mounts (in this mount namespace) and the loop devices under them (host-wide);
    // with a data dir, not its pool's (made and claimed in the background)
    diskMounts: readFileSync('/proc/mounts', 'utf8').split('\n')
      .filter((l) => /^\/dev\/loop\d+ /.test(l) && !(dataDir && l.split(' ')[1].startsWith(join(dataDir, 'disks', 'pool') + '/'))).length,
    diskLoops: groupDiskLoops(dataDir).length,
    // runc and crun both keep one state dir per container under the root
    runcContainers: ociContainers(runcRoot).size,
    // This server's conmons (they name its runtime root); exited ones linger as zombies until reaped: live ones only.
    conmon: conmonsOf(runcRoot),
  };
}

/**
 * Loop devices backing a group's disk (of the server with `dataDir`, not its pool's unless `withPool`; or of any
 * berth), by the kernel's record of their file. One whose image is deleted is left out: it is held
 * by a copy of its mount in another mount namespace (one made while it was mounted, such as another
 * test run's) and goes with that namespace.
 */
export function groupDiskLoops(dataDir?: string, withPool = false): string[] {
  return readdirSync('/sys/block').filter((d) => {
    try {
      const file = readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      if (!file.endsWith('/disk.img')) return false;
      return dataDir ? file.startsWith(join(dataDir, 'disks') + '/') && (withPool || !file.startsWith(join(dataDir, 'disks', 'pool') + '/')) : /\/disks\//.test(file);
    } catch {
      return false;
    }
  });
}

/** Live conmon processes that monitor containers of the OCI runtime root `runcRoot` (never other servers'). */
export function conmonsOf(runcRoot: string): number {
  let n = 0;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (!stat.includes('(conmon)') || stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(runcRoot)) n++;
    } catch {
      /* gone meanwhile */
    }
  }
  return n;
}

/** Containers an OCI runtime (runc or crun, told by their state files) holds under `root`: id -> init PID. */
export function ociContainers(root: string): Map<string, number> {
  const out = new Map<string, number>();
  let ids: string[] = [];
  try {
    ids = readdirSync(root);
  } catch {
    return out;
  }
  for (const id of ids) {
    const bin = existsSync(join(root, id, 'state.json')) ? 'runc' : existsSync(join(root, id, 'status')) ? 'crun' : undefined;
    if (!bin) continue;
    try {
      out.set(id, (JSON.parse(execFileSync(bin, ['--root', root, 'state', id], { encoding: 'utf8' })) as { pid: number }).pid);
    } catch {
      /* deleted meanwhile */
    }
  }
  return out;
}

/** Removes a data dir, but never one with a mount inside: rm would reach into a container's rootfs. */
export function cleanupDir(dir: string) {
  const mounted = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(dir + '/'));
  if (mounted.length > 0) throw new Error(`not removing ${dir}: still mounted there: ${mounted.join(', ')}`);
  rmSync(dir, { recursive: true, force: true });
}

/** PIDs of the live processes in a container's cgroup (berth's default parent /berth; zombies are not listed). */
export function containerProcesses(id: string): number[] {
  return readFileSync(`/sys/fs/cgroup/pids/berth/${id}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
}

const sessionOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
};

/**
 * PIDs of the live processes in a container that exec sessions started: each exec runs in a
 * session of its own, unlike the container's process and whatever it forks.
 */
export function execProcesses(runcRoot: string, id: string): number[] {
  const init = ociContainers(runcRoot).get(id);
  if (!init) return [];
  const main = sessionOf(init);
  return containerProcesses(id).filter((pid) => {
    try {
      return sessionOf(pid) !== main;
    } catch {
      return false; // ended meanwhile
    }
  });
}

/** PIDs of a process's live children (for berth: exec helpers and the runtime calls it makes). */
export function childProcesses(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') out.push(Number(e));
    } catch {
      /* gone meanwhile */
    }
  }
  return out.sort((a, b) => a - b);
}
