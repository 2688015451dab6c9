// A copy of the keys under a prefix, kept by list + watch from the listing's revision (again from a new listing when
// the watch's history was compacted away or the store could not be read).
import type { Store, WatchEvent } from './store.js';

export interface MirrorOptions<T> {
  /** After a (re)listing replaced the whole copy. */
  onReset?: (entries: Map<string, T>) => void;
  /** After each change, with the copy already updated. */
  onChange?: (e: WatchEvent, entries: Map<string, T>) => void;
  /** How long to wait before listing again after a failed read. Default 1 s. */
  retryMs?: number;
}

export class Mirror<T> {
  /** key -> value, as of the last event seen. */
  readonly entries = new Map<string, T>();
  /** key -> the revision its value was written at (to compare on in a transaction). */
  private readonly modRevisions = new Map<string, number>();
  private stopped = false;
  private stopWatch = () => {};
  private retry?: NodeJS.Timeout;
  /** Resolves once the first listing is in. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private store: Store,
    readonly prefix: string,
    private o: MirrorOptions<T> = {},
  ) {
    this.ready = new Promise((r) => (this.markReady = r));
    void this.start();
  }

  get(key: string): T | undefined {
    return this.entries.get(key);
  }

  /** The value at `key` and the revision it was written at, as of the last event seen. */
  getWithRevision(key: string): { value: T; modRevision: number } | undefined {
    const modRevision = this.modRevisions.get(key);
    return modRevision === undefined ? undefined : { value: this.entries.get(key)!, modRevision };
  }

  private async start() {
    let listing;
    try {
      listing = await this.store.list<T>(this.prefix);
    } catch {
      if (!this.stopped) (this.retry = setTimeout(() => void this.start(), this.o.retryMs ?? 1000)).unref();
      return;
    }
    if (this.stopped) return;
    this.entries.clear();
    this.modRevisions.clear();
    for (const kv of listing) {
      this.entries.set(kv.key, kv.value);
      this.modRevisions.set(kv.key, kv.modRevision);
    }
    this.o.onReset?.(this.entries);
    this.markReady();
    this.stopWatch = this.store.watch(this.prefix, (e) => {
      if (this.stopped) return;
      if (e.type === 'put') {
        this.entries.set(e.key, e.value as T);
        this.modRevisions.set(e.key, e.modRevision);
      } else {
        this.entries.delete(e.key);
        this.modRevisions.delete(e.key);
      }
      this.o.onChange?.(e, this.entries);
    }, { afterRevision: listing.revision, onError: () => !this.stopped && void this.start() });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stopWatch();
  }
}
