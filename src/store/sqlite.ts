// SQLite-backed Store: the embedded default; one file, WAL, durable across a kill -9 of berth.
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { BerthError, Codes } from '../lib/errors.js';
import { SqliteLease } from './sqlite-lease.js';
import { prefixEnd, WatchHub } from './sqlite-watch.js';
import { checkTtl, type Compare, type KeyValue, type Lease, type Listing, type Op, type Store, type TxnRequest, type TxnResult, type WatchEvent, type WatchOptions } from './store.js';

interface Row {
  key: string;
  value: string;
  mod_rev: number;
  create_rev: number;
  lease: number;
}

const toKv = <T>(r: Row): KeyValue<T> => ({
  key: r.key,
  value: JSON.parse(r.value) as T,
  modRevision: r.mod_rev,
  createRevision: r.create_rev,
  ...(r.lease ? { lease: String(r.lease) } : {}),
});

export interface SqliteStoreOptions {
  /** History kept for watches that resume (in revisions); older events are compacted away. Default 10000. */
  retainRevisions?: number;
  /** How often to look for other processes' commits and for expired leases. Default 50 ms. */
  pollMs?: number;
}

export class SqliteStore implements Store {
  readonly path: string;
  private db: Database.Database;
  private hub: WatchHub;
  private leases = new Map<string, SqliteLease>();
  private timer: NodeJS.Timeout;
  private polls = 0;
  private retain: number;
  private nextAutoCompact = 0;
  private stmts;
  private listTxn: Database.Transaction<(prefix: string, startAfter: string, limit: number) => { rows: Row[]; revision: number }>;
  private applyTxn: Database.Transaction<(req: TxnRequest) => { result: TxnResult; events: WatchEvent[] }>;
  private endLeaseTxn: Database.Transaction<(id: number, expiredBy: number | undefined) => { rev: number; events: WatchEvent[] } | undefined>;

