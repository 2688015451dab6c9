// One network namespace per container group, wired to a host bridge by the CNI bridge plugin; state kept on disk.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { Refiller } from '../../lib/refiller.js';
import { runCommand } from '../../lib/spawner.js';
import { span } from '../../lib/trace.js';
import type { PublishedPort, Sandbox } from '../types.js';
import { addNetworkList, delNetworkList, type CniNetworkConfig, type CniResult, type CniRuntime } from './cni.js';
import { ensureNetworkRules, pruneHostportChains, publishPorts, removeNetworkRules, unpublishPorts } from './hostports.js';

export interface NetworkManagerOptions {
  /** CNI network name. Default 'berth'. */
  name?: string;
  /** Host bridge. Default 'berth0'. */
  bridge?: string;
  /** Default 10.89.0.0/16. */
  subnet?: string;
  /** Default /usr/lib/cni. */
  cniPath?: string;
  /** One <sandboxId>.json per sandbox. */
  stateDir: string;
  /** host-local's allocation store. Default /var/lib/cni/networks. */
  ipamDataDir?: string;
  /**
   * Sandboxes (netns, veth, IP) made before any request needs them, as ACI's standby pools do; a
   * setup claims one and only publishes its ports. Refilled in the background. Default 0 (none).
   */
  poolSize?: number;
}

/** Written before ADD so a crash mid-setup leaves enough to tear it down. */
interface SandboxState {
  id: string;
  netnsName: string;
  netnsPath: string;
  ports: PublishedPort[];
  /** The exact config used for ADD; DEL must see the same one. */
  network: CniNetworkConfig;
  runtime: CniRuntime;
  result?: CniResult;
  /** Our own host-port rules, not a CNI plugin's: removed by teardown (older states used portmap). */
  hostPorts?: boolean;
}

const POOL_ID_RE = /^pool-[0-9a-f]{12}$/;

const SANDBOX_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NETNS_DIR = '/run/netns';

const errText = (e: unknown) => String((e as { stderr?: string }).stderr || (e as Error).message || e).trim();

export class NetworkManager {
  private readonly name: string;
  private readonly bridge: string;
  private readonly subnet: string;
  private readonly cniPath: string;
  private readonly locks = new KeyedLock();
  /** Setups in flight: shared chains must not be pruned under them. */
  private settingUp = 0;
  /** Host ports published by sandboxes of this manager ("TCP/80" -> sandbox id), read from disk once. */
  private portIndex?: Promise<Map<string, string>>;
  private readonly poolSize: number;
  /** Warm sandboxes ready to be claimed (ids of files in the pool dir). */
  private ready: string[] = [];
  /** Refills after a claim, a moment later: its container start should not compete with the next sandbox's CNI chain. */
  private readonly refiller = new Refiller(() => this.fillPool());
  /** Pool sandboxes being made right now. */
  private warming = 0;
  /**
   * CNI results of the warm pool sandboxes, kept here rather than written to their state files: a
   * pool sandbox left by an earlier process is torn down at start (DEL needs no result), and its
   * claim writes the result into the group's state in one new file.
   */
  private readonly warmResults = new Map<string, CniResult>();

  constructor(private readonly opts: NetworkManagerOptions) {
    this.name = opts.name ?? 'berth';
    this.bridge = opts.bridge ?? 'berth0';
    this.subnet = opts.subnet ?? '10.89.0.0/16';
    this.cniPath = opts.cniPath ?? '/usr/lib/cni';
    this.poolSize = Math.max(0, opts.poolSize ?? 0);
    if (this.bridge.length > 15) throw new BerthError(Codes.NetworkError, `bridge name "${this.bridge}" is longer than 15 characters`);
  }

