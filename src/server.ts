// Composition root of the embedded default: SQLite store, the local host as the only agent, the ARM API.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Agent } from './agent/agent.js';
import { buildServer } from './instances/http.js';
import { InstancesService } from './instances/service.js';
import { ContainerRuntime } from './runtime/container/runtime.js';
import { ImageStore } from './runtime/image/store.js';
import { NetworkManager } from './runtime/network/network.js';
import { SqliteStore } from './store/sqlite.js';

export interface ServerConfig {
  listen: string; // HOST:PORT
  dataDir: string;
  tokens: string[];
  /** runc state dir; on tmpfs so a reboot forgets containers that a reboot killed. */
  runcRoot: string;
  bridge: string;
  subnet: string;
  advertiseAddress: string;
  insecureRegistries: string[];
  stopGraceSeconds: number;
}

/** Options in `<dataDir>/config.json` (written by `berth up`), overridden by flags. */
export function loadConfig(dataDir: string, flags: Partial<ServerConfig>): ServerConfig {
  const file = join(dataDir, 'config.json');
  const fromFile = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<ServerConfig>) : {};
  const pick = <K extends keyof ServerConfig>(k: K, d: ServerConfig[K]): ServerConfig[K] =>
    (flags[k] !== undefined && !(Array.isArray(flags[k]) && (flags[k] as unknown[]).length === 0) ? flags[k] : fromFile[k] ?? d) as ServerConfig[K];
  return {
    listen: pick('listen', '127.0.0.1:8780'),
    dataDir,
    tokens: [...(fromFile.tokens ?? []), ...(flags.tokens ?? [])],
    runcRoot: pick('runcRoot', '/run/berth/runc'),
    bridge: pick('bridge', 'berth0'),
    subnet: pick('subnet', '10.89.0.0/16'),
    advertiseAddress: pick('advertiseAddress', defaultAdvertiseAddress()),
    insecureRegistries: pick('insecureRegistries', []),
    stopGraceSeconds: pick('stopGraceSeconds', 5),
  };
}

/** Writes `settings` and, unless there is one, a fresh token into the config; returns the token to use. */
export function ensureConfig(dataDir: string, settings: Partial<ServerConfig> = {}): { token: string; config: Partial<ServerConfig> } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'config.json');
  const cfg: Partial<ServerConfig> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  for (const [k, v] of Object.entries(settings)) if (v !== undefined) (cfg as Record<string, unknown>)[k] = v;
  if (!cfg.tokens?.length) cfg.tokens = [randomBytes(24).toString('base64url')];
  writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  return { token: cfg.tokens[0], config: cfg };
}

function defaultAdvertiseAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

export async function startServer(cfg: ServerConfig) {
  if (cfg.tokens.length === 0) throw new Error(`no API token: pass --token, or put "tokens" in ${join(cfg.dataDir, 'config.json')} (berth up does this)`);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const store = new SqliteStore(join(cfg.dataDir, 'berth.db'));
  const agent = new Agent({
    dataDir: cfg.dataDir,
    images: new ImageStore({ root: join(cfg.dataDir, 'images'), insecureRegistries: cfg.insecureRegistries }),
    containers: new ContainerRuntime({ root: join(cfg.dataDir, 'containers'), runcRoot: cfg.runcRoot }),
    network: new NetworkManager({ bridge: cfg.bridge, subnet: cfg.subnet, stateDir: join(cfg.dataDir, 'network'), ipamDataDir: join(cfg.dataDir, 'ipam') }),
    stopGraceSeconds: cfg.stopGraceSeconds,
  });
  const service = new InstancesService(store, agent);
  await service.start();
  const app = buildServer({ service, tokens: cfg.tokens, advertiseAddress: cfg.advertiseAddress });
  const i = cfg.listen.lastIndexOf(':');
  const host = cfg.listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(cfg.listen.slice(i + 1));
  await app.listen({ host, port });
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : cfg.listen;
  return {
    url,
    /** Stops serving; containers keep running (they belong to conmon, not to this process). */
    async close() {
      await app.close();
      await agent.close();
      await service.stop();
      await store.close();
    },
  };
}
