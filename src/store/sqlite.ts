// SQLite-backed Store: the embedded default; one file, WAL, durable across a kill -9 of berth.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Compare, KeyValue, Op, Store, WatchEvent } from './store.js';

interface Row {
  key: string;
  value: string;
  mod_rev: number;
  create_rev: number;
}

const toKv = <T>(r: Row): KeyValue<T> => ({
  key: r.key,
  value: JSON.parse(r.value) as T,
  modRevision: r.mod_rev,
  createRevision: r.create_rev,
});

/** Smallest string greater than every string with this prefix (for range scans). */
const prefixEnd = (prefix: string) => prefix + '\u{10FFFF}';

export class SqliteStore implements Store {
  private db: Database.Database;
  private watchers = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();
  private stmts;

  /** `path` is a file path, or ':memory:'. */
  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    // WAL + synchronous=NORMAL: a committed transaction survives a crash of the process (not
    // necessarily of the machine's power), which is the failure berth promises to survive.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL,
        mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
      INSERT OR IGNORE INTO meta (name, n) VALUES ('revision', 0);
    `);
    this.stmts = {
      get: this.db.prepare<[string], Row>('SELECT * FROM kv WHERE key = ?'),
      list: this.db.prepare<[string, string, string, number], Row>(
        'SELECT * FROM kv WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?',
      ),
      rev: this.db.prepare<[], { n: number }>("SELECT n FROM meta WHERE name = 'revision'"),
      bump: this.db.prepare("UPDATE meta SET n = n + 1 WHERE name = 'revision'"),
      upsert: this.db.prepare(
        `INSERT INTO kv (key, value, mod_rev, create_rev) VALUES (@key, @value, @rev, @rev)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev`,
      ),
      del: this.db.prepare('DELETE FROM kv WHERE key = ?'),
    };
  }

  async get<T>(key: string): Promise<KeyValue<T> | undefined> {
    const r = this.stmts.get.get(key);
    return r ? toKv<T>(r) : undefined;
  }

  async list<T>(prefix: string, opts: { startAfter?: string; limit?: number } = {}): Promise<KeyValue<T>[]> {
    return this.stmts.list
      .all(prefix, prefixEnd(prefix), opts.startAfter ?? '', opts.limit ?? -1)
      .map((r) => toKv<T>(r));
  }

  async put(key: string, value: unknown): Promise<number> {
    let rev = 0;
    this.apply([], [{ put: key, value }], (r) => (rev = r));
    return rev;
  }

  async delete(key: string): Promise<boolean> {
    if (!this.stmts.get.get(key)) return false;
    return this.apply([], [{ delete: key }]);
  }

  async txn(compares: Compare[], ops: Op[]): Promise<boolean> {
    return this.apply(compares, ops);
  }

  async revision(): Promise<number> {
    return this.stmts.rev.get()!.n;
  }

  watch(prefix: string, fn: (e: WatchEvent) => void): () => void {
    const w = { prefix, fn };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  async close(): Promise<void> {
    this.watchers.clear();
    this.db.close();
  }

  private apply(compares: Compare[], ops: Op[], onRev?: (rev: number) => void): boolean {
    const events: WatchEvent[] = [];
    const ok = this.db.transaction(() => {
      for (const c of compares) {
        const r = this.stmts.get.get(c.key);
        if ((r?.mod_rev ?? 0) !== c.modRevision) return false;
      }
      if (ops.length === 0) return true;
      this.stmts.bump.run();
      const rev = this.stmts.rev.get()!.n;
      for (const op of ops) {
        if ('put' in op) {
          this.stmts.upsert.run({ key: op.put, value: JSON.stringify(op.value), rev });
          events.push({ type: 'put', key: op.put, value: op.value, modRevision: rev });
        } else if (this.stmts.del.run(op.delete).changes > 0) {
          events.push({ type: 'delete', key: op.delete, modRevision: rev });
        }
      }
      onRev?.(rev);
      return true;
    }).immediate();
    // Notify after commit, so a watcher that reads back sees what it was told about.
    for (const e of events) for (const w of this.watchers) if (e.key.startsWith(w.prefix)) w.fn(e);
    return ok;
  }
}
