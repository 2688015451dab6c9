// One network namespace per container group, wired to a host bridge by the CNI bridge plugin; state kept on disk.
import { existsSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { firstHost, parseCidr } from '../../lib/ipv4.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { runCommand } from '../../lib/spawner.js';
import { span } from '../../lib/trace.js';
import type { PublishedPort, Sandbox } from '../types.js';
import { bridgeNetworkConfig, hostVeth, ipv4Of, type NetworkManagerOptions } from './bridge-network.js';
import { addNetworkList, delNetworkList, type CniResult } from './cni.js';
import { ensureNetworkRules, pruneHostportChains, pruneSharedChains, publishPorts, removeNetworkRules, unpublishPorts } from './hostports.js';
import { isolationOf, isSegmentTag, SEGMENT_RE, type Isolation, type Members } from './isolation.js';
import { PortOwners, samePorts } from './port-owners.js';
import { SandboxPool } from './sandbox-pool.js';
import { DEFAULT_SEGMENT, POOL_ID_RE, SANDBOX_ID_RE, SandboxStates, withSegment, type SandboxState, type Segment } from './state.js';

export type { NetworkManagerOptions } from './bridge-network.js';
export { DEFAULT_SEGMENT } from './state.js';

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
  private readonly states: SandboxStates;
  /** Host ports published by sandboxes of this manager, or kept by the host. */
  private readonly portOwners: PortOwners;
  /** Warm sandboxes ready to be claimed. */
  private readonly pool: SandboxPool;
  private readonly hostAddress: string;
  private readonly isolation: Isolation;

  constructor(private readonly opts: NetworkManagerOptions) {
    this.name = opts.name ?? 'berth';
    this.bridge = opts.bridge ?? 'berth0';
    this.subnet = opts.subnet ?? '10.89.0.0/16';
    this.cniPath = opts.cniPath ?? '/usr/lib/cni';
    if (this.bridge.length > 15) throw new BerthError(Codes.NetworkError, `bridge name "${this.bridge}" is longer than 15 characters`);
    this.hostAddress = opts.hostAddress ?? '127.0.0.1';
    if (!isIPv4(this.hostAddress)) throw new BerthError(Codes.NetworkError, `host address "${this.hostAddress}" is not an IPv4 address`);
    const subnet = parseCidr(this.subnet);
    if (!subnet) throw new BerthError(Codes.NetworkError, `subnet "${this.subnet}" is not an IPv4 CIDR block`);
    if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 576 || opts.mtu > 65535)) throw new BerthError(Codes.NetworkError, `MTU ${opts.mtu} is not in 576..65535`);
    this.isolation = isolationOf({ bridge: this.bridge, subnet: this.subnet, gateway: firstHost(subnet), hostServices: opts.hostServices ?? [], overlayDevice: opts.overlayDevice });
    this.isolation.addSource(() => this.members());
    this.states = new SandboxStates(opts.stateDir);
    this.pool = new SandboxPool(this.states, Math.max(0, opts.poolSize ?? 0), {
      locked: (id, fn) => this.locked(id, fn),
      create: (poolId) => this.create(poolId, [], null),
      teardown: (poolId) => this.teardownLocked(poolId, false),
      usable: (st) => existsSync(st.netnsPath) && this.toSandbox(st) !== undefined,
      busy: (delta) => (this.settingUp += delta),
    });
    this.portOwners = new PortOwners({
      address: this.hostAddress,
      reserved: opts.reservedPorts,
      load: async () => Promise.all((await this.list()).map(async (id) => [id, (await this.readState(id))?.ports ?? []] as [string, PublishedPort[]])),
    });
  }

  /** Every sandbox's veth, address, segment and tag, for the isolation tables rebuilt from what exists. */
  private async members(): Promise<Members> {
    const out: Members = new Map();
    const add = (result: CniResult, segment: string | null, tag?: number) => {
      const veth = hostVeth(result, this.bridge);
      const address = ipv4Of(result);
      if (veth && address) out.set(veth, { segment, address, ...(segment !== null && tag !== undefined && { tag }) });
    };
    for (const id of await this.list()) {
      const st = await this.readState(id);
      if (st?.result) add(st.result, st.segment ?? null, st.segmentTag);
    }
    for (const result of this.pool.results.values()) add(result, null);
    return out;
  }

  private checkId(id: string): void {
    if (!SANDBOX_ID_RE.test(id) || id.length > 200) throw new BerthError(Codes.NetworkError, `invalid sandbox id "${id}"`);
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  private readState(id: string): Promise<SandboxState | undefined> {
    return this.states.read(id);
  }

  private writeState(st: SandboxState): Promise<void> {
    return this.states.write(st);
  }

  private toSandbox(st: SandboxState): Sandbox | undefined {
    const ip = st.result && ipv4Of(st.result);
    if (!ip) return undefined;
    return { id: st.id, netnsPath: st.netnsPath, ip };
  }

  list(): Promise<string[]> {
    return this.states.ids();
  }

  async get(sandboxId: string): Promise<Sandbox | undefined> {
    this.checkId(sandboxId);
    const st = await this.readState(sandboxId);
    if (!st || !existsSync(st.netnsPath)) return undefined;
    return this.toSandbox(st);
  }

  /**
   * Sets up the sandbox (claimed from the pool when one is warm) in `segment` (isolation.ts: it
   * reaches the sandboxes of its segment, no others) and publishes its ports; idempotent. `tag`: the
   * segment's tag across the cluster's hosts (isSegmentTag); without one the sandbox reaches no other host.
   */
  setup(sandboxId: string, ports: PublishedPort[], segment = DEFAULT_SEGMENT, tag?: number): Promise<Sandbox> {
    return this.setupStaged(sandboxId, ports, segment, tag).published;
  }

  /**
   * setup() in two stages: `sandbox` resolves as soon as the namespace and address are known (a
   * caller can start containers in it), `published` once its ports are published too (when
   * setup() resolves). A failure rejects both; the sandbox is then torn down.
   */
  setupStaged(sandboxId: string, ports: PublishedPort[], segment = DEFAULT_SEGMENT, tag?: number): { sandbox: Promise<Sandbox>; published: Promise<Sandbox> } {
    this.checkId(sandboxId);
    if (!SEGMENT_RE.test(segment)) throw new BerthError(Codes.NetworkError, `invalid network segment "${segment}"`);
    if (tag !== undefined && !isSegmentTag(tag)) throw new BerthError(Codes.NetworkError, `invalid segment tag ${tag} (1..65535)`);
    let onSandbox!: (sb: Sandbox) => void;
    const sandbox = new Promise<Sandbox>((r) => (onSandbox = r));
    const published = this.locked(sandboxId, async () => {
      this.settingUp++;
      let failed = false;
      try {
        return await this.setupLocked(sandboxId, ports, { segment, tag }, onSandbox);
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

  private async setupLocked(id: string, ports: PublishedPort[], segment: Segment, onSandbox: (sb: Sandbox) => void): Promise<Sandbox> {
    const existing = await this.readState(id);
    if (existing?.result && existsSync(existing.netnsPath)) {
      const sb = this.toSandbox(existing);
      if (sb && samePorts(existing.ports, ports)) {
        let st = existing;
        if (st.hostPorts && st.ports.length > 0 && !st.hostAddress) st = await this.republish(st, sb);
        // a state from before segments (or tags): its segment is written first, so tables rebuilt from disk agree
        if (st.segment !== segment.segment || st.segmentTag !== segment.tag) await this.writeState((st = withSegment(st, segment)));
        await this.place(existing.result, segment);
        return sb;
      }
    }
    if (existing) await this.teardownLocked(id, false);

    const release = await this.portOwners.take(id, ports);
    try {
      // the host's own sockets are asked about while the sandbox is claimed and its containers
      // start: nothing is published before the answer (a refusal tears it all down)
      const hostFree = ports.length > 0 ? this.portOwners.checkHost(ports) : Promise.resolve();
      hostFree.catch(() => undefined);
      const claimed = await span(id, 'net.claim', () => this.claimFromPool(id, ports, segment));
      // a claimed sandbox reaches no other until it is in its segment, which goes on while its containers start
      const placed = claimed ? this.place(claimed.result!, segment) : Promise.resolve();
      placed.catch(() => undefined);
      const st = claimed ?? (await span(id, 'net.create', () => this.create(id, ports, segment)));
      const sb = this.toSandbox(st)!;
      onSandbox(sb);
      const publish = hostFree.then(() => publishPorts(id, sb.ip, this.bridge, ports, this.hostAddress));
      const done = await span(id, 'net.publish', () => Promise.allSettled([publish, placed]));
      const failed = done.find((r) => r.status === 'rejected');
      if (failed) {
        await this.teardownLocked(id, false).catch(() => undefined);
        throw failed.reason;
      }
      return sb;
    } catch (e) {
      release();
      throw e;
    }
  }

  /**
   * A sandbox published before per-address publishing has DNATs for every local address, shadowing
   * any host service on its ports: they give way to one for the host address, or to nothing where
   * the host keeps the port (PortAlreadyInUse then, until the host lets it go).
   */
  private async republish(st: SandboxState, sb: Sandbox): Promise<SandboxState> {
    const hostFree = this.portOwners.checkHost(st.ports);
    hostFree.catch(() => undefined);
    await unpublishPorts(st.id);
    await hostFree;
    await publishPorts(st.id, sb.ip, this.bridge, st.ports, this.hostAddress);
    const moved = { ...st, hostAddress: this.hostAddress };
    await this.writeState(moved);
    return moved;
  }

  /** Puts the sandbox with this CNI result into `segment` (null: none, reaching no other sandbox). */
  private place(result: CniResult, segment: Segment | null): Promise<void> {
    const veth = hostVeth(result, this.bridge);
    const address = ipv4Of(result);
    if (!veth || !address) return Promise.reject(new BerthError(Codes.NetworkError, 'the CNI result names no host-side veth or no IPv4 address', 500));
    return this.isolation.place(veth, { segment: segment?.segment ?? null, address, ...(segment?.tag !== undefined && { tag: segment.tag }) });
  }

  /** The ports of `ports` the host keeps where they would be published (PortOwners.unavailable). */
  unavailablePorts(ports: PublishedPort[]): Promise<PublishedPort[]> {
    return this.portOwners.unavailable(ports);
  }

  /** Every port the host keeps where ports would be published (PortOwners.held). */
  heldPorts(): Promise<PublishedPort[]> {
    return this.portOwners.held();
  }

  /** Makes a sandbox through the CNI chain; its state is on disk before anything is made. */
  private async create(id: string, ports: PublishedPort[], segment: Segment | null): Promise<SandboxState> {
    const netnsName = `berth-${id}`;
    const netnsPath = join(NETNS_DIR, netnsName);
    const made: SandboxState = {
      id,
      netnsName,
      netnsPath,
      ports,
      network: bridgeNetworkConfig({ name: this.name, bridge: this.bridge, subnet: this.subnet, mtu: this.opts.mtu, ipamDataDir: this.opts.ipamDataDir }),
      runtime: { containerId: id, netns: netnsPath, ifName: 'eth0' },
      hostPorts: true,
      hostAddress: this.hostAddress,
    };
    const st = segment ? withSegment(made, segment) : made;
    await this.writeState(st);
    try {
      await ensureNetworkRules(this.bridge, this.subnet);
      // what `ip netns add` does, and the loopback up, without running ip
      if (!existsSync(netnsPath)) await runCommand('@netns-add', [netnsName]);
      st.result = await addNetworkList(st.network, st.runtime, this.cniPath);
      if (POOL_ID_RE.test(id)) this.pool.results.set(id, st.result);
      else await this.writeState(st);
      // before it is handed out: a veth in no segment yet may talk to others in none
      await this.place(st.result, segment);
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

  /** Hands a warm pool sandbox over to `id`, in `segment`. */
  private claimFromPool(id: string, ports: PublishedPort[], segment: Segment): Promise<SandboxState | undefined> {
    return this.pool.claim((st) => withSegment({ ...st, id, ports, hostPorts: true, hostAddress: this.hostAddress }, segment));
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
    await this.pool.cleanUp(claimed);
    // what a killed process left in the isolation tables is adopted, or dropped with the rest when nothing is left
    if (!(await this.pruneIfIdle())) await this.isolation.rebuild();
    // only now: a claim meanwhile must not start a refill whose sandboxes the cleanup above would miss
    this.pool.start();
  }

  /** Stops refilling and tears down the sandboxes still in the pool. */
  async stopPool(): Promise<void> {
    await this.pool.stop();
    await this.pruneIfIdle();
  }

  /** Warm sandboxes waiting to be claimed. */
  poolReady(): number {
    return this.pool.readyCount;
  }

  /**
   * Resolves once the pool is full (or stopped). Two sandboxes are made at a time, in the background.
   */
  refill(): Promise<void> {
    return this.pool.refill();
  }

  teardown(sandboxId: string): Promise<void> {
    this.checkId(sandboxId);
    return this.locked(sandboxId, () => this.teardownLocked(sandboxId, true));
  }

  private async teardownLocked(id: string, prune: boolean): Promise<void> {
    const st = await this.readState(id);
    if (st) st.result ??= this.pool.results.get(id);
    const netnsName = st?.netnsName ?? `berth-${id}`;
    const netnsPath = st?.netnsPath ?? join(NETNS_DIR, netnsName);
    const errors: string[] = [];
    if (st?.hostPorts) {
      try {
        const sb = this.toSandbox(st);
        await unpublishPorts(id, sb ? { ip: sb.ip, ports: st.ports, address: st.hostAddress } : undefined);
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
      const veth = st.result && hostVeth(st.result, this.bridge);
      if (veth) await this.isolation.remove(veth).catch((e) => errors.push(errText(e)));
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
    await this.states.remove(id);
    this.pool.results.delete(id);
    if (!POOL_ID_RE.test(id)) await this.portOwners.release(id);
    // the host-port chains go with the last published port, even while the pool keeps the network busy
    if (st?.ports.length && (await this.portOwners.count()) === 0) await pruneHostportChains().catch(() => undefined);
    if (prune) await this.pruneIfIdle();
  }

  /** With no sandbox left (in use, in the pool, or being made), the network's host-wide rules go; says whether they went. */
  private async pruneIfIdle(): Promise<boolean> {
    if (this.settingUp !== 0 || (await this.list()).length !== 0 || !(await this.pool.empty())) return false;
    await this.removeRules();
    return true;
  }

  private async removeRules(): Promise<void> {
    await removeNetworkRules(this.bridge).catch((e) => console.error(`network: removing rules of ${this.bridge}: ${(e as Error).message}`));
    await this.isolation.drop().catch((e) => console.error(`network: removing the isolation tables of ${this.bridge}: ${(e as Error).message}`));
    await pruneSharedChains().catch(() => undefined);
  }

  /** Removes the bridge once no sandbox uses it (host shutdown, tests). */
  async destroy(): Promise<void> {
    await this.stopPool();
    if ((await this.list()).length > 0) {
      throw new BerthError(Codes.NetworkError, `network ${this.name} still has sandboxes`, 409);
    }
    await runCommand('ip', ['link', 'delete', this.bridge, 'type', 'bridge']).catch(() => undefined);
    await this.removeRules();
  }
}
