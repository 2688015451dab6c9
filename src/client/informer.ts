// List-watch: a local cache of a list of ARM resources kept by one list and berth's change stream, with
// add/update/delete callbacks; container groups (ContainerGroupInformer) and NGroups use it.
//
// On every (re)connect: open the stream, list (every page), then read the resource each CHANGED line
// names (the line is a signal to read again, never the change itself). A stream that is silent for
// longer than the heartbeat deadline is dead: it is dropped, and the next connection lists again.
// Reconnects back off exponentially. Every `resyncMs` the list is read again anyway. An endpoint
// without the watch extension (ACI itself answers `?watch=true` with the plain list) is re-listed
// every `pollIntervalMs` instead. Reads and the cache's changes happen one at a time, in order, on a
// work queue (so the newest read always wins, and many lines about one resource cost one read).
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue, done } from '../lib/workqueue.js';
import type { ContainerGroups } from './container-groups.js';
import type { ContainerGroupResource } from './models.js';
import type { StreamResponse } from './transport.js';

export interface InformerHandlers<T = ContainerGroupResource> {
  onAdd?(item: T): void;
  onUpdate?(old: T, item: T): void;
  onDelete?(item: T): void;
  /** After each full list has been applied (the first one: the cache is synced). */
  onSync?(): void;
  /** A failed connection or read; the informer carries on. */
  onError?(error: Error): void;
}

/** A CHANGED line of berth's change stream: it names the resource that changed. */
export interface ChangedLine {
  subscriptionId?: string;
  resourceGroup?: string;
  name?: string;
}

/** What an informer lists and watches. */
export interface ListWatchSource<T> {
  list(o: { pageSize?: number }): Promise<T[]>;
  /** The resource a line names, read again; undefined when it is gone. */
  read(line: ChangedLine): Promise<T | undefined>;
  /** berth's change stream, or undefined when the endpoint has none. */
  watch(signal: AbortSignal): Promise<StreamResponse | undefined>;
  /** The cache key of a resource, and of the resource a line names (undefined: not one of this list's). */
  keyOf(item: T): string;
  keyOfLine(line: ChangedLine): string | undefined;
  /** A listed resource that equals the cached one (a list may show less of a resource than a read). */
  sameAsListed(cached: T, listed: T): boolean;
}

export interface InformerOptions<T = ContainerGroupResource> extends InformerHandlers<T> {
  /** Only this resource group's groups (default: the subscription's). */
  resourceGroup?: string;
  /** List again this often even while the stream is healthy. Default 5 min. */
  resyncMs?: number;
  /** A stream silent for this long is dead (berth sends a heartbeat every 15 s). Default 45 s. */
  heartbeatTimeoutMs?: number;
  /** Without the watch extension: list this often. Default 10 s. */
  pollIntervalMs?: number;
  /** Reconnect backoff: first delay, doubled per failure up to the max. Defaults 200 ms and 10 s. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Page size of the lists ($top); default: the endpoint's. */
  pageSize?: number;
}

/** Where the cache's knowledge comes from now. */
export type InformerMode = 'starting' | 'watch' | 'poll';

const RELIST = '\0list';
const keyOf = (resourceGroup: string, name: string) => `${resourceGroup.toLowerCase()}/${name.toLowerCase()}`;
const resourceGroupOf = (g: { id: string }) => g.id.split('/')[4];

/** List results carry no group instance view (as ACI's spec declares them): a listed group equal to the cached one but for it is unchanged. */
function sameButListShape(cached: ContainerGroupResource, listed: ContainerGroupResource) {
  if (listed.properties?.instanceView !== undefined) return JSON.stringify(cached) === JSON.stringify(listed);
  const { instanceView: _view, ...props } = cached.properties;
  return JSON.stringify({ ...cached, properties: props }) === JSON.stringify(listed);
}

export class Informer<T> {
  private readonly cache = new Map<string, T>();
  /** The latest line about each key, for the read it asks for. */
  private readonly lines = new Map<string, ChangedLine>();
  private readonly queue: WorkQueue;
  private stopped = false;
  private readonly stopping = new AbortController();
  private running?: Promise<void>;
  private connection?: AbortController;
  private resyncTimer?: NodeJS.Timeout;
  private syncedOnce!: () => void;
  private readonly syncedPromise = new Promise<void>((r) => (this.syncedOnce = r));
  /** Full lists applied so far, and connections made (tests and diagnostics). */
  readonly stats = { lists: 0, connects: 0 };
  mode: InformerMode = 'starting';

  constructor(private readonly source: ListWatchSource<T>, protected readonly o: InformerOptions<T> = {}) {
    this.queue = new WorkQueue((key) => (key === RELIST ? this.relist() : this.refresh(key)), {
      onError: (_key, e) => this.o.onError?.(e as Error),
      maxBackoffMs: o.maxBackoffMs ?? 10_000,
    });
  }

  start(): this {
    if (this.running) return this;
    this.running = this.run();
    this.resyncTimer = setInterval(() => this.queue.add(RELIST), this.o.resyncMs ?? 300_000).unref();
    return this;
  }

  /** Resolves once the first full list is in the cache. */
  synced(): Promise<void> {
    return this.syncedPromise;
  }

