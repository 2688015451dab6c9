// Composition root of the embedded default: SQLite store, the local host as the only agent, the ARM API.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { createHostRuntime, hostRuntimeConfig, type HostRuntimeConfig } from './agent/host.js';
import { Authenticator, type ServicePrincipal, type TokenGrant } from './arm/auth.js';
import { groupLookup, startDnsServer, type DnsServer } from './instances/dns.js';
import { buildServer } from './instances/http.js';
import type { AgentApiOptions } from './instances/hosts/agent-api.js';
import { configPicker } from './lib/config-file.js';
import { BerthError, Codes } from './lib/errors.js';
import { ensureServerCert } from './lib/tls.js';
import { createProvider } from './instances/provider.js';
import { InstancesService } from './instances/service.js';
import { LOCAL_HOST, startLocalAgent, type LocalAgent } from './server-agent.js';
import { startClusterCore } from './server-cluster.js';
import { startServerOrchestrator } from './server-orchestrator.js';
import { parseStoreUrl } from './store/open.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { traceSince, tracing } from './lib/trace.js';
import { DEFAULT_OVERLAY } from './instances/hosts/cluster-overlay.js';
import { DEFAULT_HOST_LEASE_SECONDS } from './instances/hosts/gateway.js';
import { splitHostPort } from './lib/net.js';
import { readableSecretWarning } from './lib/secret-file.js';
import type { PublishedPort } from './runtime/types.js';

export interface ServerConfig extends HostRuntimeConfig {
  /** Plain HTTP; loopback only unless allowInsecureHttp. */
  listen: string; // HOST:PORT
  /** HTTPS with the certificate berth's CA signs; '' turns it off. */
  listenHttps: string;
  allowInsecureHttp: boolean;
  tlsDir: string;
  /** A string may use every subscription; an object only those it lists. */
  tokens: (string | TokenGrant)[];
  servicePrincipals: ServicePrincipal[];
  /** What GET /subscriptions lists to a caller that may use any. */
  subscriptions: string[];
  /** Zone of the groups' fqdns (`<dnsNameLabel>.<location>.<zone>`). */
  dnsZone: string;
  /** The location (ARM region) berth serves; requests naming another are refused. Default 'local'. */
  location: string;
  /** Where berth's DNS answers for that zone (UDP and TCP); '' turns it off; unset: DEFAULT_DNS_LISTEN if free. */
  dnsListen?: string;
  /**
   * The store: unset, SQLite in the data dir with this host as the only agent (the embedded default);
   * `etcd://host:port[,…][/prefix]`, a control plane replica of a cluster (hosts join with `berth agent`).
   */
  store?: string;
  /** Tokens a host may join the cluster with (`berth agent --token`). */
  joinTokens: string[];
  /** A host is NotReady this long after its last heartbeat, and its groups move (fractional allowed). Default 4 s. */
  hostLeaseSeconds: number;
  /** A cluster's overlay: every host's subnet is cut from this block (cluster-overlay.ts). Default 10.252.0.0/16. */
  clusterCidr: string;
  /** The prefix length of each host's subnet of `clusterCidr`. Default 24. */
  hostSubnetPrefix: number;
  /**
   * Run the NGroup orchestrator in this process (default; on a cluster, in one replica at a time); false when it
   * runs apart (`berth orchestrator`).
   */
  orchestrator: boolean;
}

const DEFAULT_DNS_LISTEN = '127.0.0.1:8753';

/** Options in `<dataDir>/config.json` (written by `berth up`), overridden by flags. */
export function loadConfig(dataDir: string, flags: Partial<ServerConfig>): ServerConfig {
  const file = join(dataDir, 'config.json');
  const { fromFile, pick } = configPicker<ServerConfig>(file, flags);
  return {
    ...hostRuntimeConfig(dataDir, pick, { advertiseAddress: defaultAdvertiseAddress }),
    listen: pick('listen', '127.0.0.1:8780'),
    listenHttps: pick('listenHttps', '127.0.0.1:8743'),
    allowInsecureHttp: pick('allowInsecureHttp', false),
    tlsDir: pick('tlsDir', join(dataDir, 'tls')),
    tokens: [...(fromFile.tokens ?? []), ...(flags.tokens ?? [])],
    servicePrincipals: [...(fromFile.servicePrincipals ?? []), ...(flags.servicePrincipals ?? [])],
    subscriptions: pick('subscriptions', ['default']),
    dnsZone: pick('dnsZone', 'berth.internal'),
    location: pick('location', 'local'),
    dnsListen: flags.dnsListen ?? fromFile.dnsListen,
    store: pick('store', undefined),
    joinTokens: [...(fromFile.joinTokens ?? []), ...(flags.joinTokens ?? [])],
    hostLeaseSeconds: pick('hostLeaseSeconds', DEFAULT_HOST_LEASE_SECONDS),
    clusterCidr: pick('clusterCidr', DEFAULT_OVERLAY.clusterCidr),
    hostSubnetPrefix: pick('hostSubnetPrefix', DEFAULT_OVERLAY.hostPrefix),
    orchestrator: pick('orchestrator', true),
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
  // it holds the tokens: root's alone, also when it existed with a wider mode
  chmodSync(file, 0o600);
  const first = cfg.tokens[0];
  return { token: typeof first === 'string' ? first : first.token, config: cfg };
}

function defaultAdvertiseAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

/** A warning when the config file holds API tokens or service principals' secrets and others than its owner may read it. */
export function exposedSecretsWarning(file: string): string | undefined {
  let cfg: Partial<ServerConfig>;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8')) as Partial<ServerConfig>;
  } catch {
    return undefined; // none, or unreadable: loadConfig says so
  }
  const holds = [cfg.tokens?.length ? 'API tokens' : '', cfg.servicePrincipals?.length ? "service principals' secrets" : ''].filter(Boolean);
  return holds.length > 0 ? readableSecretWarning(file, holds.join(' and ')) : undefined;
}

