// Keeps a bridge's sandboxes apart by segment (on this host, and across the cluster's overlay), and the host's own services out of their reach, in two nftables tables per bridge.
import { isIPv4 } from 'node:net';
import { BerthError, Codes } from '../../lib/errors.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { execCommand } from '../../lib/spawner.js';
import type { PublishedPort } from '../types.js';

/**
 * A segment names the sandboxes that reach each other across the bridge; sandboxes of different
 * segments never do (they still reach each other's published ports through the host's address,
 * as anyone may). A sandbox placed in no segment (null: a warm one nobody claimed yet) reaches no
 * other sandbox.
 */
export const SEGMENT_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Across hosts a segment is known by its tag: a number (1..65535) the control plane gives each segment, the
 * same on every host. Each packet a sandbox sends into the overlay carries its segment's tag in the VXLAN
 * header (the Group Based Policy extension: the packet mark on the way out, the mark again on the way in), and
 * the receiving host lets it reach only its sandboxes of that tag. So no host needs to know the groups of
 * other hosts, and a group is reachable from its segment everywhere as soon as its own host has it.
 */
export const isSegmentTag = (tag: unknown): tag is number => Number.isInteger(tag) && (tag as number) >= 1 && (tag as number) <= 0xffff;

export interface IsolationOptions {
  bridge: string;
  subnet: string;
  /** The bridge's own address: the sandboxes' gateway. */
  gateway: string;
  /** Ports of the gateway address the sandboxes may reach (where berth's resolver for its groups will answer); none by default. */
  hostServices: PublishedPort[];
  /** The cluster overlay's VXLAN device (overlay.ts), when this host has one: segments then hold across hosts. */
  overlayDevice?: string;
}

/** A sandbox as the tables know it: its segment (null: none yet), its address, and its segment's tag if it has one. */
export interface Member {
  segment: string | null;
  address: string;
  tag?: number;
}

/** Each sandbox's host-side veth and what the tables know of it. */
export type Members = Map<string, Member>;

type Op = { kind: 'place'; veth: string; member: Member } | { kind: 'remove'; veth: string } | { kind: 'rebuild' } | { kind: 'drop' };

const sameMember = (a: Member | undefined, b: Member | undefined) => a?.segment === b?.segment && a?.address === b?.address && a?.tag === b?.tag;

/** The name of both tables of a bridge (`bridge` family: between sandboxes; `inet`: to and through the host). */
export const tableName = (bridge: string) => `berth-${bridge}`;

/** What the tables hold, as the last successful commit left them. */
class Model {
  readonly members: Members = new Map();
  private readonly sizes = new Map<string, number>();
  /** Each tag in use and the segment that has it. */
  private readonly tags = new Map<number, { segment: string; count: number }>();

  clone(): Model {
    const m = new Model();
    for (const [veth, member] of this.members) m.set(veth, member);
    return m;
  }

  set(veth: string, member: Member) {
    this.delete(veth);
    this.members.set(veth, member);
    const { segment, tag } = member;
    if (segment === null) return;
    this.sizes.set(segment, (this.sizes.get(segment) ?? 0) + 1);
    if (tag !== undefined) this.tags.set(tag, { segment, count: (this.tags.get(tag)?.count ?? 0) + 1 });
  }

  delete(veth: string) {
    const member = this.members.get(veth);
    if (!member) return;
    this.members.delete(veth);
    const { segment, tag } = member;
    if (segment === null) return;
    const n = this.sizes.get(segment)! - 1;
    if (n === 0) this.sizes.delete(segment);
    else this.sizes.set(segment, n);
    if (tag === undefined) return;
    const t = this.tags.get(tag)!;
    if (t.count === 1) this.tags.delete(tag);
    else t.count--;
  }

  has(segment: string): boolean {
    return this.sizes.has(segment);
  }

  /** The segment other than `segment` that has `tag`, if any: one tag naming two segments would join them across hosts. */
  tagClash(tag: number | undefined, segment: string | null, exceptVeth: string): string | undefined {
    if (tag === undefined || segment === null) return undefined;
    const owner = this.tags.get(tag);
    if (!owner || owner.segment === segment) return undefined;
    const self = this.members.get(exceptVeth);
    // the sandbox itself moving to another segment with its tag: the last of its old segment
    if (owner.count === 1 && self?.tag === tag && self.segment === owner.segment) return undefined;
    return owner.segment;
  }
}

