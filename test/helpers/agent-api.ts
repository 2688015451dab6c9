// Test fixture: a control plane replica's agent API (real HTTPS on loopback, the ARM edge's agent scopes) over a store the test holds, and a host joined to it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { joinCluster, type JoinResponse } from '../../src/agent/remote-link.js';
import { Authenticator } from '../../src/arm/auth.js';
import { createArmServer } from '../../src/arm/server.js';
import { registerAgentRoutes } from '../../src/instances/hosts/agent-api.js';
import { AgentCredentials } from '../../src/instances/hosts/credentials.js';
import { overlayPeers } from '../../src/instances/hosts/cluster-overlay.js';
import { HostGateway, type HostGatewayOptions } from '../../src/instances/hosts/gateway.js';
import { HostsView } from '../../src/instances/hosts/hosts-view.js';
import { ensureClusterIdentity, type ClusterIdentity } from '../../src/instances/hosts/identity.js';
import { ensureServerCert, newKeyAndCsr } from '../../src/lib/tls.js';
import type { Store } from '../../src/store/store.js';

export interface AgentApiReplica {
  app: FastifyInstance;
  url: string;
  gateway: HostGateway;
  identity: ClusterIdentity;
  close(): Promise<void>;
}

export interface AgentApiReplicaOptions extends HostGatewayOptions {
  store: Store;
  /** Where the replica keeps its CA files (the cluster's, from the store, once another replica made them). */
  tlsDir: string;
  joinToken: string;
  /** A tenant's token the ARM edge takes (never the agent API). */
  tenantToken?: string;
  /** A port to listen on again (a replica that comes back); default a free one. */
  port?: number;
}

export async function startAgentApiReplica(o: AgentApiReplicaOptions): Promise<AgentApiReplica> {
  const identity = await ensureClusterIdentity(o.store, o.tlsDir);
  const tls = await ensureServerCert(o.tlsDir, ['127.0.0.1']);
  const credentials = new AgentCredentials(o.store, [o.joinToken]);
  const gateway = new HostGateway(o.store, o);
  const tenants = new Authenticator([o.tenantToken ?? randomBytes(16).toString('hex')], [], randomBytes(32));
  const app = createArmServer({ auth: tenants, agents: credentials, https: { key: readFileSync(tls.key), cert: readFileSync(tls.cert) } });
  // with an overlay (gateway option `overlay`), its peers from a view of the hosts, as a cluster's replica has
  const hosts = o.overlay && new HostsView(o.store);
  await hosts?.ready();
  registerAgentRoutes(app, { gateway, credentials, identity, reservedHosts: ['local'], ...(hosts && { overlayPeers: () => overlayPeers(hosts.all()) }) });
  await app.listen({ host: '127.0.0.1', port: o.port ?? 0 });
  const addr = app.server.address() as { port: number };
  return {
    app, url: `https://127.0.0.1:${addr.port}`, gateway, identity,
    async close() {
      hosts?.stop();
      credentials.stop();
      gateway.close();
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

/** Joins host `name` (at 127.0.0.1) through `replica` with its join token: the host's credential and the cluster CA. */
export async function joinHost(replica: AgentApiReplica, joinToken: string, name: string, addresses = ['127.0.0.1']): Promise<JoinResponse & { keyPem: string }> {
  const { keyPem, csrPem } = await newKeyAndCsr(`berth-agent:${name}`);
  const joined = await joinCluster({ endpoints: [replica.url], token: joinToken, ca: replica.identity.caCertPem, name, addresses, csr: csrPem });
  return { ...joined, keyPem };
}

export const tlsDirOf = (dir: string, replica: string) => join(dir, `tls-${replica}`);
