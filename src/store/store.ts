// The Store interface: a revisioned key-value store shaped after etcd, implemented by SQLite and etcd.

export interface KeyValue<T = unknown> {
  key: string;
  value: T;
  /** Store-wide revision at which this key was last modified. */
  modRevision: number;
  /** Store-wide revision at which this key was created. */
  createRevision: number;
}

export type Compare = { key: string; modRevision: number }; // modRevision 0 = key must not exist

export type Op = { put: string; value: unknown } | { delete: string };

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  value?: unknown;
  modRevision: number;
}

export interface Store {
  get<T = unknown>(key: string): Promise<KeyValue<T> | undefined>;
  /** Keys starting with `prefix`, sorted by key; `startAfter` and `limit` page through them. */
  list<T = unknown>(prefix: string, opts?: { startAfter?: string; limit?: number }): Promise<KeyValue<T>[]>;
  /** Unconditional put; returns the new revision. */
  put(key: string, value: unknown): Promise<number>;
  /** Unconditional delete; true if the key existed. */
  delete(key: string): Promise<boolean>;
  /** Atomically: if every compare holds, apply every op. Returns false (and changes nothing) otherwise. */
  txn(compares: Compare[], ops: Op[]): Promise<boolean>;
  /** Calls `onEvent` for each change under `prefix` made after the call. Returns an unsubscribe function. */
  watch(prefix: string, onEvent: (e: WatchEvent) => void): () => void;
  /** Current store-wide revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}
