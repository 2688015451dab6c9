// Keeps a bridge's sandboxes apart by segment, and the host's own services out of their reach, in two nftables tables per bridge.
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

export interface IsolationOptions {
  bridge: string;
  subnet: string;
  /** The bridge's own address: the sandboxes' gateway. */
  gateway: string;
  /** Ports of the gateway address the sandboxes may reach (where berth's resolver for its groups will answer); none by default. */
  hostServices: PublishedPort[];
}

/** Each sandbox's host-side veth and its segment (null: none yet). */
export type Members = Map<string, string | null>;

type Op = { kind: 'place'; veth: string; segment: string | null } | { kind: 'remove'; veth: string } | { kind: 'rebuild' } | { kind: 'drop' };

/** The name of both tables of a bridge (`bridge` family: between sandboxes; `inet`: to and through the host). */
export const tableName = (bridge: string) => `berth-${bridge}`;

/** What the tables hold, as the last successful commit left them. */
class Model {
  readonly members: Members = new Map();
  private readonly sizes = new Map<string, number>();

  clone(): Model {
    const m = new Model();
    for (const [veth, segment] of this.members) m.set(veth, segment);
    return m;
  }

  set(veth: string, segment: string | null) {
    this.delete(veth);
    this.members.set(veth, segment);
    if (segment !== null) this.sizes.set(segment, (this.sizes.get(segment) ?? 0) + 1);
  }

  delete(veth: string) {
    if (!this.members.has(veth)) return;
    const segment = this.members.get(veth)!;
    this.members.delete(veth);
    if (segment === null) return;
    const n = this.sizes.get(segment)! - 1;
    if (n === 0) this.sizes.delete(segment);
    else this.sizes.set(segment, n);
  }

  has(segment: string): boolean {
    return this.sizes.has(segment);
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

  /** Puts a sandbox's veth in `segment` (null: in none, reaching no other sandbox); idempotent. */
  place(veth: string, segment: string | null): Promise<void> {
    if (segment !== null && !SEGMENT_RE.test(segment)) return Promise.reject(new BerthError(Codes.NetworkError, `invalid network segment "${segment}"`, 500));
    // the common case of a group checked again: already there, nothing to run
    if (this.pending === 0 && this.model?.members.get(veth) === segment) return Promise.resolve();
    return this.submit({ kind: 'place', veth, segment });
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
        for (const source of this.sources) for (const [veth, segment] of await source()) members.set(veth, segment);
        lines.push(...dropTables(this.o.bridge), ...baseTables(this.o));
        for (const [veth, segment] of members) lines.push(...change(this.o.bridge, model, veth, segment));
      }
      if (op.kind !== 'rebuild') lines.push(...change(this.o.bridge, model, op.veth, op.kind === 'place' ? op.segment : undefined));
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
async function nft(lines: string[]): Promise<void> {
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
    // a sandbox sending another's address to the gateway's MAC (the bridge marks frames to its own
    // MAC as for this host) would have the host route it back into the bridge, past the segments:
    // dropped as it enters (published ports are reached at a host address, never a sandbox's)
    `add chain bridge ${t} prerouting { type filter hook prerouting priority filter; policy accept; }`,
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
  ];
}

/** The commands that move `veth` from where `model` has it to `segment` (undefined: out), updating `model`. */
function change(bridge: string, model: Model, veth: string, segment: string | null | undefined): string[] {
  const t = tableName(bridge);
  const v = JSON.stringify(veth);
  const had = model.members.has(veth);
  const was = model.members.get(veth);
  if (had ? was === segment : segment === undefined) return [];
  const lines: string[] = [];
  if (had) {
    lines.push(`delete element bridge ${t} segment-of { ${v} }`);
    model.delete(veth);
    if (was) {
      lines.push(`delete element bridge ${t} members-${was} { ${v} }`);
      if (!model.has(was)) lines.push(`flush chain bridge ${t} segment-${was}`, `delete chain bridge ${t} segment-${was}`, `delete set bridge ${t} members-${was}`);
    }
    if (segment === undefined) lines.push(`delete element bridge ${t} segmented { ${v} }`);
  }
  if (segment === undefined) return lines;
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
  lines.push(`add element bridge ${t} segment-of { ${v} : ${segment === null ? 'drop' : `goto segment-${segment}`} }`);
  if (!had) lines.push(`add element bridge ${t} segmented { ${v} }`);
  model.set(veth, segment);
  return lines;
}
