// The agent contract suite over the network: a control plane's agent API (real HTTPS, a real SQLite store) and an agent over a fake runtime following it through the remote link, its data plane reached through its own HTTPS API with tokens the control plane signed — the suite the in-process link passes (src/server-agent.test.ts), unchanged, plus what only a network link can do (be cut).
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { agentContract } from '../../src/agent/conformance/index.js';
import { RemoteHostDataPlane } from '../../src/agent/dataplane-client.js';
import { startDataPlaneServer, type DataPlaneServer } from '../../src/agent/dataplane-server.js';
import { DATA_PLANE_TOKEN_TTL_S, fingerprintOf } from '../../src/agent/dataplane-wire.js';
import { startFollowing, type FollowingAgent } from '../../src/agent/follower.js';
import type { HostRuntime } from '../../src/agent/host-runtime.js';
import { RemoteLink } from '../../src/agent/remote-link.js';
import { hostOnStore } from '../../src/instances/testing.js';
import { TokenVerifier } from '../../src/lib/signed-token.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { joinHost, startAgentApiReplica, tlsDirOf, type AgentApiReplica } from '../helpers/agent-api.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-remote-agent-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const JOIN_TOKEN = randomBytes(12).toString('hex');
const HOST = 'h1';
let n = 0;

agentContract({
  name: 'remote link over the agent API',
  async start(runtime: HostRuntime) {
    const at = join(dir, `c${n++}`);
    const store = new SqliteStore(`${at}.db`);
    const onStore = hostOnStore(store, HOST);
    const replicaOptions = { store, tlsDir: tlsDirOf(at, 'a'), joinToken: JOIN_TOKEN, leaseTtlSeconds: 5, onRemoved: onStore.onRemoved };
    let replica: AgentApiReplica = await startAgentApiReplica(replicaOptions);
    const joined = await joinHost(replica, JOIN_TOKEN, HOST);
    const certSha256 = fingerprintOf(new X509Certificate(joined.certificate).fingerprint256);

    /** The host: its agent following the control plane through the remote link, and its own HTTPS API. */
    let host: { following: FollowingAgent; server: DataPlaneServer; link: RemoteLink } | undefined;
    const startAgent = async () => {
      const agent = new Agent({ runtime, backoffMs: 20, retryMs: 20, stopGraceSeconds: 0, pollMs: 60_000, usageIntervalMs: 50 });
      const server = await startDataPlaneServer({
        host: HOST, dataPlane: agent, verifier: new TokenVerifier(joined.signingPublicKey),
        tls: { key: joined.keyPem, cert: joined.certificate }, listen: { host: '127.0.0.1', port: 0 },
      });
      const link = new RemoteLink({ endpoints: [replica.url], host: HOST, credential: joined.credential, ca: joined.caCert, minBackoffMs: 20, maxBackoffMs: 200 });
      const registration = () => ({
        name: HOST, address: '127.0.0.1', labels: {}, allocatable: { cpu: 4, memoryGB: 4 }, agentVersion: 'test', dataPlane: { url: server.url, certSha256 },
      });
      host = { following: await startFollowing(link, registration, agent, { retryMs: 20, maxRetryMs: 200, log: () => {} }), server, link };
    };
    const stopAgent = async () => {
      await host?.following.close();
      await host?.server.close();
      await host?.link.close();
      host = undefined;
    };
    await startAgent();
    const dataPlane = () => new RemoteHostDataPlane({
      host: HOST, url: host!.server.url, certSha256, ca: replica.identity.caCertPem,
      mint: (claims) => replica.identity.signer.sign(claims, DATA_PLANE_TOKEN_TTL_S),
    });
    const planes: RemoteHostDataPlane[] = [];
    return {
      ...onStore,
      dataPlane: () => {
        const plane = dataPlane();
        planes.push(plane);
        return plane;
      },
      stopAgent,
      startAgent,
      controlPlaneAway: async () => {
        const port = Number(new URL(replica.url).port);
        await replica.close();
        return {
          back: async () => {
            replica = await startAgentApiReplica({ ...replicaOptions, port });
          },
        };
      },
      close: async () => {
        for (const p of planes) p.close();
        await stopAgent();
        await replica.close();
        await store.close();
      },
    };
  },
});
