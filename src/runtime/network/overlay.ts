// The host's side of the cluster overlay (flannel's VXLAN design): one VXLAN device, and per peer host a route, a neighbour and an FDB entry, converged from what the kernel has.
import { writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { BerthError, Codes } from '../../lib/errors.js';
import { cidrWithin, formatCidr, parseCidr } from '../../lib/ipv4.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { execCommand } from '../../lib/spawner.js';
import { applyOverlayTable, ensureOverlayForwarding, readOverlayTablePeers, removeOverlayFirewall } from './overlay-firewall.js';
import { checkPeers, parseKernel, planPeers, ROUTE_PROTO, teardownCommands, vtepAddressOf, vtepMacFor, type OverlayPeer, type OverlayShape } from './overlay-plan.js';

export { vtepMacFor, type OverlayPeer } from './overlay-plan.js';

export interface OverlayOptions {
  /** The VXLAN device. Default 'berth-vxlan'. */
  device?: string;
  /** The cluster's VXLAN network identifier (1..16777215): every host of a cluster uses the same. */
  vni: number;
  /** UDP port of VXLAN (IANA's 4789 by default); the same on every host. */
  port?: number;
  /** This host's address on the underlay: the source of its VXLAN packets, where peers send theirs. */
  underlayAddress: string;
  /** This host's sandboxes' subnet (the bridge's), inside `clusterCidr`. */
  localSubnet: string;
  /** The whole overlay: every host's subnet lies in it. */
  clusterCidr: string;
  /** The host's sandbox bridge (NetworkManager's). */
  bridge: string;
  /** Default: the underlay interface's MTU less 50 (VXLAN's outer Ethernet, IP, UDP and VXLAN headers). */
  mtu?: number;
  /**
   * The routing table (default 2130) and the priority of the rule that selects it for traffic from the bridge
   * (default 2130): it sends the sandboxes' packets for peers' underlay addresses through the overlay, so the
   * peer sees them come from a sandbox and decides (its published ports answer, its own services do not).
   */
  routeTable?: number;
  rulePriority?: number;
}

/** What this host publishes to its peers (through the control plane) once setup() has run. */
export interface OverlayLocal {
  underlayAddress: string;
  subnet: string;
  vtepMac: string;
  /** The first address of the subnet, held by the device. */
  vtepAddress: string;
  /** The device's MTU: the sandboxes' (NetworkManagerOptions.mtu) should not exceed it. */
  mtu: number;
}

/** What a setPeers() changed: commands run on the kernel (0: it already was as asked). */
export interface PeersApplied {
  peers: number;
  changes: number;
}

const VXLAN_OVERHEAD = 50;
/** One lock per device in a process: two objects for one device never interleave their commands. */
const locks = new KeyedLock();

const failure = (what: string, detail: string) => new BerthError(Codes.NetworkError, `overlay: ${what}: ${detail.trim()}`, 500);
const invalid = (message: string, target: string) => new BerthError(Codes.NetworkError, `overlay: ${message}`, 400, target);

/** Runs `ip`/`bridge` with `args`, feeding `lines` to -batch when given; resolves with stdout. */
async function run(file: 'ip' | 'bridge', args: string[], lines?: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const r = await execCommand(file, lines ? [...args, '-batch', '-'] : args, { input: lines ? `${lines.join('\n')}\n` : undefined, timeoutMs: 30_000 });
  if (r.error) throw failure(file, r.error);
  return { ok: r.code === 0, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a batch of changes (every line is tried, `-force`); fails naming what the kernel refused. */
async function change(file: 'ip' | 'bridge', lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  const r = await run(file, ['-force'], lines);
  if (!r.ok) throw failure(`${file} -batch`, `${r.stderr}\n${lines.join('\n')}`);
}

/**
 * One host's overlay. setup() makes (or adopts) the device and the host's rules; setPeers() makes the kernel
 * hold exactly what the given peers need, whatever it held before (a restarted agent's new object adopts
 * what the last one made: nothing is duplicated, nothing flushed that berth did not make); teardown() removes
 * it all. Nothing is undone when the process exits: the overlay keeps carrying traffic while an agent restarts.
 */
export class Overlay {
  private readonly shape: OverlayShape;
  private readonly vni: number;
  private readonly port: number;
  private readonly mtuOption?: number;
  /** The peers last applied in this process (to restore them onto a device made again). */
  private peers?: OverlayPeer[];
  /** The peer addresses the overlay's table holds, as this process last wrote it. */
  private tablePeers?: string;

  constructor(opts: OverlayOptions) {
    const device = opts.device ?? 'berth-vxlan';
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(device)) throw invalid(`device name "${device}" is not a valid interface name`, 'device');
    if (!Number.isInteger(opts.vni) || opts.vni < 1 || opts.vni > 0xffffff) throw invalid(`VNI ${opts.vni} is not in 1..16777215`, 'vni');
    const port = opts.port ?? 4789;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`port ${port} is not a UDP port`, 'port');
    if (typeof opts.underlayAddress !== 'string' || !isIPv4(opts.underlayAddress)) throw invalid(`underlay address "${opts.underlayAddress}" is not an IPv4 address`, 'underlayAddress');
    const clusterCidr = parseCidr(opts.clusterCidr);
    if (!clusterCidr) throw invalid(`cluster CIDR "${opts.clusterCidr}" is not a CIDR block`, 'clusterCidr');
    const localSubnet = parseCidr(opts.localSubnet);
    if (!localSubnet || !cidrWithin(localSubnet, clusterCidr) || localSubnet.bits > 30) throw invalid(`local subnet "${opts.localSubnet}" is not a block of at most /30 inside ${formatCidr(clusterCidr)}`, 'localSubnet');
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.bridge)) throw invalid(`bridge name "${opts.bridge}" is not a valid interface name`, 'bridge');
    if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 576 || opts.mtu > 65535)) throw invalid(`MTU ${opts.mtu} is not in 576..65535`, 'mtu');
    const routeTable = opts.routeTable ?? 2130;
    const rulePriority = opts.rulePriority ?? 2130;
    // 253..255 are the kernel's default, main and local tables
    if (!Number.isInteger(routeTable) || routeTable < 1 || (routeTable >= 253 && routeTable <= 255) || routeTable > 0xffffffff) throw invalid(`route table ${routeTable} is not a table berth may own`, 'routeTable');
    if (!Number.isInteger(rulePriority) || rulePriority < 1 || rulePriority >= 32766) throw invalid(`rule priority ${rulePriority} is not in 1..32765 (before the main table's)`, 'rulePriority');
    this.shape = { device, bridge: opts.bridge, underlayAddress: opts.underlayAddress, localSubnet, clusterCidr, routeTable, rulePriority };
    this.vni = opts.vni;
    this.port = port;
    this.mtuOption = opts.mtu;
  }

  get device(): string {
    return this.shape.device;
  }

  /** Makes the device (or adopts it, replacing what differs) and the overlay's host rules; idempotent. */
  setup(): Promise<OverlayLocal> {
    return locks.run(this.device, () => this.setupLocked());
  }

  /** Programs exactly `peers` (the cluster's hosts; this host may be among them); idempotent and converging. */
  setPeers(peers: OverlayPeer[]): Promise<PeersApplied> {
    const checked = checkPeers(this.shape, peers);
    return locks.run(this.device, () => this.setPeersLocked(checked));
  }

  /** Removes the device, its routes, neighbours and FDB entries, the rule, the table and the host rules; idempotent. */
  teardown(): Promise<void> {
    return locks.run(this.device, async () => {
      const dev = this.device;
      const gone = await run('ip', ['link', 'del', 'dev', dev]);
      if (!gone.ok && !/Cannot find device|does not exist/.test(gone.stderr)) throw failure(`deleting ${dev}`, gone.stderr);
      // what does not go with the device: the unreachable route and the rule
      await change('ip', teardownCommands(this.shape, await this.readKernelLeft()));
      await removeOverlayFirewall(dev);
      this.peers = undefined;
      this.tablePeers = undefined;
    });
  }

  private async setupLocked(): Promise<OverlayLocal> {
    const dev = this.device;
    const { underlayAddress } = this.shape;
    const vtepAddress = vtepAddressOf(this.shape.localSubnet);
    const vtepMac = vtepMacFor(underlayAddress);
    // the underlay interface (found by the address), then the device, which may not exist
    const read = await run('ip', ['-j', '-d'], [`addr show to ${underlayAddress}/32`, `addr show dev ${dev}`]);
    const [underlayJson, deviceJson] = read.stdout.split('\n').filter((l) => l.trim());
    const underlay = underlayJson ? (JSON.parse(underlayJson) as { ifname: string; mtu: number }[])[0] : undefined;
    if (!underlay) throw invalid(`no interface of this host has the underlay address ${underlayAddress}`, 'underlayAddress');
    const mtu = this.mtuOption ?? underlay.mtu - VXLAN_OVERHEAD;
    const device = deviceJson ? (JSON.parse(deviceJson) as DeviceJson[])[0] : undefined;
    if (device && device.linkinfo?.info_kind !== 'vxlan') throw failure(`device ${dev}`, `it exists and is not a VXLAN device (${device.linkinfo?.info_kind ?? 'no kind'}): berth does not take it over`);

    const info = device?.linkinfo?.info_data;
    const sameDevice = device && info && info.id === this.vni && info.local === underlayAddress && info.port === this.port && info.learning === false && info.gbp === true && device.address === vtepMac;
    const lines: string[] = [];
    if (device && !sameDevice) lines.push(`link del dev ${dev}`);
    if (!sameDevice) {
      // gbp: each packet carries its sender's segment tag (isolation.ts), which the receiving host checks
      lines.push(`link add ${dev} address ${vtepMac} mtu ${mtu} type vxlan id ${this.vni} local ${underlayAddress} dstport ${this.port} nolearning gbp`);
      lines.push(`link set dev ${dev} up`, `addr add ${vtepAddress}/32 dev ${dev}`);
    } else {
      if (device.mtu !== mtu) lines.push(`link set dev ${dev} mtu ${mtu}`);
      if (!device.flags?.includes('UP')) lines.push(`link set dev ${dev} up`);
      const v4 = (device.addr_info ?? []).filter((a) => a.family === 'inet');
      for (const a of v4) if (a.local !== vtepAddress || a.prefixlen !== 32) lines.push(`addr del ${a.local}/${a.prefixlen} dev ${dev}`);
      if (!v4.some((a) => a.local === vtepAddress && a.prefixlen === 32)) lines.push(`addr add ${vtepAddress}/32 dev ${dev}`);
    }
    await change('ip', lines);
    // routed between the bridge and the overlay; loose reverse-path checks on the device, as replies to what the
    // sandboxes send peers' underlay addresses come back through it (strict ones would drop them)
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    await writeFile(`/proc/sys/net/ipv4/conf/${dev}/rp_filter`, '2');
    await ensureOverlayForwarding({ ...this.shape, port: this.port });
    // a new process (a restarted agent) keeps accepting the peers the table has until it is given its own
    await this.writeTable(this.peers?.map((p) => p.underlayAddress) ?? (await readOverlayTablePeers(dev)) ?? [], true);
    // a device made again lost its routes, neighbours and FDB: the last peers go back on it at once
    if (!sameDevice && this.peers) await this.setPeersLocked(checkPeers(this.shape, this.peers));
    return { underlayAddress, subnet: formatCidr(this.shape.localSubnet), vtepMac, vtepAddress, mtu };
  }

  private async setPeersLocked(peers: ReturnType<typeof checkPeers>): Promise<PeersApplied> {
    let actual = await this.readKernel();
    if (!actual) {
      // the device went (someone deleted it): made again first, then given these peers
      this.peers = undefined;
      await this.setupLocked();
      actual = await this.readKernel();
      if (!actual) throw failure(`device ${this.device}`, 'it is gone again right after it was made');
    }
    const commands = planPeers(this.shape, peers, actual);
    await change('bridge', commands.bridge);
    await change('ip', commands.ip);
    const wroteTable = await this.writeTable(peers.map((p) => p.underlayAddress), false);
    this.peers = peers.map(({ name, underlayAddress, subnet, vtepMac }) => ({ name, underlayAddress, subnet, vtepMac }));
    return { peers: peers.length, changes: commands.bridge.length + commands.ip.length + (wroteTable ? 1 : 0) };
  }

  /** Writes the overlay's table when its peers differ from what this process wrote (always when `force`); says whether it wrote. */
  private async writeTable(addresses: string[], force: boolean): Promise<boolean> {
    const key = [...addresses].sort().join(',');
    if (!force && key === this.tablePeers) return false;
    await applyOverlayTable({ ...this.shape, port: this.port }, addresses);
    this.tablePeers = key;
    return true;
  }

  /** The overlay's entries in the kernel (undefined: its device is missing): two commands (ip's reads in one batch, and bridge's FDB). */
  private async readKernel() {
    const dev = this.device;
    const [ip, fdb] = await Promise.all([
      run('ip', ['-j', '-d'], [`route show table all proto ${ROUTE_PROTO}`, `neigh show dev ${dev}`, 'rule show']),
      run('bridge', ['-j', 'fdb', 'show', 'dev', dev]),
    ]);
    if (!ip.ok || !fdb.ok) {
      if (/Cannot find device|does not exist/.test(ip.stderr + fdb.stderr)) return undefined;
      throw failure('reading the kernel', ip.stderr + fdb.stderr);
    }
    const [routes, neighbours, rules] = ip.stdout.split('\n').filter((l) => l.trim());
    return parseKernel(dev, routes, neighbours, rules, fdb.stdout || '[]');
  }

  /** What outlives the device: routes of the overlay's protocol and the rules. */
  private async readKernelLeft() {
    const r = await run('ip', ['-j', '-d'], [`route show table all proto ${ROUTE_PROTO}`, 'rule show']);
    if (!r.ok) throw failure('reading the kernel', r.stderr);
    const [routes, rules] = r.stdout.split('\n').filter((l) => l.trim());
    return parseKernel(this.device, routes, '[]', rules, '[]');
  }
}

interface DeviceJson {
  ifname: string;
  mtu: number;
  address: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean; gbp?: boolean } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
