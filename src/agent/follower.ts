// The agent's side of its link to the control plane: registers the host, follows the specs placed on it into the agent, and reports statuses and removals back until they land.
import { BerthError, Codes } from '../lib/errors.js';
import { traceValue } from '../lib/trace.js';
import type { Agent } from './agent.js';
import { MAX_HELD_PORTS, type ControlPlaneLink, type HostRegistration, type HostResume, type LeaseTerms, type SpecEvent } from './link.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupStatus } from './types.js';

export interface SpecFollowerOptions {
  /** Told of what goes wrong on the link (the agent keeps running what it has meanwhile). */
  log?: (message: string) => void;
  /** Statuses are gathered this long before they are sent together. Default 50 ms. */
  statusBatchMs?: number;
  /** First retry delay of a report or registration that failed; doubles up to maxRetryMs. Defaults 200 ms and 5 s. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Told of every answer of the control plane to a registration or heartbeat (the overlay's peers' version rides on it). */
  onTerms?: (terms: LeaseTerms) => void;
  /** How often the host's held ports are read, to report them when they changed (a link that takes them). Default 1 s. */
  heldPortsEveryMs?: number;
}

/** Heartbeats unanswered at once (a partition): more wait for one of them to give up. */
const MAX_BEATS_IN_FLIGHT = 8;

