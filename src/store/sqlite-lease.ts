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
      if (!this.backend.renew()) this.stop('it expired');
    }, (ttlSeconds * 1000) / 3);
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async revoke(): Promise<void> {
    this.backend.revoke();
    this.stop('revoked');
  }

  /**
   * Stops renewing and tells the holder: the lease ended (revoked, expired), or its store is closing,
   * in which case it runs out after its TTL, as after a crash.
   */
  stop(why: string) {
    clearInterval(this.timer);
    this.backend.forget();
    if (!this.controller.signal.aborted) this.controller.abort(new BerthError(Codes.LeaseNotFound, `Lease ${this.id} is gone: ${why}.`, 404));
  }
}
