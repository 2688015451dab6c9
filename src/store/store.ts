// The Store interface: a revisioned key-value store shaped after etcd's v3 API, implemented by SQLite and etcd.
import { BerthError, Codes } from '../lib/errors.js';

export interface KeyValue<T = unknown> {
  key: string;
  value: T;
  /** Store-wide revision at which this key was last modified. */
  modRevision: number;
  /** Store-wide revision at which this key was created (a key deleted and put again gets a new one). */
  createRevision: number;
  /** The lease the key is attached to, if any. */
  lease?: string;
}

/** What `list` answers: the keys, and the store revision they were read at (watch after it to miss nothing). */
export interface Listing<T = unknown> extends Array<KeyValue<T>> {
  revision: number;
}

/**
 * One condition of a transaction. A missing key has modRevision and createRevision 0, and never
 * equals a value.
 */
export type Compare =
  | { key: string; modRevision: number }
  | { key: string; createRevision: number }
  /** The key holds exactly this value (compared as JSON text). */
  | { key: string; value: unknown }
  | { key: string; exists: boolean };

/** A put (attached to `lease` when given, detached from any lease otherwise) or a delete. */
export type Op = { put: string; value: unknown; lease?: string } | { delete: string };

export interface TxnRequest {
  /** Every compare must hold for the ops to apply. */
  if?: Compare[];
  /** Applied atomically, at one new revision; one key at most once. */
  then: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** The revision the transaction wrote at when it succeeded and changed something; the store's revision otherwise. */
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value (puts only). Do not mutate it: it may be the very object that was put. */
  value?: unknown;
  modRevision: number;
  /** The key's createRevision (puts only). */
  createRevision?: number;
}

export interface WatchOptions {
  /**
   * Deliver every change with a modRevision greater than this, then follow new ones. Without it the
   * watch starts at the store's revision when it is established, which for etcd may be slightly after
   * the call: use a list's revision (or `revision()`) here whenever missing nothing matters.
   */
  afterRevision?: number;
  /**
   * Called at most once, when the watch ends by itself: with `Codes.Compacted` when the revision to
   * resume from has been compacted away (list again and watch after the listing's revision).
   * Lost connections are not errors: the watch resumes where it was, without gap or repeat.
   */
  onError?: (err: BerthError) => void;
}

/** A lease the store keeps alive until it is revoked, its store is closed, or renewing it fails for longer than its TTL. */
export interface Lease {
  /** Decimal id (etcd's are 64-bit). */
  readonly id: string;
  /** The TTL the store granted (etcd raises small ones to its minimum). */
  readonly ttlSeconds: number;
  /** Aborted when the holder can no longer assume the lease lives: revoked, expired, or not renewed within its TTL. */
  readonly signal: AbortSignal;
  /** Ends the lease now: every key attached to it is deleted (one delete event each). */
  revoke(): Promise<void>;
}

/** How a read may be served. */
export interface ReadOptions {
  /**
   * From the store's own state without a round through its quorum (etcd's serializable read): it may be a moment
   * behind the latest write. For reads whose revisions a transaction compares anyway (a stale one fails it).
   */
  serializable?: boolean;
}

export interface Store {
  get<T = unknown>(key: string, opts?: ReadOptions): Promise<KeyValue<T> | undefined>;
  /** Keys starting with `prefix`, sorted by key (byte order); `startAfter` and `limit` page through them. */
  list<T = unknown>(prefix: string, opts?: { startAfter?: string; limit?: number }): Promise<Listing<T>>;
  /** Unconditional put; returns the new revision. */
  put(key: string, value: unknown, opts?: { lease?: string }): Promise<number>;
  /** Unconditional delete; true if the key existed. */
  delete(key: string): Promise<boolean>;
  /**
   * Atomically: if every compare holds, apply every op; otherwise change nothing. etcd refuses more
   * than 128 ops in one transaction and requests over 1.5 MiB: keep transactions within both.
   */
  txn(req: TxnRequest): Promise<TxnResult>;
  /**
   * Calls `onEvent` for each change under `prefix`, in revision order, each exactly once (across lost
   * connections too), until the returned function is called.
   */
  watch(prefix: string, onEvent: (e: WatchEvent) => void, opts?: WatchOptions): () => void;
  /** Current store-wide revision. */
  revision(): Promise<number>;
  /** Drops the history before `revision`: a watch after a revision older than `revision - 1` fails with Compacted. */
  compact(revision: number): Promise<void>;
  /** Grants a lease of `ttlSeconds` and keeps it alive (see Lease). */
  grantLease(ttlSeconds: number): Promise<Lease>;
  /** Stops watches and keep-alives (leases are not revoked: they expire after their TTL, as after a crash). */
  close(): Promise<void>;
}

/** Leases are whole seconds, at least one, on both stores. */
export function checkTtl(ttlSeconds: number) {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)
    throw new BerthError(Codes.InvalidRequestContent, `A lease TTL must be a whole number of seconds, at least 1 (got ${ttlSeconds}).`, 400);
}

/** The error a watch ends with when the revision it would resume from is gone. */
export const compactedError = (after: number, compacted: number) =>
  new BerthError(Codes.Compacted, `Revision ${after + 1} has been compacted; the oldest revision kept is ${compacted}.`, 410);
