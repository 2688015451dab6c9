// One etcd watch: its own gRPC stream, resumed after a lost connection from the revision after the last one delivered.
import type { BerthError } from '../lib/errors.js';
import { grpc, waitingMetadata, type WatchResponse } from './etcd-rpc.js';
import { compactedError, type WatchEvent } from './store.js';

/** An event whose key still carries the store's prefix. */
export type RawWatchEvent = Omit<WatchEvent, 'key'> & { key: Buffer };

export interface WatchTarget {
  key: Buffer;
  rangeEnd: Buffer;
  afterRevision?: number;
}

export class EtcdWatch {
  /**
   * The first revision not yet delivered: where a new stream starts. Only delivered events and
   * progress notifications move it, never a response header alone: while etcd replays a backlog it
   * stamps each batch with its current revision, and resuming from that would skip the rest.
   */
  private next: number | undefined;
  private stream?: grpc.ClientDuplexStream<object, WatchResponse>;
  private retry?: NodeJS.Timeout;
  private pause = 100;
  private cancelled = false;

  constructor(
    private client: grpc.Client,
    private target: WatchTarget,
    private on: { event: (e: RawWatchEvent) => void; error: (err: BerthError) => void },
  ) {
    this.next = target.afterRevision === undefined ? undefined : target.afterRevision + 1;
    this.open();
  }

  cancel() {
    this.cancelled = true;
    clearTimeout(this.retry);
    this.stream?.cancel();
    this.stream = undefined;
  }

  private open() {
    // hasleader: a member cut off from the cluster's leader ends the watch instead of going quiet, and we move on.
    const stream = (this.client as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<object, WatchResponse> }).Watch(
      waitingMetadata({ hasleader: 'true' }),
    );
    this.stream = stream;
    stream.on('data', (res: WatchResponse) => {
      if (this.stream === stream) this.onResponse(res);
    });
    // 'error' for a failed call (etcd gone, connection cut); 'end' when etcd closes the stream
    stream.on('error', () => this.lost(stream));
    stream.on('end', () => this.lost(stream));
    stream.write({
      create_request: { key: this.target.key, range_end: this.target.rangeEnd, start_revision: this.next ?? 0, progress_notify: true },
    });
  }

  private onResponse(res: WatchResponse) {
    if (res.canceled) {
      const compacted = Number(res.compact_revision);
      if (compacted > 0) {
        this.cancel();
        this.on.error(compactedError((this.next ?? compacted) - 1, compacted));
      } else this.lost(this.stream!); // e.g. the member lost its leader: start again elsewhere
      return;
    }
    if (res.created) {
      this.pause = 100;
      // No start revision asked for: the watch starts after the revision it was created at.
      this.next ??= Number(res.header.revision) + 1;
      return;
    }
    if (res.events.length === 0) {
      // A progress notification: everything up to the header's revision has been sent.
      const progressed = Number(res.header.revision) + 1;
      if (this.next !== undefined && progressed > this.next) this.next = progressed;
      return;
    }
    // One response holds every event of a revision (no fragmenting was asked for).
    let last = 0;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (this.next !== undefined && rev < this.next) continue;
      if (this.cancelled) return;
      last = rev;
      const event: RawWatchEvent =
        ev.type === 'PUT'
          ? { type: 'put', key: ev.kv.key, value: JSON.parse(ev.kv.value.toString()), modRevision: rev, createRevision: Number(ev.kv.create_revision) }
          : { type: 'delete', key: ev.kv.key, modRevision: rev };
      try {
        this.on.event(event);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    if (last) this.next = last + 1;
  }

  /** The stream broke: open a new one from where delivery stopped, after a pause that grows up to 2 s. */
  private lost(stream: grpc.ClientDuplexStream<object, WatchResponse>) {
    if (this.stream !== stream || this.cancelled) return;
    this.stream = undefined;
    stream.cancel();
    this.retry = setTimeout(() => this.open(), this.pause);
    this.pause = Math.min(this.pause * 2, 2000);
  }
}