/**
 * One per bridge in a process (NetworkManagers of the same bridge share it). The tables are rebuilt
 * from the sandboxes on disk (the `members` sources) the first time they are touched, so what a
 * killed process left is adopted or dropped, and again when a commit finds them not as expected
 * (someone flushed the ruleset). Every change is one atomic `nft -f`.
 */
export class Isolation {
  private model?: Model;
  private readonly sources = new Set<() => Promise<Members>>();
  private readonly commits = new GroupCommit<Op>((ops) => this.commit(ops));
  /** Ops submitted and not settled: while there are none, the model is what the tables hold. */
  private pending = 0;

  constructor(private readonly o: IsolationOptions) {}

  /** Adds a source of the sandboxes that exist (their state on disk, warm ones in memory). */
  addSource(members: () => Promise<Members>): void {
    this.sources.add(members);
  }

  /**
   * Puts a sandbox's veth in `member.segment` (null: in none, reaching no other sandbox) with its address (the
   * only source it may send from) and its segment's tag (without one it reaches no other host); idempotent.
   */
  place(veth: string, member: Member): Promise<void> {
    if (member.segment !== null && !SEGMENT_RE.test(member.segment)) return Promise.reject(new BerthError(Codes.NetworkError, `invalid network segment "${member.segment}"`, 500));
    if (!isIPv4(member.address)) return Promise.reject(new BerthError(Codes.NetworkError, `invalid sandbox address "${member.address}"`, 500));
    if (member.tag !== undefined && !isSegmentTag(member.tag)) return Promise.reject(new BerthError(Codes.NetworkError, `invalid segment tag ${member.tag}`, 500));
    // the common case of a group checked again: already there, nothing to run
    if (this.pending === 0 && sameMember(this.model?.members.get(veth), member)) return Promise.resolve();
    return this.submit({ kind: 'place', veth, member });
  }

  /** Forgets a sandbox's veth; idempotent. */
  remove(veth: string): Promise<void> {
    return this.submit({ kind: 'remove', veth });
  }

  /** Makes the tables again from the sandboxes that exist (at start: adopts what a killed process left, drops what it does not need). */
  rebuild(): Promise<void> {
    return this.submit({ kind: 'rebuild' });
  }

  /** Removes both tables (once the bridge has no sandbox left); idempotent. */
  drop(): Promise<void> {
    return this.submit({ kind: 'drop' });
  }

  private async submit(op: Op): Promise<void> {
    this.pending++;
    try {
      await this.commits.submit(op);
    } finally {
      this.pending--;
    }
  }

  private async commit(ops: Op[]): Promise<void> {
    try {
      await this.apply(ops);
    } catch (e) {
      // a batch is retried op by op; one op that fails is retried once on tables rebuilt from disk
      if (ops.length > 1 || !this.model) throw e;
      this.model = undefined;
      await this.apply(ops);
    }
  }

  private async apply(ops: Op[]): Promise<void> {
    const lines: string[] = [];
    let model = this.model?.clone();
    for (const op of ops) {
      if (op.kind === 'drop') {
        lines.push(...dropTables(this.o.bridge));
        model = undefined;
        continue;
      }
      if (!model || op.kind === 'rebuild') {
        model = new Model();
        const members: Members = new Map();
        for (const source of this.sources) for (const [veth, member] of await source()) members.set(veth, member);
        lines.push(...dropTables(this.o.bridge), ...baseTables(this.o));
        for (const [veth, member] of members) {
          // what is on disk was placed once: a tag that clashes (the control plane gave two segments one) is left
          // out, so the sandbox reaches no other host rather than another segment
          const clash = model.tagClash(member.tag, member.segment, veth);
          if (clash) console.error(`network: sandbox ${veth} of segment ${member.segment} keeps no tag: tag ${member.tag} is segment ${clash}'s`);
          lines.push(...change(this.o, model, veth, clash ? { segment: member.segment, address: member.address } : member));
        }
      }
      if (op.kind === 'place') {
        const clash = model.tagClash(op.member.tag, op.member.segment, op.veth);
        if (clash) throw new BerthError(Codes.NetworkError, `segment tag ${op.member.tag} of segment ${op.member.segment} is segment ${clash}'s on this host`, 409);
      }
      if (op.kind !== 'rebuild') lines.push(...change(this.o, model, op.veth, op.kind === 'place' ? op.member : undefined));
    }
    if (lines.length > 0) await nft(lines);
    this.model = model;
  }
}

