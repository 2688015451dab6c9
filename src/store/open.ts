// Opens the store a --store URL names: etcd://host:port[,host:port…][/prefix] for a cluster, a file path for the embedded SQLite.
import { BerthError, Codes } from '../lib/errors.js';
import { EtcdStore } from './etcd.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'etcd'; endpoints: string[]; prefix: string };

const invalid = (url: string, why: string) => new BerthError(Codes.InvalidRequestContent, `Invalid store '${url}': ${why}.`, 400, 'store');

export function parseStoreUrl(url: string): StoreLocation {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
    if (path === '') throw invalid(url, 'no file path');
    return { kind: 'sqlite', path };
  }
  if (scheme === 'sqlite') return parseStoreUrl(`sqlite:${url.slice('sqlite://'.length)}`);
  if (scheme !== 'etcd') throw invalid(url, `'${scheme}://' is not a store (use etcd://host:port[,host:port…][/prefix] or a file path)`);
  const rest = url.slice('etcd://'.length);
  const slash = rest.indexOf('/');
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash).replace(/\/+$/, '');
  const endpoints = hosts.split(',').map((h) => h.trim());
  for (const ep of endpoints) {
    const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d+)$/i.exec(ep);
    if (!m) throw invalid(url, `'${ep}' is not host:port`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw invalid(url, `port ${m[2]} is out of range`);
  }
  return { kind: 'etcd', endpoints, prefix };
}

/** Opens (and for etcd, checks it answers) the store `url` names. */
export async function openStore(url: string): Promise<Store> {
  const where = parseStoreUrl(url);
  return where.kind === 'sqlite' ? new SqliteStore(where.path) : EtcdStore.connect({ endpoints: where.endpoints, prefix: where.prefix });
}