/** What serves the API: the store, the service over it and its hosts (this one in-process, or a cluster's). */
export interface Core {
  store: Store;
  /** On a cluster: this replica, as its elections know it. */
  replica?: string;
  service: InstancesService;
  /** The agent API, when hosts join this control plane. */
  agentApi?: AgentApiOptions;
  /** A placed group's Public address: its host's (a cluster); unset, this server's advertise address. */
  hostAddress?: (host: string) => string | undefined;
  close(): Promise<void>;
}

/** How long a stop waits for the group to have stopped: the grace, then the kill and the teardown, and a minute more. */
export const stopWaitMs = (cfg: { stopGraceSeconds: number }) => (cfg.stopGraceSeconds + 60) * 1000;

/** The embedded default: SQLite in the data dir (or the file --store names), this host's agent in-process. */
async function startEmbeddedCore(cfg: ServerConfig, berthPorts: () => PublishedPort[]): Promise<Core> {
  const where = cfg.store ? parseStoreUrl(cfg.store) : undefined;
  const store = new SqliteStore(where?.kind === 'sqlite' ? where.path : join(cfg.dataDir, 'berth.db'));
  const host = createHostRuntime(cfg, { reservedPorts: berthPorts, warn: (why) => console.error(`berth: ${why}`) });
  let local: LocalAgent | undefined;
  const dataPlanes = (name: string) => {
    if (name === LOCAL_HOST && local) return local.agent;
    throw new BerthError(Codes.ServiceUnavailable, `The host '${name}' of the container group cannot be reached.`, 503);
  };
  const service = new InstancesService(store, dataPlanes, { dnsZone: cfg.dnsZone, location: cfg.location, stopWaitMs: stopWaitMs(cfg), placeOn: LOCAL_HOST });
  await service.start();
  local = await startLocalAgent(service.gateway, {
    runtime: host.runtime, address: cfg.advertiseAddress, stopGraceSeconds: cfg.stopGraceSeconds, pollMs: cfg.agentPollMs, usageIntervalMs: cfg.metricsIntervalMs,
  });
  // after the agent adopted what runs: what a crash left in the pools is torn down, then they fill in the background
  await host.startPools();
  return {
    store,
    service,
    async close() {
      await local?.close();
      await host.stopPools();
      await service.stop();
      await store.close();
    },
  };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

export async function startServer(cfg: ServerConfig) {
  if (cfg.tokens.length === 0 && cfg.servicePrincipals.length === 0)
    throw new Error(`no API token: pass --token, or put "tokens" in ${join(cfg.dataDir, 'config.json')} (berth up does this)`);
  const plain = splitHostPort(cfg.listen);
  if (!isLoopback(plain.host) && !cfg.allowInsecureHttp)
    throw new Error(`refusing plain HTTP on ${cfg.listen}: tokens would cross the network in clear. Serve HTTPS with --listen-https, or pass --allow-insecure-http`);
  if (!(cfg.diskLimitGB >= 0)) throw new Error(`diskLimitGB must be a number of GB, 0 for no limit (got ${JSON.stringify(cfg.diskLimitGB)})`);
  // Everything under it is root's alone: the database and the bundles hold secure values, volumes
  // and group disks secret files. Tightened at every start, also when it was made wider before.
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(cfg.dataDir, 0o700);
  const exposed = exposedSecretsWarning(join(cfg.dataDir, 'config.json'));
  if (exposed) console.error(`berth: warning: ${exposed}`);
  // Tokens issued to service principals are signed with a key that outlives restarts.
  const keyFile = join(cfg.dataDir, 'token-signing.key');
  if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  // The in-process orchestrator's own token: made at each start, never written anywhere.
  const orchestratorToken = randomBytes(24).toString('base64url');
  const auth = new Authenticator([...cfg.tokens, ...(cfg.orchestrator ? [{ token: orchestratorToken, subscriptions: '*' as const }] : [])], cfg.servicePrincipals, readFileSync(keyFile));
  if (!isIPv4(cfg.advertiseAddress))
    throw new Error(`advertiseAddress "${cfg.advertiseAddress}" is no IPv4 address: Public ports are published on it (--advertise-address)`);
  if (!isLoopback(cfg.advertiseAddress) && !Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === cfg.advertiseAddress)))
    console.error(`berth: advertiseAddress ${cfg.advertiseAddress} is not an address of this host: Public ports published on it answer only where traffic to it arrives here unchanged`);
  // berth's own ports (those configured now, the ones the kernel picks once it listens): a group
  // publishing one would take berth's requests, tokens included
  const berthPorts: PublishedPort[] = cfg.reservedPorts.flatMap((port) => [{ port, protocol: 'TCP' as const }, { port, protocol: 'UDP' as const }]);
  const reserve = (hostPort: string | undefined, protocols: PublishedPort['protocol'][]) => {
    const port = hostPort ? splitHostPort(hostPort).port : 0;
    if (port > 0) for (const protocol of protocols) berthPorts.push({ port, protocol });
  };
  reserve(cfg.listen, ['TCP']);
  reserve(cfg.listenHttps, ['TCP']);
  reserve(cfg.dnsListen === '' ? undefined : cfg.dnsListen ?? DEFAULT_DNS_LISTEN, ['UDP', 'TCP']);
  if (tracing) {
    // event-loop lag: how long ready work waited for the single JS thread
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    setInterval(() => {
      traceSince(`max=${(h.max / 1e6).toFixed(0)} mean=${(h.mean / 1e6).toFixed(1)}`, 'loop.delay', performance.now());
      h.reset();
    }, 1000).unref();
  }
  const core = cfg.store?.startsWith('etcd://') ? await startClusterCore(cfg) : await startEmbeddedCore(cfg, () => berthPorts);
  const { service } = core;
  const provider = createProvider(core.store, service);
  await provider.start();
  const ctx = { advertiseAddress: cfg.advertiseAddress, hostAddress: core.hostAddress };
  const common = { provider, auth, ...ctx, subscriptions: cfg.subscriptions, agentApi: core.agentApi, metricsIntervalMs: cfg.metricsIntervalMs };
  const apps = [buildServer(common)];
  let dns: DnsServer | undefined;
  const dnsOptions = { zone: service.dnsZone, lookup: groupLookup(service, ctx) };
  if (cfg.dnsListen !== '') {
    try {
      dns = await startDnsServer(cfg.dnsListen ?? DEFAULT_DNS_LISTEN, dnsOptions);
      reserve(dns.address, ['UDP', 'TCP']);
    } catch (e) {
      // A configured address must work; the default one may be taken by something else on this host.
      if (cfg.dnsListen !== undefined) throw new Error(`cannot serve DNS on ${cfg.dnsListen}: ${(e as Error).message}`);
      console.error(`berth: not serving DNS: ${DEFAULT_DNS_LISTEN} is not available (${(e as Error).message}); set "dnsListen" in config.json or pass --dns-listen`);
    }
  }
  let tls: Awaited<ReturnType<typeof ensureServerCert>> | undefined;
  if (cfg.listenHttps) {
    const h = splitHostPort(cfg.listenHttps).host;
    const names = ['127.0.0.1', '::1', 'localhost', hostname(), cfg.advertiseAddress, ...(h && h !== '0.0.0.0' && h !== '::' ? [h] : [])];
    tls = await ensureServerCert(cfg.tlsDir, names.filter((n) => n && (isIP(n) || /^[a-z0-9.-]+$/i.test(n))));
    apps.push(buildServer({ ...common, https: { key: readFileSync(tls.key), cert: readFileSync(tls.cert) } }));
  }
  const urls: string[] = [];
  const listens = [cfg.listen, cfg.listenHttps].filter(Boolean);
  for (const [i, app] of apps.entries()) {
    const { host, port } = splitHostPort(listens[i]);
    await app.listen({ host, port });
    const addr = app.server.address();
    if (typeof addr === 'object' && addr) reserve(`:${addr.port}`, ['TCP']);
    const scheme = i === 0 ? 'http' : 'https';
    urls.push(typeof addr === 'object' && addr ? `${scheme}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : listens[i]);
  }
  // The orchestrator is a client of this API like any other, over loopback.
  const bound = apps[0].server.address() as { address: string; family: string; port: number };
  const loopback = bound.address === '0.0.0.0' || bound.address === '::' ? '127.0.0.1' : bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const orchestrator = cfg.orchestrator
    ? await startServerOrchestrator({
      endpoint: `http://${loopback}:${bound.port}`, token: orchestratorToken, log: (m) => console.error(`berth orchestrator: ${m}`),
      ...(core.replica && { elect: { store: core.store, replica: core.replica } }),
    })
    : undefined;
  return {
    url: urls[0],
    httpsUrl: urls[1],
    caCert: tls?.caCert,
    /** `host:port` of berth's DNS, if it serves one. */
    dnsAddress: dns?.address,
    dnsZone: service.dnsZone,
    /** Stops serving; containers keep running (they belong to conmon, not to this process). */
    async close() {
      await orchestrator?.stop();
      for (const app of apps) await app.close();
      await dns?.close();
      provider.stop();
      await core.close();
    },
  };
}