  private networkConfig(): CniNetworkConfig {
    return {
      cniVersion: '1.0.0',
      name: this.name,
      plugins: [
        // the loopback is brought up where the namespace is made (berth-spawnd's @netns-add, one
        // syscall), not by the loopback plugin (a Go program run per sandbox, for ADD and DEL)
        {
          type: 'bridge',
          bridge: this.bridge,
          isGateway: true,
          // masquerade and FORWARD accepts are per network, not per sandbox: ensureNetworkRules()
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: this.subnet }]],
            routes: [{ dst: '0.0.0.0/0' }],
            ...(this.opts.ipamDataDir ? { dataDir: this.opts.ipamDataDir } : {}),
          },
        },
        // host ports are published by hostports.ts, in one iptables-restore at claim time
      ],
    };
  }

  private statePath(id: string): string {
    return POOL_ID_RE.test(id) ? join(this.poolDir(), `${id}.json`) : join(this.opts.stateDir, `${id}.json`);
  }

  /** Pool sandboxes live apart, so list() and the agent never see them. */
  private poolDir(): string {
    return join(this.opts.stateDir, 'pool');
  }

  private checkId(id: string): void {
    if (!SANDBOX_ID_RE.test(id) || id.length > 200) throw new BerthError(Codes.NetworkError, `invalid sandbox id "${id}"`);
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  // A sandbox's state is one small file, read and written synchronously: a round trip through
  // libuv's thread pool costs more than the I/O, and under load it queues behind everything else.
  private async readState(id: string): Promise<SandboxState | undefined> {
    try {
      return JSON.parse(readFileSync(this.statePath(id), 'utf8')) as SandboxState;
    } catch {
      return undefined;
    }
  }

  private async writeState(st: SandboxState): Promise<void> {
    mkdirSync(POOL_ID_RE.test(st.id) ? this.poolDir() : this.opts.stateDir, { recursive: true });
    const path = this.statePath(st.id);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(st));
    renameSync(tmp, path);
  }

  private toSandbox(st: SandboxState): Sandbox | undefined {
    const ip = st.result?.ips?.find((i) => !i.address.includes(':'))?.address ?? st.result?.ips?.[0]?.address;
    if (!ip) return undefined;
    return { id: st.id, netnsPath: st.netnsPath, ip: ip.split('/')[0] };
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.opts.stateDir))
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -'.json'.length))
        .filter((id) => SANDBOX_ID_RE.test(id))
        .sort();
    } catch {
      return [];
    }
  }

  async get(sandboxId: string): Promise<Sandbox | undefined> {
    this.checkId(sandboxId);
    const st = await this.readState(sandboxId);
    if (!st || !existsSync(st.netnsPath)) return undefined;
    return this.toSandbox(st);
  }

  /** Sets up the sandbox (claimed from the pool when one is warm) and publishes its ports; idempotent. */
  setup(sandboxId: string, ports: PublishedPort[]): Promise<Sandbox> {
    return this.setupStaged(sandboxId, ports).published;
  }

  /**
   * setup() in two stages: `sandbox` resolves as soon as the namespace and address are known (a
   * caller can start containers in it), `published` once its ports are published too (when
   * setup() resolves). A failure rejects both; the sandbox is then torn down.
   */
  setupStaged(sandboxId: string, ports: PublishedPort[]): { sandbox: Promise<Sandbox>; published: Promise<Sandbox> } {
    this.checkId(sandboxId);
    let onSandbox!: (sb: Sandbox) => void;
    const sandbox = new Promise<Sandbox>((r) => (onSandbox = r));
    const published = this.locked(sandboxId, async () => {
      this.settingUp++;
      let failed = false;
      try {
        return await this.setupLocked(sandboxId, ports, onSandbox);
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        this.settingUp--;
        if (failed) await this.pruneIfIdle();
      }
    });
    const early = Promise.race([sandbox, published]);
    // a caller may await only one of the two: the other's rejection is not unhandled
    early.catch(() => undefined);
    published.catch(() => undefined);
    return { sandbox: early, published };
  }

  private async setupLocked(id: string, ports: PublishedPort[], onSandbox: (sb: Sandbox) => void): Promise<Sandbox> {
    const existing = await this.readState(id);
    if (existing?.result && existsSync(existing.netnsPath)) {
      const sb = this.toSandbox(existing);
      if (sb && samePorts(existing.ports, ports)) return sb;
    }
    if (existing) await this.teardownLocked(id, false);

    const release = await this.reservePorts(id, ports);
    try {
      const st = (await span(id, 'net.claim', () => this.claimFromPool(id, ports))) ?? (await span(id, 'net.create', () => this.create(id, ports)));
      const sb = this.toSandbox(st)!;
      onSandbox(sb);
      try {
        await span(id, 'net.publish', () => publishPorts(id, sb.ip, this.bridge, ports));
      } catch (e) {
        await this.teardownLocked(id, false).catch(() => undefined);
        throw e;
      }
      return sb;
    } catch (e) {
      release();
      throw e;
    }
  }

  /** Makes a sandbox through the CNI chain; its state is on disk before anything is made. */
  private async create(id: string, ports: PublishedPort[]): Promise<SandboxState> {
    const netnsName = `berth-${id}`;
    const netnsPath = join(NETNS_DIR, netnsName);
    const st: SandboxState = {
      id,
      netnsName,
      netnsPath,
      ports,
      network: this.networkConfig(),
      runtime: { containerId: id, netns: netnsPath, ifName: 'eth0' },
      hostPorts: true,
    };
    await this.writeState(st);
    try {
      await ensureNetworkRules(this.bridge, this.subnet);
      // what `ip netns add` does, and the loopback up, without running ip
      if (!existsSync(netnsPath)) await runCommand('@netns-add', [netnsName]);
      st.result = await addNetworkList(st.network, st.runtime, this.cniPath);
      if (POOL_ID_RE.test(id)) this.warmResults.set(id, st.result);
      else await this.writeState(st);
    } catch (e) {
      await this.teardownLocked(id, false).catch(() => undefined);
      if (e instanceof BerthError) throw e;
      throw new BerthError(Codes.NetworkError, `setting up sandbox ${id}: ${errText(e)}`, 500);
    }
    if (!this.toSandbox(st)) {
      await this.teardownLocked(id, false).catch(() => undefined);
      throw new BerthError(Codes.NetworkError, `sandbox ${id}: CNI returned no IP address`, 500);
    }
    return st;
  }

  /**
   * Hands a warm pool sandbox over to `id`: its state is written as `id`'s, then the pool's file is
   * removed, so after a crash the sandbox belongs to `id` or to the pool, never to neither (with
   * both files left, startPool() sees it claimed and only removes the pool's file).
   */
  private async claimFromPool(id: string, ports: PublishedPort[]): Promise<SandboxState | undefined> {
    for (let poolId = this.ready.shift(); poolId; poolId = this.ready.shift()) {
      // under the pool sandbox's own lock: stopPool() tears it down either before (then it is
      // skipped here) or after the claim (then its pool state is gone and it is left alone)
      const claimed = await this.locked(poolId, async () => {
        const st = await this.readState(poolId);
        if (!st) return undefined;
        st.result ??= this.warmResults.get(poolId);
        if (!st.result || !existsSync(st.netnsPath) || !this.toSandbox(st)) {
          await this.teardownLocked(poolId, false).catch(() => undefined);
          return undefined;
        }
        const claimed: SandboxState = { ...st, id, ports, hostPorts: true };
        await this.writeState(claimed);
        rmSync(this.statePath(poolId), { force: true });
        this.warmResults.delete(poolId);
        return claimed;
      });
      if (!claimed) continue;
      this.scheduleRefill();
      return claimed;
    }
    this.scheduleRefill();
    return undefined;
  }

  /** Two sandboxes cannot publish the same host port: the later DNAT would silently shadow. */
  private async reservePorts(id: string, ports: PublishedPort[]): Promise<() => void> {
    if (ports.length === 0) return () => undefined;
    const index = await this.ports();
    const keys = ports.map((p) => `${p.protocol}/${p.port}`);
    for (const k of keys) {
      const owner = index.get(k);
      if (owner && owner !== id) {
        const [protocol, port] = k.split('/');
        throw new BerthError(Codes.NetworkError, `port ${protocol} ${port} is already published by sandbox ${owner}`, 409);
      }
    }
    // taken synchronously after the check: concurrent setups of other ids cannot slip in between
    for (const k of keys) index.set(k, id);
    return () => {
      for (const k of keys) if (index.get(k) === id) index.delete(k);
    };
  }

  private ports(): Promise<Map<string, string>> {
    this.portIndex ??= (async () => {
      const index = new Map<string, string>();
      for (const id of await this.list()) for (const p of (await this.readState(id))?.ports ?? []) index.set(`${p.protocol}/${p.port}`, id);
      return index;
    })();
    return this.portIndex;
  }

  private async releasePorts(id: string): Promise<void> {
    const index = await this.ports();
    for (const [k, owner] of index) if (owner === id) index.delete(k);
  }

  // --- the pool ---

  /**
   * Tears down pool sandboxes a previous process left (they may be half-made) and fills the pool.
   * Call once at start; stopPool() drains it.
   */
  async startPool(): Promise<void> {
    const claimed = new Set<string>();
    for (const id of await this.list()) {
      const st = await this.readState(id);
      if (st) claimed.add(st.netnsName);
    }
    for (const poolId of await this.poolIds()) {
      const st = await this.readState(poolId);
      // a crash between claim's rename and its cleanup cannot leave both, but be sure never to take a claimed netns
      if (st && claimed.has(st.netnsName)) await rm(this.statePath(poolId), { force: true });
      else await this.locked(poolId, () => this.teardownLocked(poolId, false)).catch((e) => console.error(`network: pool cleanup ${poolId}: ${(e as Error).message}`));
    }
    // only now: a claim meanwhile must not start a refill whose sandboxes the loop above would miss;
    // filled in the background: a start must not wait for it, and claims fall back to creating
    if (this.poolSize > 0) this.refiller.start();
  }

  /** Stops refilling and tears down the sandboxes still in the pool. */
  async stopPool(): Promise<void> {
    await this.refiller.stop();
    this.ready.splice(0);
    // every pool sandbox on disk, not only those listed as ready: none may outlive the server
    for (const poolId of await this.poolIds()) {
      await this.locked(poolId, async () => {
        // claimed meanwhile (renamed away): it belongs to its group now
        if (await this.readState(poolId)) await this.teardownLocked(poolId, false);
      }).catch((e) => console.error(`network: pool teardown ${poolId}: ${(e as Error).message}`));
    }
    await this.pruneIfIdle();
  }

  /** Warm sandboxes waiting to be claimed. */
  poolReady(): number {
    return this.ready.length;
  }

  private async poolIds(): Promise<string[]> {
    try {
      return (await readdir(this.poolDir())).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).filter((id) => POOL_ID_RE.test(id));
    } catch {
      return [];
    }
  }

  private scheduleRefill(): void {
    if (this.poolSize > 0) this.refiller.soon();
  }

  /**
   * Resolves once the pool is full (or stopped). Two sandboxes are made at a time (each is a few
   * short process runs: a 2-core host keeps both busy), in the background.
   */
  refill(): Promise<void> {
    return this.refiller.now();
  }

  private async fillPool(): Promise<void> {
    let failed = false;
    const worker = async () => {
      while (!failed && !this.refiller.stopped && this.ready.length + this.warming < this.poolSize) {
        const poolId = `pool-${randomBytes(6).toString('hex')}`;
        this.settingUp++;
        this.warming++;
        try {
          await span(poolId, 'net.poolCreate', () => this.locked(poolId, () => this.create(poolId, [])));
          if (this.refiller.stopped) await this.locked(poolId, () => this.teardownLocked(poolId, false));
          else this.ready.push(poolId);
        } catch (e) {
          console.error(`network: warming a sandbox: ${(e as Error).message}`);
          failed = true; // retried on the next claim
        } finally {
          this.settingUp--;
          this.warming--;
        }
      }
    };
    await Promise.all([worker(), worker()]);
  }

  teardown(sandboxId: string): Promise<void> {
    this.checkId(sandboxId);
    return this.locked(sandboxId, () => this.teardownLocked(sandboxId, true));
  }

  private async teardownLocked(id: string, prune: boolean): Promise<void> {
    const st = await this.readState(id);
    if (st) st.result ??= this.warmResults.get(id);
    const netnsName = st?.netnsName ?? `berth-${id}`;
    const netnsPath = st?.netnsPath ?? join(NETNS_DIR, netnsName);
    const errors: string[] = [];
    if (st?.hostPorts) {
      try {
        const sb = this.toSandbox(st);
        await unpublishPorts(id, sb ? { ip: sb.ip, ports: st.ports } : undefined);
      } catch (e) {
        errors.push(errText(e));
      }
    }
    if (st) {
      // the netns may be gone already; plugins then clean host-side state (IPAM, iptables) only
      const runtime = existsSync(netnsPath) ? st.runtime : { ...st.runtime, netns: '' };
      try {
        await delNetworkList(st.network, runtime, this.cniPath, st.result);
      } catch (e) {
        errors.push(errText(e));
      }
    }
    if (existsSync(netnsPath)) {
      try {
        await runCommand('@netns-del', [netnsName]);
      } catch (e) {
        errors.push(`deleting netns ${netnsName}: ${errText(e)}`);
      }
    }
    if (errors.length > 0) {
      // keep the state file: a later teardown retries with the same config
      throw new BerthError(Codes.NetworkError, `tearing down sandbox ${id}: ${errors.join('; ')}`, 500);
    }
    await rm(this.statePath(id), { force: true });
    this.warmResults.delete(id);
    if (!POOL_ID_RE.test(id)) await this.releasePorts(id);
    // the host-port chains go with the last published port, even while the pool keeps the network busy
    if (st?.ports.length && (await this.ports()).size === 0) await pruneHostportChains().catch(() => undefined);
    if (prune) await this.pruneIfIdle();
  }

  /** With no sandbox left (in use, in the pool, or being made), the network's host-wide rules go. */
  private async pruneIfIdle(): Promise<void> {
    if (this.settingUp === 0 && this.ready.length === 0 && (await this.list()).length === 0 && (await this.poolIds()).length === 0) {
      await removeNetworkRules(this.bridge).catch((e) => console.error(`network: removing rules of ${this.bridge}: ${(e as Error).message}`));
      await pruneSharedChains().catch(() => undefined);
    }
  }

  /** Removes the bridge once no sandbox uses it (host shutdown, tests). */
  async destroy(): Promise<void> {
    await this.stopPool();
    if ((await this.list()).length > 0) {
      throw new BerthError(Codes.NetworkError, `network ${this.name} still has sandboxes`, 409);
    }
    await runCommand('ip', ['link', 'delete', this.bridge, 'type', 'bridge']).catch(() => undefined);
    await removeNetworkRules(this.bridge).catch(() => undefined);
    await pruneSharedChains().catch(() => undefined);
  }
}