export class SpecFollower {
  /** The newest generation seen per group: an older one is never run (fencing). */
  private seen = new Map<string, number>();
  private adopted = false;
  /** Spec events are handled one after another (the first reset's adoption takes a while). */
  private handling: Promise<void> = Promise.resolve();
  private pendingStatuses = new Map<string, GroupStatus>();
  private statusTimer?: NodeJS.Timeout;
  private statusFlush?: Promise<void>;
  private pendingRemovals = new Set<string>();
  private removalTimer?: NodeJS.Timeout;
  private sendingRemovals = false;
  private heartbeatTimer?: NodeJS.Timeout;
  private heldPortsTimer?: NodeJS.Timeout;
  /** The held ports as last reported ("TCP/22,UDP/53"); undefined: to be reported. */
  private heldPortsReported?: string;
  private heldPortsError?: string;
  private stopWatch = () => {};
  private closed = false;
  private readonly log: (m: string) => void;
  /** Resolves once the first set of specs has been adopted (what a crash left on the host is cleaned up). */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly link: ControlPlaneLink,
    private readonly agent: Agent,
    private readonly registration: () => HostRegistration,
    private readonly o: SpecFollowerOptions = {},
  ) {
    this.log = o.log ?? ((m) => console.error(`berth agent: ${m}`));
    this.ready = new Promise((r) => (this.markReady = r));
    agent.onStatus((s) => {
      this.pendingStatuses.set(s.uid, s);
      this.statusTimer ??= setTimeout(() => void this.flushStatuses(), o.statusBatchMs ?? 50);
    });
    agent.onRemoved((uid) => {
      this.pendingRemovals.add(uid);
      void this.sendRemovals();
    });
  }

  /** Registers the host and keeps its lease, then follows its specs; resolves once they are adopted (see `ready`). */
  async start(): Promise<void> {
    // before the host turns Ready: no group is placed on a port it keeps
    await this.reportHeldPorts();
    this.keepLease(await this.retrying('registering the host', () => this.register()));
    this.watchHeldPorts();
    this.stopWatch = this.link.watchSpecs(0, (e) => {
      this.handling = this.handling.then(() => this.onSpecEvent(e)).catch((err) => this.log(`applying specs: ${(err as Error).message}`));
    }, (e) => this.log(`following the specs: ${e.message}`));
    await this.ready;
  }

  /**
   * Beats on a steady cadence, whether or not the last beat has answered: a beat lost in a partition (the link
   * gives up on it well within the lease) holds up none after it, so the first one after the heal lands within a
   * beat. Registers again only when the control plane has lost the registration.
   */
  private keepLease(terms: LeaseTerms) {
    let inFlight = 0;
    const beat = () => {
      if (this.closed) return;
      this.heartbeatTimer = setTimeout(beat, terms.heartbeatMs ?? terms.leaseTtlMs / 3).unref();
      if (inFlight >= MAX_BEATS_IN_FLIGHT) return;
      inFlight++;
      void this.link.heartbeat().then((answer) => answer && this.o.onTerms?.(answer), async (e: BerthError) => {
        this.log(`heartbeat failed: ${e.message}`);
        if (e.code === Codes.ResourceNotFound) {
          // a control plane that lost the registration lost the rest with it
          this.heldPortsReported = undefined;
          terms = await this.register().catch(() => terms);
        }
      }).finally(() => inFlight--);
    };
    this.heartbeatTimer = setTimeout(beat, terms.heartbeatMs ?? terms.leaseTtlMs / 3).unref();
  }

  /** Reports the host's held ports if they changed since they were last reported; a failure is told once and tried again. */
  private async reportHeldPorts(): Promise<void> {
    if (!this.link.reportHeldPorts) return;
    try {
      let ports = await this.agent.heldPorts();
      if (ports.length > MAX_HELD_PORTS) ports = ports.slice(0, MAX_HELD_PORTS);
      const key = ports.map((p) => `${p.protocol}/${p.port}`).join(',');
      if (key === this.heldPortsReported) return;
      await this.link.reportHeldPorts(ports);
      this.heldPortsReported = key;
      this.heldPortsError = undefined;
    } catch (e) {
      const message = (e as Error).message;
      if (message !== this.heldPortsError) this.log(`reporting the host's held ports failed (trying again): ${message}`);
      this.heldPortsError = message;
    }
  }

  private watchHeldPorts() {
    if (!this.link.reportHeldPorts) return;
    const every = this.o.heldPortsEveryMs ?? 1000;
    const next = () => {
      if (!this.closed) this.heldPortsTimer = setTimeout(() => void this.reportHeldPorts().finally(next), every).unref();
    };
    next();
  }

  private async register(): Promise<LeaseTerms> {
    const terms = await this.link.register(this.registration());
    this.o.onTerms?.(terms);
    return terms;
  }

  private async onSpecEvent(e: SpecEvent) {
    if (e.type === 'put') {
      const p = e.placed as PlacedHostSpec;
      traceValue(p.uid, 'follow.put', 0);
      if (this.fresh(p)) this.agent.apply(p);
      return;
    }
    if (e.type === 'delete') {
      this.seen.delete(e.uid);
      this.agent.remove(e.uid);
      return;
    }
    const specs = (e.specs as PlacedHostSpec[]).filter((p) => this.fresh(p));
    const placed = new Set(e.specs.map((p) => p.uid));
    if (!this.adopted) {
      // the first set: what runs and is placed is adopted, whatever else is on the host goes. What the control
      // plane holds is read after the set was listed: a group taken off before then is among `removing` (after
      // then, a delete event follows).
      const resume: HostResume = await this.retrying('reading what the control plane holds for this host', () => this.link.resume());
      this.adopted = true;
      await this.agent.adopt(specs, new Map(resume.statuses.map((s) => [s.uid, s])));
      // taken off while the agent was away: it reports them gone (nothing of them is left after adopt)
      for (const uid of resume.removing) if (!placed.has(uid)) this.agent.remove(uid);
      this.markReady();
      return;
    }
    // a set again (the link could not resume): what is no longer placed goes
    for (const uid of this.agent.generations().keys()) if (!placed.has(uid)) {
      this.seen.delete(uid);
      this.agent.remove(uid);
    }
    for (const p of specs) this.agent.apply(p);
  }

  /** Fencing: a spec older than one already seen for its group is never run. */
  private fresh(p: PlacedHostSpec): boolean {
    const known = this.seen.get(p.uid);
    if (known !== undefined && p.generation < known) return false;
    this.seen.set(p.uid, p.generation);
    return true;
  }

  private flushStatuses(): Promise<void> {
    this.statusTimer = undefined;
    const run = (this.statusFlush ?? Promise.resolve()).then(async () => {
      const batch = [...this.pendingStatuses.values()];
      this.pendingStatuses.clear();
      if (batch.length === 0) return;
      try {
        await this.link.reportStatuses(batch);
        // a group this host refused for a port its own sockets hold: the control plane hears the ports again
        // (changed or not) after the refusal, and moves the group to a host that has the port free
        if (batch.some((s) => s.error?.code === Codes.PortAlreadyInUse)) {
          this.heldPortsReported = undefined;
          void this.reportHeldPorts();
        }
      } catch (e) {
        this.log(`reporting ${batch.length} statuses failed (retrying): ${(e as Error).message}`);
        // newer ones that came meanwhile win
        for (const s of batch) if (!this.pendingStatuses.has(s.uid)) this.pendingStatuses.set(s.uid, s);
        if (!this.closed) this.statusTimer ??= setTimeout(() => void this.flushStatuses(), this.o.retryMs ?? 200);
      }
    });
    this.statusFlush = run;
    return run;
  }

  private async sendRemovals() {
    if (this.sendingRemovals || this.removalTimer) return;
    this.sendingRemovals = true;
    try {
      for (const uid of [...this.pendingRemovals]) {
        try {
          await this.link.reportRemoved(uid);
          this.pendingRemovals.delete(uid);
        } catch (e) {
          this.log(`reporting ${uid} removed failed (retrying): ${(e as Error).message}`);
          if (!this.closed) this.removalTimer = setTimeout(() => {
            this.removalTimer = undefined;
            void this.sendRemovals();
          }, this.o.retryMs ?? 200);
          return;
        }
      }
    } finally {
      this.sendingRemovals = false;
    }
    // removals that came while these were sent
    if (this.pendingRemovals.size > 0) void this.sendRemovals();
  }

  private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let delay = this.o.retryMs ?? 200; ; delay = Math.min(delay * 2, this.o.maxRetryMs ?? 5000)) {
      try {
        return await fn();
      } catch (e) {
        // refusals that retrying cannot change: a wrong credential, a bad registration
        if (this.closed || (e instanceof BerthError && e.status >= 400 && e.status < 500 && e.status !== 429)) throw e;
        this.log(`${what} failed (retrying in ${delay} ms): ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stops following; what was reported by now is sent. The agent keeps running (close it apart). */
  async close() {
    this.closed = true;
    this.stopWatch();
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.heldPortsTimer);
    clearTimeout(this.removalTimer);
    clearTimeout(this.statusTimer);
    await this.flushStatuses();
  }
}

/** An agent following its link: `close` stops following and the agent; containers keep running. */
export interface FollowingAgent {
  agent: Agent;
  close(): Promise<void>;
}

/** Has `agent` follow `link`; resolves once it has adopted what is placed on its host (and removed the rest). */
export async function startFollowing(link: ControlPlaneLink, registration: () => HostRegistration, agent: Agent, followerOptions: SpecFollowerOptions = {}): Promise<FollowingAgent> {
  const follower = new SpecFollower(link, agent, registration, followerOptions);
  await follower.start();
  return {
    agent,
    async close() {
      // the agent first: what its reconciles in flight report is sent by the follower's last flush
      await agent.close();
      await follower.close();
    },
  };
}
