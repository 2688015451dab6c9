// The warm pool of a NetworkManager: sandboxes (netns, veth, IP) made before any request needs them, handed over to a group by a rename of their state.
import { randomBytes } from 'node:crypto';
import { Refiller } from '../../lib/refiller.js';
import { span } from '../../lib/trace.js';
import type { CniResult } from './cni.js';
import type { SandboxState, SandboxStates } from './state.js';

/** What the pool needs of its manager: each call is made under the sandbox's own lock, taken through `locked`. */
export interface PoolSandboxes {
  locked<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Makes a sandbox in no segment. */
  create(poolId: string): Promise<SandboxState>;
  teardown(poolId: string): Promise<void>;
  /** Whether the state names a sandbox that can still be handed out (its netns and address are there). */
  usable(st: SandboxState): boolean;
  /** A sandbox is being made (+1) or no longer (-1): the network's shared rules stay meanwhile. */
  busy(delta: 1 | -1): void;
}

export class SandboxPool {
  /** Warm sandboxes ready to be claimed (ids of files in the pool dir). */
  private readonly ready: string[] = [];
  /** Pool sandboxes being made right now. */
  private warming = 0;
  /**
   * CNI results of the warm sandboxes, kept here rather than written to their state files: a pool sandbox left by
   * an earlier process is torn down at start (DEL needs no result), and its claim writes the result into the
   * group's state in one new file.
   */
  readonly results = new Map<string, CniResult>();
  /** Refills after a claim, a moment later: its container start should not compete with the next sandbox's CNI chain. */
  private readonly refiller = new Refiller(() => this.fill());

  constructor(
    private readonly states: SandboxStates,
    private readonly size: number,
    private readonly sandboxes: PoolSandboxes,
  ) {}

  /**
   * Hands a warm sandbox over: `as` makes the group's state of the pool's, which is written, then the pool's file
   * is removed, so after a crash the sandbox belongs to the group or to the pool, never to neither (with both files
   * left, cleanUp() sees it claimed and only removes the pool's file).
   */
  async claim(as: (st: SandboxState) => SandboxState): Promise<SandboxState | undefined> {
    for (let poolId = this.ready.shift(); poolId; poolId = this.ready.shift()) {
      // under the pool sandbox's own lock: stop() tears it down either before (then it is skipped here) or after
      // the claim (then its pool state is gone and it is left alone)
      const claimed = await this.sandboxes.locked(poolId, async () => {
        const st = await this.states.read(poolId);
        if (!st) return undefined;
        st.result ??= this.results.get(poolId);
        if (!st.result || !this.sandboxes.usable(st)) {
          await this.sandboxes.teardown(poolId).catch(() => undefined);
          return undefined;
        }
        const claimed = as(st);
        await this.states.write(claimed);
        await this.states.remove(poolId);
        this.results.delete(poolId);
        return claimed;
      });
      if (!claimed) continue;
      this.scheduleRefill();
      return claimed;
    }
    this.scheduleRefill();
    return undefined;
  }

  /** Tears down the pool sandboxes a previous process left (they may be half-made); `claimedNetns`: the groups' namespaces. */
  async cleanUp(claimedNetns: Set<string>): Promise<void> {
    for (const poolId of await this.states.poolIds()) {
      const st = await this.states.read(poolId);
      // a crash between claim's rename and its cleanup cannot leave both, but be sure never to take a claimed netns
      if (st && claimedNetns.has(st.netnsName)) await this.states.remove(poolId);
      else await this.sandboxes.locked(poolId, () => this.sandboxes.teardown(poolId)).catch((e) => console.error(`network: pool cleanup ${poolId}: ${(e as Error).message}`));
    }
  }

  /** Starts filling, in the background: a start must not wait for it, and claims fall back to creating. */
  start(): void {
    if (this.size > 0) this.refiller.start();
  }

  /** Stops refilling and tears down the sandboxes still in the pool. */
  async stop(): Promise<void> {
    await this.refiller.stop();
    this.ready.splice(0);
    // every pool sandbox on disk, not only those listed as ready: none may outlive the server
    for (const poolId of await this.states.poolIds()) {
      await this.sandboxes.locked(poolId, async () => {
        // claimed meanwhile (renamed away): it belongs to its group now
        if (await this.states.read(poolId)) await this.sandboxes.teardown(poolId);
      }).catch((e) => console.error(`network: pool teardown ${poolId}: ${(e as Error).message}`));
    }
  }

  /** Warm sandboxes waiting to be claimed. */
  get readyCount(): number {
    return this.ready.length;
  }

  /** No pool sandbox is ready or on disk. */
  async empty(): Promise<boolean> {
    return this.ready.length === 0 && (await this.states.poolIds()).length === 0;
  }

  /** Resolves once the pool is full (or stopped). */
  refill(): Promise<void> {
    return this.refiller.now();
  }

  private scheduleRefill(): void {
    if (this.size > 0) this.refiller.soon();
  }

  /** Two sandboxes are made at a time (each is a few short process runs: a 2-core host keeps both busy). */
  private async fill(): Promise<void> {
    let failed = false;
    const worker = async () => {
      while (!failed && !this.refiller.stopped && this.ready.length + this.warming < this.size) {
        const poolId = `pool-${randomBytes(6).toString('hex')}`;
        this.sandboxes.busy(1);
        this.warming++;
        try {
          await span(poolId, 'net.poolCreate', () => this.sandboxes.locked(poolId, () => this.sandboxes.create(poolId)));
          if (this.refiller.stopped) await this.sandboxes.locked(poolId, () => this.sandboxes.teardown(poolId));
          else this.ready.push(poolId);
        } catch (e) {
          console.error(`network: warming a sandbox: ${(e as Error).message}`);
          failed = true; // retried on the next claim
        } finally {
          this.sandboxes.busy(-1);
          this.warming--;
        }
      }
    };
    await Promise.all([worker(), worker()]);
  }
}