function samePorts(a: PublishedPort[], b: PublishedPort[]): boolean {
  const key = (ps: PublishedPort[]) => ps.map((p) => `${p.protocol}/${p.port}`).sort().join(',');
  return key(a) === key(b);
}

/**
 * portmap and firewall leave host-wide chains behind after their last DEL. Drop them when they hold
 * no per-sandbox rules (from any CNI user), so a host without sandboxes has the ruleset it began with;
 * the plugins recreate them on the next ADD.
 */
export async function pruneSharedChains(): Promise<void> {
  await pruneHostportChains().catch(() => undefined);
  for (const bin of ['iptables', 'ip6tables']) {
    const save = async (table: string) => {
      try {
        return (await runCommand(`${bin}-save`, ['-t', table])).stdout.split('\n');
      } catch {
        return [];
      }
    };
    const rulesOf = (lines: string[], chain: string) => lines.filter((l) => l.startsWith(`-A ${chain} `));
    const hasChain = (lines: string[], chain: string) => lines.some((l) => l.startsWith(`:${chain} `));
    const removeChains = async (table: string, lines: string[], chains: string[]) => {
      // first every jump into them, then the chains themselves
      for (const l of lines) {
        const m = /^-A (\S+) (.*)$/.exec(l);
        if (!m || chains.includes(m[1])) continue;
        if (chains.some((c) => l.includes(` -j ${c}`) && (l.endsWith(` -j ${c}`) || l.includes(` -j ${c} `)))) {
          await runCommand(bin, ['-t', table, '-D', m[1], ...splitRule(m[2])]).catch(() => undefined);
        }
      }
      for (const c of chains) await runCommand(bin, ['-t', table, '-F', c]).catch(() => undefined);
      for (const c of chains) await runCommand(bin, ['-t', table, '-X', c]).catch(() => undefined);
    };

    const nat = await save('nat');
    if (hasChain(nat, 'CNI-HOSTPORT-DNAT') && rulesOf(nat, 'CNI-HOSTPORT-DNAT').length === 0) {
      const chains = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'].filter((c) => hasChain(nat, c));
      await removeChains('nat', nat, chains);
    }
    const filter = await save('filter');
    if (hasChain(filter, 'CNI-FORWARD')) {
      const fwd = rulesOf(filter, 'CNI-FORWARD');
      const onlyAdmin = fwd.every((l) => / -j CNI-ADMIN$/.test(l));
      if (onlyAdmin && rulesOf(filter, 'CNI-ADMIN').length === 0) {
        await removeChains('filter', filter, ['CNI-FORWARD', 'CNI-ADMIN'].filter((c) => hasChain(filter, c)));
      }
    }
  }
}

/** Splits an iptables-save rule into argv, honouring double quotes (comments). */
export function splitRule(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rule))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}
