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
import { Election, type Leadership } from './store/election.js';
import { openStore } from './store/open.js';
import { LOCAL_HOST } from './server-agent.js';
import { stopWaitMs, type Core, type ServerConfig } from './server.js';

/** The reconcilers' election: its lease's TTL bounds how long a dead leader's work waits for the next one. */
export const LEADER_LEASE_SECONDS = 3;

const untilAborted = (...signals: AbortSignal[]) =>
  new Promise<void>((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve();
    for (const s of signals) s.addEventListener('abort', () => resolve(), { once: true });
  });

export async function startClusterCore(cfg: ServerConfig): Promise<Core> {
  const log = (m: string) => console.error(`berth: ${m}`);
  const store = await openStore(cfg.store!);
  const replica = `${hostname()}/${process.pid}`;
  const identity = await ensureClusterIdentity(store, cfg.tlsDir);
  const credentials = new AgentCredentials(store, cfg.joinTokens);
  const overlay = await ensureOverlaySettings(store, { clusterCidr: cfg.clusterCidr, hostPrefix: cfg.hostSubnetPrefix, vni: DEFAULT_OVERLAY.vni, port: DEFAULT_OVERLAY.port });
  if (!credentials.joinable) log('no join token is configured (--join-token): no new host can join this cluster');
  let placer: Placer | undefined;
  let rescheduler: Rescheduler | undefined;
  const hosts = new HostsView(store, () => {
    placer?.hostsChanged();
    rescheduler?.hostsChanged();
  });
  const dataPlanes = new RemoteDataPlanes(hosts, (h) => new RemoteHostDataPlane({
    host: h.name, url: h.dataPlane!.url, certSha256: h.dataPlane!.certSha256, ca: identity.caCertPem,
    mint: (claims) => identity.signer.sign(claims, DATA_PLANE_TOKEN_TTL_S),
  }));
  const service = new InstancesService(store, (host) => dataPlanes.of(host), {
    dnsZone: cfg.dnsZone, location: cfg.location, stopWaitMs: stopWaitMs(cfg), placeOn: UNPLACED, hostLeaseSeconds: cfg.hostLeaseSeconds, replica, overlay,
  });
  await service.start();
  await hosts.ready();

  // One replica at a time runs the reconcilers; the others stand by until its lease is gone.
  const closing = new AbortController();
  const election = new Election(store, RECONCILERS_ELECTION);
  const lead = async () => {
    while (!closing.signal.aborted) {
      let leadership: Leadership;
      try {
        leadership = await election.campaign({ replica }, { ttlSeconds: LEADER_LEASE_SECONDS, signal: closing.signal });
      } catch (e) {
        if (closing.signal.aborted) return;
        log(`campaigning for the reconcilers failed (again in 1 s): ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      log(`${replica} leads: running the reconcilers`);
      placer = service.placer(hosts, leadership.fence, { log });
      rescheduler = service.rescheduler(hosts, leadership.fence, { log });
      placer.start();
      rescheduler.start();
      await untilAborted(leadership.signal, closing.signal);
      const ended = [rescheduler, placer];
      placer = undefined;
      rescheduler = undefined;
      for (const r of ended) await r.stop();
      if (closing.signal.aborted) {
        await leadership.resign().catch(() => undefined);
        return;
      }
      log(`${replica} no longer leads: ${(leadership.signal.reason as Error)?.message ?? 'its lease is gone'}`);
    }
  };
  const leading = lead();

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
      dataPlanes.close();
      await service.stop();
      await store.close();
    },
  };
}
