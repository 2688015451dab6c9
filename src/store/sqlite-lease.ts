// A lease held through a SQLite store: renewed every third of its TTL until revoked or the store closes.
import { BerthError, Codes } from '../lib/errors.js';
import type { Lease } from './store.js';

export interface LeaseBackend {
  /** Pushes the expiry one TTL ahead; false when the lease is gone. */
  renew(): boolean;
  revoke(): void;
  /** The store stops tracking this lease. */
  forget(): void;
}

export class SqliteLease implements Lease {
  private controller = new AbortController();
  private timer?: NodeJS.Timeout;

  constructor(
    readonly id: string,
    readonly ttlSeconds: number,
    private backend: LeaseBackend,
  ) {
    this.timer = setInterval(() => {
      if (!this.backend.renew()) this.lost('expired');
    }, (ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async revoke(): Promise<void> {
    this.backend.revoke();
    this.lost('revoked');
  }

  /** The lease ended (revoked here or elsewhere, or expired): stop renewing and tell the holder. */
  lost(why: 'revoked' | 'expired') {
    this.stop();
    this.backend.forget();
    if (!this.controller.signal.aborted)
      this.controller.abort(new BerthError(Codes.LeaseNotFound, `Lease ${this.id} was ${why}.`, 404));
  }

  /** Stops renewing (the store is closing): the lease runs out after its TTL, as after a crash. */
  stop() {
    clearInterval(this.timer);
  }
}