const isolations = new Map<string, Isolation>();

/** The bridge's Isolation (made with the options of its first user). */
export function isolationOf(o: IsolationOptions): Isolation {
  let iso = isolations.get(o.bridge);
  if (!iso) isolations.set(o.bridge, (iso = new Isolation(o)));
  return iso;
}

/** Runs one nftables transaction: all of it applies, or none. */
export async function nft(lines: string[]): Promise<void> {
  const script = [...lines, ''].join('\n');
  const r = await execCommand('nft', ['-f', '-'], { input: script, timeoutMs: 30_000 });
  if (r.error) throw new BerthError(Codes.NetworkError, `nft: ${r.error}`, 500);
  if (r.code !== 0) throw new BerthError(Codes.NetworkError, `nft: ${r.stderr.trim() || `exit ${r.code}`}\n${script}`, 500);
}

/** `add` before `delete`: deleting what is not there would fail the transaction. */
const dropTables = (bridge: string) => ['bridge', 'inet'].flatMap((family) => [`add table ${family} ${tableName(bridge)}`, `delete table ${family} ${tableName(bridge)}`]);

function baseTables(o: IsolationOptions): string[] {
  const t = tableName(o.bridge);
  const br = JSON.stringify(o.bridge);
  const l4 = (p: PublishedPort) => `${p.protocol === 'UDP' ? 'udp' : 'tcp'} . ${p.port}`;
  return [
    `add table bridge ${t}`,
    `add map bridge ${t} segment-of { type ifname : verdict; }`,
    `add set bridge ${t} segmented { type ifname; }`,
    `add set bridge ${t} bound { type ifname . ipv4_addr; }`,
    // between sandboxes (frames the bridge forwards from port to port): a sandbox's veth sends to its
    // segment's chain, which passes what goes to a veth of the same segment; what comes from a port
    // that is no sandbox of this bridge (this kernel has no bridge-name match) may not reach one
    `add chain bridge ${t} forward { type filter hook forward priority filter; policy accept; }`,
    // br_netfilter bridges (rather than routes) what a DNAT sends back into the bridge it came from:
    // a published port reached through the host's address (a frame sent to the bridge's own MAC,
    // still marked as for this host) and its replies pass between segments
    `add rule bridge ${t} forward meta pkttype host accept`,
    `add rule bridge ${t} forward iifname vmap @segment-of`,
    `add rule bridge ${t} forward oifname @segmented drop`,
    `add chain bridge ${t} prerouting { type filter hook prerouting priority filter; policy accept; }`,
    // a sandbox sends from its own address only: hosts past this one (the overlay's, the world's replies
    // through the masquerade) tell sandboxes apart by their addresses, which another must not borrow
    `add rule bridge ${t} prerouting iifname @segmented iifname . ip saddr != @bound drop`,
    // nor answers ARP for another's: the host would send what it routes to that sandbox (published ports, the
    // overlay's traffic, the world's replies) to the borrower
    `add rule bridge ${t} prerouting iifname @segmented iifname . arp saddr ip != @bound drop`,
    // a sandbox sending another's address to the gateway's MAC (the bridge marks frames to its own
    // MAC as for this host) would have the host route it back into the bridge, past the segments:
    // dropped as it enters (published ports are reached at a host address, never a sandbox's)
    `add rule bridge ${t} prerouting iifname @segmented meta pkttype host ip daddr ${o.subnet} ip daddr != ${o.gateway} drop`,
    // to the host itself, at any of its addresses (127.0.0.0/8 too: route_localnet is on for the
    // bridge when ports are published on loopback): replies, and what berth offers its sandboxes;
    // the rest is refused as a closed port would be (a client fails at once instead of hanging)
    `add table inet ${t}`,
    `add set inet ${t} host-services { type inet_proto . inet_service; }`,
    `add chain inet ${t} input { type filter hook input priority filter; policy accept; }`,
    `add rule inet ${t} input iifname ${br} ct state established,related accept`,
    `add rule inet ${t} input iifname ${br} ip daddr ${o.gateway} meta l4proto . th dport @host-services accept`,
    `add rule inet ${t} input iifname ${br} meta l4proto tcp reject with tcp reset`,
    `add rule inet ${t} input iifname ${br} reject`,
    ...(o.hostServices.length ? [`add element inet ${t} host-services { ${o.hostServices.map(l4).join(', ')} }`] : []),
    ...(o.overlayDevice ? overlayTables(o.bridge, o.overlayDevice) : []),
  ];
}

