// A lease held through etcd: renewed every third of its TTL over a keep-alive stream; lost when not renewed within its TTL.
import { BerthError, Codes } from '../lib/errors.js';
import { grpc, waitingMetadata, type LeaseKeepAliveResponse } from './etcd-rpc.js';
import type { Lease } from './store.js';

export class EtcdLease implements Lease {
  private controller = new AbortController();
  private stream?: grpc.ClientDuplexStream<object, LeaseKeepAliveResponse>;
  private ticker: NodeJS.Timeout;
  private deadline?: NodeJS.Timeout;
  /** When the last request etcd answered was sent: the lease lives at least a TTL from then. */
  private sentAt = 0;

  constructor(
    readonly id: string,
    readonly ttlSeconds: number,
    private client: grpc.Client,
    private backend: { revoke(): Promise<void>; forget(): void },
  ) {
    this.renewed(Date.now());
    this.ticker = setInterval(() => this.keepAlive(), (ttlSeconds * 1000) / 3);
    this.ticker.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async revoke(): Promise<void> {
    this.stop('revoked');
    try {
      await this.backend.revoke();
    } catch (e) {
      if ((e as BerthError).code !== Codes.LeaseNotFound) throw e;
    }
  }

  /** Stops renewing and tells the holder, without revoking: the lease runs out after its TTL. */
  stop(why: string) {
    clearInterval(this.ticker);
    clearTimeout(this.deadline);
    this.stream?.cancel();
    this.stream = undefined;
    this.backend.forget();
    if (!this.controller.signal.aborted) this.controller.abort(new BerthError(Codes.LeaseNotFound, `Lease ${this.id} is gone: ${why}.`, 404));
  }

  private keepAlive() {
    if (!this.stream) {
      const stream = (this.client as unknown as { LeaseKeepAlive(md: grpc.Metadata): grpc.ClientDuplexStream<object, LeaseKeepAliveResponse> }).LeaseKeepAlive(
        waitingMetadata({ hasleader: 'true' }),
      );
      stream.on('data', (res: LeaseKeepAliveResponse) => {
        if (Number(res.TTL) <= 0) this.stop('it expired');
        else this.renewed(this.sentAt);
      });
      // a broken stream is replaced at the next tick; the deadline decides when it is too late
      stream.on('error', () => this.stream === stream && (this.stream = undefined));
      stream.on('end', () => this.stream === stream && (this.stream = undefined));
      this.stream = stream;
    }
    this.sentAt = Date.now();
    this.stream.write({ ID: this.id });
  }

  private renewed(at: number) {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.stop(`not renewed within its TTL of ${this.ttlSeconds} s`), at + this.ttlSeconds * 1000 - Date.now());
    this.deadline.unref();
  }
}
