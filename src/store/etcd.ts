// etcd-backed Store: for clusters of berth servers; talks etcd's v3 gRPC API directly.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { BerthError, Codes } from '../lib/errors.js';
import { EtcdLease } from './etcd-lease.js';
import { call, connectClients, grpc, type EtcdClients, type KeyValueMessage, type ResponseHeader } from './etcd-rpc.js';
import { EtcdWatch } from './etcd-watch.js';
import { checkTtl, type Compare, type KeyValue, type Lease, type Listing, type Op, type ReadOptions, type Store, type TxnRequest, type TxnResult, type WatchEvent, type WatchOptions } from './store.js';

export interface EtcdStoreOptions {
  /** `host:port` of each cluster member (plain gRPC; names are resolved once, at connect). */
  endpoints: string[];
  /** Prepended to every key, so several berths (or tests) can share one etcd. Default none. */
  prefix?: string;
  /** How long a request may wait for etcd, including waiting for a connection. Default 5000 ms. */
  requestTimeoutMs?: number;
}

/** Keys per request when a listing has no limit: keeps each gRPC message small; pages read at one revision. */
const LIST_PAGE = 1000;

/** The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEndBytes(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

/** A gRPC target for these endpoints: a fixed list of addresses, so gRPC fails over between members by itself. */
async function targetFor(endpoints: string[]): Promise<string> {
  const addresses: { family: number; address: string; port: string }[] = [];
  for (const ep of endpoints) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(ep);
    if (!m) throw new BerthError(Codes.InvalidRequestContent, `'${ep}' is not host:port.`, 400);
    const [, host, port] = m;
    const found = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true });
    for (const a of found) addresses.push({ family: a.family, address: a.address, port });
  }
  // gRPC's address lists hold one family: prefer IPv4 when names resolve to both
  const family = addresses.some((a) => a.family === 4) ? 4 : 6;
  const chosen = addresses.filter((a) => a.family === family);
  return family === 4 ? `ipv4:${chosen.map((a) => `${a.address}:${a.port}`).join(',')}` : `ipv6:${chosen.map((a) => `[${a.address}]:${a.port}`).join(',')}`;
}

export class EtcdStore implements Store {
  private prefix: Buffer;
  private watches = new Set<EtcdWatch>();
  private leases = new Set<EtcdLease>();
  private closed = false;

  private constructor(
    private clients: EtcdClients,
    private opts: Required<EtcdStoreOptions>,
  ) {
    this.prefix = Buffer.from(opts.prefix);
  }