/** Segments across hosts (isSegmentTag): each sandbox's tag by address, going out; each sandbox's address with its tag, coming in. */
function overlayTables(bridge: string, device: string): string[] {
  const t = tableName(bridge);
  const between = `iifname ${JSON.stringify(bridge)} oifname ${JSON.stringify(device)}`;
  const into = `iifname ${JSON.stringify(device)} oifname ${JSON.stringify(bridge)}`;
  return [
    `add map inet ${t} tag-of { type ipv4_addr : mark; }`,
    `add set inet ${t} tagged { type ipv4_addr . mark; }`,
    `add chain inet ${t} forward { type filter hook forward priority filter; policy accept; }`,
    // the mark becomes the VXLAN header's tag: a sandbox without one (no segment, no tag) sends tag 0, which no
    // host accepts; the sender's address is its own (the bridge's prerouting sees to it)
    `add rule inet ${t} forward ${between} meta mark set 0`,
    `add rule inet ${t} forward ${between} meta mark set ip saddr map @tag-of`,
    // the receiving host decides, never the sender alone: what comes in reaches a sandbox whose tag it carries,
    // a published port (DNAT: anyone may), or is the answer to what a sandbox here began
    `add rule inet ${t} forward ${into} ct state established,related accept`,
    `add rule inet ${t} forward ${into} ct status dnat accept`,
    `add rule inet ${t} forward ${into} ip daddr . meta mark @tagged accept`,
    `add rule inet ${t} forward ${into} meta l4proto tcp reject with tcp reset`,
    `add rule inet ${t} forward ${into} reject with icmpx type admin-prohibited`,
  ];
}

/** The commands that move `veth` from what `model` has of it to `next` (undefined: out), updating `model`. */
function change(o: IsolationOptions, model: Model, veth: string, next: Member | undefined): string[] {
  const t = tableName(o.bridge);
  const v = JSON.stringify(veth);
  const prev = model.members.get(veth);
  if (sameMember(prev, next)) return [];
  const tagged = (m: Member) => o.overlayDevice !== undefined && m.tag !== undefined;
  const lines: string[] = [];
  if (prev) {
    lines.push(`delete element bridge ${t} segment-of { ${v} }`, `delete element bridge ${t} segmented { ${v} }`, `delete element bridge ${t} bound { ${v} . ${prev.address} }`);
    if (tagged(prev)) lines.push(`delete element inet ${t} tag-of { ${prev.address} }`, `delete element inet ${t} tagged { ${prev.address} . ${prev.tag} }`);
    model.delete(veth);
    if (prev.segment !== null) {
      lines.push(`delete element bridge ${t} members-${prev.segment} { ${v} }`);
      if (!model.has(prev.segment)) lines.push(`flush chain bridge ${t} segment-${prev.segment}`, `delete chain bridge ${t} segment-${prev.segment}`, `delete set bridge ${t} members-${prev.segment}`);
    }
  }
  if (!next) return lines;
  const { segment } = next;
  if (segment !== null) {
    if (!model.has(segment)) {
      lines.push(
        `add set bridge ${t} members-${segment} { type ifname; }`,
        `add chain bridge ${t} segment-${segment}`,
        `add rule bridge ${t} segment-${segment} oifname @members-${segment} accept`,
        `add rule bridge ${t} segment-${segment} drop`,
      );
    }
    lines.push(`add element bridge ${t} members-${segment} { ${v} }`);
  }
  lines.push(
    `add element bridge ${t} segment-of { ${v} : ${segment === null ? 'drop' : `goto segment-${segment}`} }`,
    `add element bridge ${t} segmented { ${v} }`,
    `add element bridge ${t} bound { ${v} . ${next.address} }`,
  );
  if (tagged(next)) lines.push(`add element inet ${t} tag-of { ${next.address} : ${next.tag} }`, `add element inet ${t} tagged { ${next.address} . ${next.tag} }`);
  model.set(veth, next);
  return lines;
}
