// Composition root of a control plane replica (`berth server --store etcd://…`): the API and the agent API on a shared store; the replica elected leader runs the reconcilers (placement) until its leadership ends.
import { hostname } from 'node:os';
import { RemoteHostDataPlane } from './agent/dataplane-client.js';
import { DATA_PLANE_TOKEN_TTL_S } from './agent/dataplane-wire.js';
import { DEFAULT_OVERLAY, ensureOverlaySettings, overlayPeers } from './instances/hosts/cluster-overlay.js';
import { AgentCredentials } from './instances/hosts/credentials.js';
import { HostsView } from './instances/hosts/hosts-view.js';
import { ensureClusterIdentity } from './instances/hosts/identity.js';
import { RemoteDataPlanes } from './instances/hosts/remote-data-planes.js';
import { RECONCILERS_ELECTION } from './instances/keys.js';
import type { Placer } from './instances/placement/placer.js';
import type { Rescheduler } from './instances/placement/rescheduler.js';
import { InstancesService, UNPLACED } from './instances/service.js';
import { Election, leadWhileElected } from './store/election.js';
import { openStore } from './store/open.js';
import { LOCAL_HOST } from './server-agent.js';
import { stopWaitMs, type Core, type ServerConfig } from './server.js';

/** The reconcilers' election: its lease's TTL bounds how long a dead leader's work waits for the next one. */
export const LEADER_LEASE_SECONDS = 3;

export async function startClusterCore(cfg: ServerConfig): Promise<Core> {
  const log = (m: string) => console.error(`berth: ${m}`);
  const store = await openStore(cfg.store!);
  const replica = `${hostname()}/${process.pid}`;
  const identity = await ensureClusterIdentity(store, cfg.tlsDir);
  const credentials = new AgentCredentials(store, cfg.joinTokens);
  const overlay = await ensureOverlaySettings(store, { clusterCidr: cfg.clusterCidr, hostPrefix: cfg.hostSubnetPrefix, vni: DEFAULT_OVERLAY.vni, port: DEFAULT_OVERLAY.port });
  if (!credentials.joinable) log('no join token is configured (--join-token): no new host can join this cluster');
  // the leader's reconcilers while this replica leads (the hosts' view tells them of changes)
  const reconcilers: { placer?: Placer; rescheduler?: Rescheduler } = {};
  const hosts = new HostsView(store, () => {
    reconcilers.placer?.hostsChanged();
    reconcilers.rescheduler?.hostsChanged();
  });
  const dataPlanes = new RemoteDataPlanes(hosts, (h) => new RemoteHostDataPlane({
    host: h.name, url: h.dataPlane!.url, certSha256: h.dataPlane!.certSha256, ca: identity.caCertPem,
    mint: (claims) => identity.signer.sign(claims, DATA_PLANE_TOKEN_TTL_S),
  }));
  const service = new InstancesService(store, (host) => dataPlanes.of(host), {
    dnsZone: cfg.dnsZone, location: cfg.location, stopWaitMs: stopWaitMs(cfg), placeOn: UNPLACED, hostLeaseSeconds: cfg.hostLeaseSeconds, replica, overlay,
    readyZones: () => hosts.readyHosts().flatMap((h) => (h.zone ? [h.zone] : [])),
  });
  await service.start();
  await hosts.ready();

  // One replica at a time runs the reconcilers; the others stand by until its lease is gone.
  const closing = new AbortController();
  const leading = leadWhileElected(new Election(store, RECONCILERS_ELECTION), {
    value: { replica }, ttlSeconds: LEADER_LEASE_SECONDS, signal: closing.signal, role: 'run the reconcilers', log: (m) => log(`${replica}: ${m}`),
  }, async (leadership) => {
    log(`${replica} leads: running the reconcilers`);
    const placer = (reconcilers.placer = service.placer(hosts, leadership.fence, { log }));
    const rescheduler = (reconcilers.rescheduler = service.rescheduler(hosts, leadership.fence, { log }));
    placer.start();
    rescheduler.start();
    return async () => {
      reconcilers.placer = reconcilers.rescheduler = undefined;
      for (const r of [rescheduler, placer]) await r.stop();
    };
  });

  return {
    store,
    replica,
    service,
    agentApi: { gateway: service.gateway, credentials, identity, reservedHosts: [LOCAL_HOST], overlayPeers: () => overlayPeers(hosts.all()) },
    hostAddress: (host) => hosts.get(host)?.address,
    async close() {
      closing.abort();
      await leading;
      hosts.stop();
      credentials.stop();
      dataPlanes.close();
      await service.stop();
      await store.close();
    },
  };
}