  /** Connects and checks that etcd answers (within the request timeout). */
  static async connect(opts: EtcdStoreOptions): Promise<EtcdStore> {
    if (opts.endpoints.length === 0) throw new BerthError(Codes.InvalidRequestContent, 'etcd needs at least one endpoint.', 400);
    const store = new EtcdStore(connectClients(await targetFor(opts.endpoints)), { prefix: '', requestTimeoutMs: 5000, ...opts });
    try {
      await store.revision();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  async get<T>(key: string, opts: ReadOptions = {}): Promise<KeyValue<T> | undefined> {
    const res = await this.read<{ kvs: KeyValueMessage[] }>('Range', { key: this.bytes(key), ...(opts.serializable && { serializable: true }) });
    return res.kvs.length ? this.toKv<T>(res.kvs[0]) : undefined;
  }

  async list<T>(prefix: string, opts: { startAfter?: string; limit?: number } = {}): Promise<Listing<T>> {
    // etcd reads a limit of 0 as none
    if (opts.limit === 0) return Object.assign([], { revision: await this.revision() });
    const start = this.bytes(prefix);
    const end = prefixEndBytes(start);
    let from = start;
    if (opts.startAfter !== undefined) {
      const after = Buffer.concat([this.bytes(opts.startAfter), Buffer.from([0])]);
      if (Buffer.compare(after, from) > 0) from = after;
    }
    const out: KeyValue<T>[] = [];
    let revision = 0;
    for (;;) {
      const want = opts.limit === undefined ? LIST_PAGE : Math.min(LIST_PAGE, opts.limit - out.length);
      const res = await this.read<{ header: ResponseHeader; kvs: KeyValueMessage[]; more: boolean }>('Range', {
        key: from, range_end: end, limit: want, revision,
      });
      if (revision === 0) revision = Number(res.header.revision);
      for (const kv of res.kvs) out.push(this.toKv<T>(kv));
      if (!res.more || res.kvs.length === 0 || out.length === opts.limit) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
    return Object.assign(out, { revision });
  }

  async put(key: string, value: unknown, opts: { lease?: string } = {}): Promise<number> {
    const res = await this.write<{ header: ResponseHeader }>('Put', this.putRequest({ put: key, value, lease: opts.lease }));
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<boolean> {
    const res = await this.write<{ deleted: string }>('DeleteRange', { key: this.bytes(key) });
    return Number(res.deleted) > 0;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    const res = await this.write<{ header: ResponseHeader; succeeded: boolean }>('Txn', {
      compare: (req.if ?? []).map((c) => this.compare(c)),
      success: req.then.map((op) => ('put' in op ? { request_put: this.putRequest(op) } : { request_delete_range: { key: this.bytes(op.delete) } })),
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  watch(prefix: string, onEvent: (e: WatchEvent) => void, opts: WatchOptions = {}): () => void {
    const key = this.bytes(prefix);
    const w = new EtcdWatch(this.clients.watch, { key, rangeEnd: prefixEndBytes(key), afterRevision: opts.afterRevision }, {
      event: (e) => onEvent({ ...e, key: this.unprefix(e.key) }),
      error: (err) => {
        this.watches.delete(w);
        opts.onError?.(err);
      },
    });
    this.watches.add(w);
    return () => {
      w.cancel();
      this.watches.delete(w);
    };
  }

  async revision(): Promise<number> {
    const res = await this.read<{ header: ResponseHeader }>('Range', { key: this.prefix.length ? this.prefix : Buffer.from([0]), count_only: true });
    return Number(res.header.revision);
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.write('Compact', { revision });
    } catch (e) {
      // already compacted that far: nothing to do, as in the SQLite store
      if ((e as BerthError).code !== Codes.Compacted) throw e;
    }
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    checkTtl(ttlSeconds);
    const res = await this.write<{ ID: string; TTL: string; error: string }>('LeaseGrant', { TTL: ttlSeconds, ID: 0 }, this.clients.lease);
    if (res.error) throw new BerthError(Codes.InvalidRequestContent, `etcd refused the lease: ${res.error}`, 400);
    const lease = new EtcdLease(res.ID, Number(res.TTL), this.clients.lease, {
      revoke: () => this.write('LeaseRevoke', { ID: res.ID }, this.clients.lease).then(() => undefined),
      forget: () => this.leases.delete(lease),
    });
    this.leases.add(lease);
    return lease;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.cancel();
    this.watches.clear();
    for (const lease of this.leases) lease.stop('the store was closed');
    this.leases.clear();
    this.clients.close();
  }

  private bytes(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key)]);
  }

  private unprefix(key: Buffer): string {
    return key.subarray(this.prefix.length).toString();
  }

  private toKv<T>(kv: KeyValueMessage): KeyValue<T> {
    return {
      key: this.unprefix(kv.key),
      value: JSON.parse(kv.value.toString()) as T,
      modRevision: Number(kv.mod_revision),
      createRevision: Number(kv.create_revision),
      ...(kv.lease !== '0' ? { lease: kv.lease } : {}),
    };
  }

  private putRequest(op: Extract<Op, { put: string }>) {
    return { key: this.bytes(op.put), value: Buffer.from(JSON.stringify(op.value)), lease: op.lease ?? 0 };
  }

  private compare(c: Compare) {
    const key = this.bytes(c.key);
    if ('modRevision' in c) return { key, result: 'EQUAL', target: 'MOD', mod_revision: c.modRevision };
    if ('createRevision' in c) return { key, result: 'EQUAL', target: 'CREATE', create_revision: c.createRevision };
    if ('exists' in c) return { key, result: c.exists ? 'GREATER' : 'EQUAL', target: 'VERSION', version: 0 };
    return { key, result: 'EQUAL', target: 'VALUE', value: Buffer.from(JSON.stringify(c.value)) };
  }

  /** A read: repeated when the connection drops under it, until the request timeout. */
  private async read<Res>(method: string, request: object): Promise<Res> {
    const deadline = Date.now() + this.opts.requestTimeoutMs;
    for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
      try {
        return await call<Res>(this.clients.kv, method, request, Math.max(1, deadline - Date.now()));
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (err.code !== grpc.status.UNAVAILABLE || Date.now() + pause >= deadline) throw this.storeError(err, false);
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  /** A write: never repeated (a write cut off mid-call may have been applied); the caller decides. */
  private async write<Res>(method: string, request: object, client: grpc.Client = this.clients.kv): Promise<Res> {
    try {
      return await call<Res>(client, method, request, this.opts.requestTimeoutMs);
    } catch (e) {
      throw this.storeError(e as grpc.ServiceError, true);
    }
  }

  private storeError(err: grpc.ServiceError, write: boolean): BerthError {
    const details = err.details || err.message;
    const where = `etcd (${this.opts.endpoints.join(',')})`;
    switch (err.code) {
      case grpc.status.UNAVAILABLE:
      case grpc.status.DEADLINE_EXCEEDED:
      case grpc.status.CANCELLED:
        return new BerthError(Codes.ServiceUnavailable, `${where} is unavailable: ${details}${write ? '; the write may or may not have been applied' : ''}.`, 503);
      case grpc.status.NOT_FOUND:
        if (/lease/i.test(details)) return new BerthError(Codes.LeaseNotFound, `${details} (it expired or was revoked).`, 404);
        break;
      case grpc.status.OUT_OF_RANGE:
        if (/compacted/.test(details)) return new BerthError(Codes.Compacted, details, 410);
        return new BerthError(Codes.InvalidRequestContent, details, 400);
      case grpc.status.INVALID_ARGUMENT:
      case grpc.status.RESOURCE_EXHAUSTED:
        return new BerthError(Codes.InvalidRequestContent, `${where} refused the request: ${details}`, 400);
    }
    return new BerthError(Codes.InternalServerError, `${where}: ${details}`, 500);
  }
}
