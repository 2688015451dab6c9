// The agent's share of the cluster overlay: the peers the control plane lists, programmed into this host's VXLAN device whenever their version changes, and again every 30 s (what someone removed from the kernel comes back).
import type { OverlayPeers } from './link.js';
import type { OverlayPeer, PeersApplied } from '../runtime/network/overlay.js';

export interface OverlayPeeringOptions {
  /** Where the overlay's hosts come from (the control plane's agent API). */
  peers: () => Promise<OverlayPeers>;
  /** Programs them (Overlay.setPeers: converging, idempotent). */
  apply: (peers: OverlayPeer[]) => Promise<PeersApplied>;
  /** How often the peers are programmed again whether or not they changed. Default 30 s. */
  repairMs?: number;
  /** A failed sync is tried again on the next version heard, but not sooner than this. Default 1 s. */
  retryMs?: number;
  log: (message: string) => void;
}

export class OverlayPeering {
  /** The version the kernel holds (undefined: none yet, or the last sync failed). */
  private applied?: string;
  private syncing?: Promise<void>;
  private again = false;
  private failedAt = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: OverlayPeeringOptions) {}

  /** Programs the peers now, then every `repairMs`. */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.sync(), this.o.repairMs ?? 30_000).unref();
    return this.sync();
  }

  /** The control plane's current version of the peers (each heartbeat's answer carries it): a new one is fetched. */
  heard(version: string | undefined): void {
    if (version === undefined || version === this.applied) return;
    if (Date.now() - this.failedAt < (this.o.retryMs ?? 1000)) return;
    void this.sync();
  }

  /** Fetches the peers and programs them; one sync at a time (a call meanwhile runs another after it). */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        const { version, peers } = await this.o.peers();
        const done = await this.o.apply(peers);
        this.applied = version;
        if (done.changes > 0) this.o.log(`overlay: ${done.peers} peers programmed (${done.changes} changes, version ${version})`);
      } catch (e) {
        this.applied = undefined;
        this.failedAt = Date.now();
        this.o.log(`overlay: programming the peers failed (again on the next heartbeat): ${(e as Error).message}`);
      } finally {
        this.syncing = undefined;
        if (this.again) {
          this.again = false;
          void this.sync();
        }
      }
    })();
    return this.syncing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.again = false;
    await this.syncing;
  }
}