  /** The cached resource of a key (as the source's keyOf makes them). */
  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  async stop() {
    this.stopped = true;
    this.stopping.abort();
    clearInterval(this.resyncTimer);
    this.connection?.abort();
    await this.running;
    await this.queue.shutdown();
  }

  private async run() {
    let backoff = this.o.minBackoffMs ?? 200;
    while (!this.stopped) {
      const connection = (this.connection = new AbortController());
      let heard = false;
      try {
        if (this.mode === 'poll') {
          this.queue.add(RELIST);
          await sleep(this.o.pollIntervalMs ?? 10_000, undefined, { signal: connection.signal });
          continue;
        }
        const stream = await this.source.watch(connection.signal);
        this.stats.connects++;
        this.queue.add(RELIST);
        if (!stream) {
          // an endpoint without the extension stays one: list on a timer from now on
          this.mode = 'poll';
          continue;
        }
        this.mode = 'watch';
        await this.follow(stream.body, connection, () => {
          heard = true;
          backoff = this.o.minBackoffMs ?? 200;
        });
        if (!this.stopped) throw new Error('the watch stream ended');
      } catch (e) {
        if (this.stopped) break;
        this.o.onError?.(e as Error);
        // a connection that carried lines was fine: start the backoff over
        if (heard) backoff = this.o.minBackoffMs ?? 200;
        await sleep(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, this.o.maxBackoffMs ?? 10_000);
      } finally {
        connection.abort();
      }
    }
  }

  /** Reads the stream's lines until it ends, fails, or stays silent past the heartbeat deadline. */
  private async follow(body: AsyncIterable<Buffer>, connection: AbortController, onLine: () => void) {
    const deadlineMs = this.o.heartbeatTimeoutMs ?? 45_000;
    let silent: Error | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = new Error(`no heartbeat on the watch stream for ${deadlineMs} ms`);
        connection.abort();
      }, deadlineMs);
    };
    arm();
    let buf = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line) continue;
          arm();
          onLine();
          const event = JSON.parse(line) as ChangedLine & { type?: string };
          const key = event.type === 'CHANGED' ? this.source.keyOfLine(event) : undefined;
          if (key === undefined) continue;
          this.lines.set(key, event);
          this.queue.add(key);
        }
      }
    } catch (e) {
      throw silent ?? e;
    } finally {
      clearTimeout(timer);
    }
    if (silent) throw silent;
  }

  /** Reads every resource of the scope and makes the cache say the same, telling what changed. */
  private async relist() {
    const listed = await this.source.list({ pageSize: this.o.pageSize });
    const seen = new Set<string>();
    for (const g of listed) {
      const key = this.source.keyOf(g);
      seen.add(key);
      const cached = this.cache.get(key);
      if (cached && this.source.sameAsListed(cached, g)) continue;
      this.put(key, g);
    }
    for (const [key, g] of this.cache) if (!seen.has(key)) this.remove(key, g);
    this.stats.lists++;
    this.tell(() => this.o.onSync?.());
    this.syncedOnce();
    return done;
  }

  /** Reads one resource again (a CHANGED line named it). */
  private async refresh(cacheKey: string) {
    const line = this.lines.get(cacheKey);
    if (!line) return done;
    const g = await this.source.read(line);
    if (g) {
      const cached = this.cache.get(cacheKey);
      if (!cached || JSON.stringify(cached) !== JSON.stringify(g)) this.put(cacheKey, g);
    } else {
      this.lines.delete(cacheKey);
      const cached = this.cache.get(cacheKey);
      if (cached) this.remove(cacheKey, cached);
    }
    return done;
  }

  private put(key: string, g: T) {
    const old = this.cache.get(key);
    this.cache.set(key, g);
    this.tell(() => (old ? this.o.onUpdate?.(old, g) : this.o.onAdd?.(g)));
  }

  private remove(key: string, g: T) {
    this.cache.delete(key);
    this.tell(() => this.o.onDelete?.(g));
  }

  /** A handler that throws is the caller's problem, never the cache's: the informer goes on. */
  private tell(fn: () => void) {
    try {
      fn();
    } catch (e) {
      this.o.onError?.(e as Error);
    }
  }
}

/** The container groups of a subscription (or of one of its resource groups), cached and followed. */
export class ContainerGroupInformer extends Informer<ContainerGroupResource> {
  constructor(groups: ContainerGroups, o: InformerOptions = {}) {
    super({
      list: ({ pageSize }) => (o.resourceGroup === undefined ? groups.list({ top: pageSize }) : groups.listByResourceGroup(o.resourceGroup, { top: pageSize })).toArray(),
      read: (line) => groups.find(line.resourceGroup!, line.name!),
      watch: (signal) => groups.watch(o.resourceGroup, { signal }),
      keyOf: (g) => keyOf(resourceGroupOf(g), g.name),
      keyOfLine: (line) => (line.resourceGroup && line.name ? keyOf(line.resourceGroup, line.name) : undefined),
      sameAsListed: sameButListShape,
    }, o);
  }

  get(resourceGroup: string, name: string): ContainerGroupResource | undefined {
    return this.getByKey(keyOf(resourceGroup, name));
  }
}