  /** `path` is a file path, or ':memory:'. Several processes may open one file; each sees the others' changes. */
  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.retain = opts.retainRevisions ?? 10_000;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Groups' secure values are stored here: root's alone. SQLite makes its WAL and shared-memory
      // files with the database's mode, so the database is made 0600 before SQLite opens it; files
      // an older berth made wider are tightened.
      closeSync(openSync(path, 'a', 0o600));
      for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    }
    this.db = new Database(path);
    // WAL + synchronous=NORMAL: a committed transaction survives a crash of the process (not
    // necessarily of the machine's power), which is the failure berth promises to survive.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.transaction(() => this.migrate()).immediate();
    const db = this.db;
    this.stmts = {
      get: db.prepare<[string], Row>('SELECT key, value, mod_rev, create_rev, lease FROM kv WHERE key = ?'),
      list: db.prepare<[string, string, string, number], Row>(
        'SELECT key, value, mod_rev, create_rev, lease FROM kv WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?',
      ),
      rev: db.prepare<[], { n: number }>("SELECT n FROM meta WHERE name = 'revision'"),
      compacted: db.prepare<[], { n: number }>("SELECT n FROM meta WHERE name = 'compacted'"),
      setMeta: db.prepare<[number, string]>('UPDATE meta SET n = ? WHERE name = ?'),
      upsert: db.prepare<{ key: string; value: string; rev: number; lease: number }, { create_rev: number }>(
        `INSERT INTO kv (key, value, mod_rev, create_rev, lease) VALUES (@key, @value, @rev, @rev, @lease)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease
         RETURNING create_rev`,
      ),
      del: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      event: db.prepare<[number, number, string, string | null, number]>(
        'INSERT INTO events (rev, seq, key, value, create_rev) VALUES (?, ?, ?, ?, ?)',
      ),
      dropEvents: db.prepare<[number]>('DELETE FROM events WHERE rev < ?'),
      lease: db.prepare<[number], { expires_at: number }>('SELECT expires_at FROM leases WHERE id = ?'),
      grant: db.prepare<[number, number], { id: number }>('INSERT INTO leases (ttl, expires_at) VALUES (?, ?) RETURNING id'),
      renew: db.prepare<[number, number]>('UPDATE leases SET expires_at = ? WHERE id = ?'),
      dropLease: db.prepare<[number]>('DELETE FROM leases WHERE id = ?'),
      leaseKeys: db.prepare<[number], { key: string }>('SELECT key FROM kv WHERE lease = ?'),
      expired: db.prepare<[number], { id: number }>('SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at LIMIT 100'),
    };
    this.hub = new WatchHub(db);
    // One read transaction: the rows and the revision they were read at agree, whatever other processes write.
    this.listTxn = db.transaction((prefix: string, startAfter: string, limit: number) => ({
      rows: this.stmts.list.all(prefix, prefixEnd(prefix), startAfter, limit),
      revision: this.stmts.rev.get()!.n,
    }));
    this.applyTxn = db.transaction((req: TxnRequest) => {
      const current = this.stmts.rev.get()!.n;
      for (const c of req.if ?? []) if (!this.holds(c)) return { result: { succeeded: false, revision: current }, events: [] };
      const events = this.write(req.then, current + 1);
      if (events.length === 0) return { result: { succeeded: true, revision: current }, events };
      this.stmts.setMeta.run(current + 1, 'revision');
      return { result: { succeeded: true, revision: current + 1 }, events };
    });
    this.endLeaseTxn = db.transaction((id: number, expiredBy: number | undefined) => {
      const lease = this.stmts.lease.get(id);
      if (!lease || (expiredBy !== undefined && lease.expires_at > expiredBy)) return undefined;
      const rev = this.stmts.rev.get()!.n + 1;
      const events = this.write(this.stmts.leaseKeys.all(id).map((r) => ({ delete: r.key })), rev);
      this.stmts.dropLease.run(id);
      if (events.length > 0) this.stmts.setMeta.run(rev, 'revision');
      return { rev, events };
    });
    this.timer = setInterval(() => this.poll(), opts.pollMs ?? 50);
    this.timer.unref();
  }

  async get<T>(key: string): Promise<KeyValue<T> | undefined> {
    const r = this.stmts.get.get(key);
    return r ? toKv<T>(r) : undefined;
  }

  async list<T>(prefix: string, opts: { startAfter?: string; limit?: number } = {}): Promise<Listing<T>> {
    const { rows, revision } = this.listTxn(prefix, opts.startAfter ?? '', opts.limit ?? -1);
    return Object.assign(rows.map((r) => toKv<T>(r)), { revision });
  }

  async put(key: string, value: unknown, opts: { lease?: string } = {}): Promise<number> {
    return this.apply({ then: [{ put: key, value, lease: opts.lease }] }).result.revision;
  }

  async delete(key: string): Promise<boolean> {
    return this.apply({ then: [{ delete: key }] }).events.length > 0;
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    return this.apply(req).result;
  }

  watch(prefix: string, onEvent: (e: WatchEvent) => void, opts?: WatchOptions): () => void {
    return this.hub.watch(prefix, onEvent, opts);
  }

  async revision(): Promise<number> {
    return this.stmts.rev.get()!.n;
  }

  async compact(revision: number): Promise<void> {
    this.db.transaction(() => {
      const current = this.stmts.rev.get()!.n;
      if (revision > current) throw new BerthError(Codes.InvalidRequestContent, `Cannot compact to revision ${revision}: the store is at ${current}.`, 400);
      if (revision <= this.stmts.compacted.get()!.n) return;
      this.stmts.dropEvents.run(revision);
      this.stmts.setMeta.run(revision, 'compacted');
    }).immediate();
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    checkTtl(ttlSeconds);
    const { id } = this.stmts.grant.get(ttlSeconds, Date.now() + ttlSeconds * 1000)!;
    const lease = new SqliteLease(String(id), ttlSeconds, {
      renew: () => this.stmts.renew.run(Date.now() + ttlSeconds * 1000, id).changes > 0,
      revoke: () => this.endLease(id, undefined),
      forget: () => this.leases.delete(String(id)),
    });
    this.leases.set(lease.id, lease);
    return lease;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const lease of [...this.leases.values()]) lease.stop('the store was closed');
    this.leases.clear();
    this.hub.close();
    this.db.close();
  }

  private apply(req: TxnRequest) {
    checkOps(req.then);
    const applied = this.applyTxn.immediate(req);
    if (applied.events.length > 0) this.committed(applied.result.revision, applied.events);
    return applied;
  }

  private committed(rev: number, events: WatchEvent[]) {
    this.hub.committed(rev, events);
    if (rev >= this.nextAutoCompact) {
      this.nextAutoCompact = rev + 1000;
      if (rev > this.retain) setImmediate(() => void this.compact(rev - this.retain).catch(() => undefined));
    }
  }

  /** Applies ops at `rev` inside the caller's transaction; returns the events (none for deletes of missing keys). */
  private write(ops: Op[], rev: number): WatchEvent[] {
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if ('put' in op) {
        const lease = op.lease ? Number(op.lease) : 0;
        if (op.lease && !this.stmts.lease.get(lease)) throw new BerthError(Codes.LeaseNotFound, `Lease ${op.lease} does not exist (it expired or was revoked).`, 404);
        const value = JSON.stringify(op.value);
        const { create_rev } = this.stmts.upsert.get({ key: op.put, value, rev, lease })!;
        this.stmts.event.run(rev, events.length, op.put, value, create_rev);
        events.push({ type: 'put', key: op.put, value: op.value, modRevision: rev, createRevision: create_rev });
      } else if (this.stmts.del.run(op.delete).changes > 0) {
        this.stmts.event.run(rev, events.length, op.delete, null, 0);
        events.push({ type: 'delete', key: op.delete, modRevision: rev });
      }
    }
    return events;
  }

  private holds(c: Compare): boolean {
    const r = this.stmts.get.get(c.key);
    if ('modRevision' in c) return (r?.mod_rev ?? 0) === c.modRevision;
    if ('createRevision' in c) return (r?.create_rev ?? 0) === c.createRevision;
    if ('exists' in c) return (r !== undefined) === c.exists;
    return r !== undefined && r.value === JSON.stringify(c.value);
  }

  private endLease(id: number, expiredBy: number | undefined) {
    const ended = this.endLeaseTxn.immediate(id, expiredBy);
    if (!ended) return;
    this.leases.get(String(id))?.stop(expiredBy === undefined ? 'revoked' : 'it expired');
    if (ended.events.length > 0) this.committed(ended.rev, ended.events);
  }

  private poll() {
    this.hub.pollOtherWriters();
    // Leases are swept by every process that has the file open: one whose holder died still expires.
    if (++this.polls % 5 !== 0) return;
    const now = Date.now();
    for (const { id } of this.stmts.expired.all(now)) this.endLease(id, now);
  }

  /** Creates the schema, and brings a file from before watches could resume up to date (its history starts now). */
  private migrate() {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL,
        mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
      INSERT OR IGNORE INTO meta (name, n) VALUES ('revision', 0);
    `);
    const columns = this.db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('kv')").all();
    if (!columns.some((c) => c.name === 'lease')) this.db.exec('ALTER TABLE kv ADD COLUMN lease INTEGER NOT NULL DEFAULT 0');
    this.db.exec(`
      INSERT OR IGNORE INTO meta (name, n) SELECT 'compacted', n + 1 FROM meta WHERE name = 'revision';
      CREATE TABLE IF NOT EXISTS events (rev INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL,
        value TEXT, create_rev INTEGER NOT NULL, PRIMARY KEY (rev, seq)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY AUTOINCREMENT, ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease != 0;
      CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at);
    `);
  }
}

/** etcd refuses a transaction that touches one key twice; so does this store, so code that works here works there. */
function checkOps(ops: Op[]) {
  if (ops.length < 2) return;
  const keys = new Set<string>();
  for (const op of ops) {
    const key = 'put' in op ? op.put : op.delete;
    if (keys.has(key)) throw new BerthError(Codes.InvalidRequestContent, `A transaction may change a key only once ('${key}' is changed twice).`, 400);
    keys.add(key);
  }
}
