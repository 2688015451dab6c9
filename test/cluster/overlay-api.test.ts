// The overlay's share of the agent API (real HTTPS, a real SQLite store): a host asks for its subnet before it registers and keeps it, registers its
// VTEP, hears the peers' version with every heartbeat and fetches them; a bad VTEP is refused with an envelope; a control plane without an overlay has none to give.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { HostRegistration } from '../../src/agent/link.js';
import { RemoteLink } from '../../src/agent/remote-link.js';
import { DEFAULT_OVERLAY } from '../../src/instances/hosts/cluster-overlay.js';
import { isBerthError } from '../../src/lib/errors.js';
import { waitFor } from '../../src/lib/wait.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { joinHost, startAgentApiReplica, tlsDirOf, type AgentApiReplica } from '../helpers/agent-api.js';

const JOIN_TOKEN = 'join-' + randomBytes(8).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'berth-overlay-api-'));
const closing: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closing.reverse()) await c().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function replica(name: string, withOverlay: boolean): Promise<AgentApiReplica> {
  const store = new SqliteStore(join(dir, `${name}.db`));
  const r = await startAgentApiReplica({ store, tlsDir: tlsDirOf(dir, name), joinToken: JOIN_TOKEN, onRemoved: async () => undefined, ...(withOverlay && { overlay: DEFAULT_OVERLAY }) });
  closing.push(() => store.close(), () => r.close());
  return r;
}

async function host(r: AgentApiReplica, name: string) {
  const joined = await joinHost(r, JOIN_TOKEN, name);
  const link = new RemoteLink({ endpoints: [r.url], host: name, credential: joined.credential, ca: joined.caCert });
  closing.push(() => link.close());
  return link;
}

const registration = (name: string, address: string, vtepMac?: string): HostRegistration => ({
  name, address, labels: {}, allocatable: { cpu: 1, memoryGB: 1 }, agentVersion: 't', ...(vtepMac && { overlay: { vtepMac } }),
});

test('a host gets its subnet before it registers and keeps it; each heartbeat names the peers\' version, which changes as VTEPs are registered', async () => {
  const r = await replica('cp', true);
  const [h1, h2] = [await host(r, 'h1'), await host(r, 'h2')];
  const asked = await h1.overlay();
  assert.deepEqual(asked, { clusterCidr: '10.252.0.0/16', subnet: '10.252.0.0/24', vni: 1, port: 4789 });
  assert.deepEqual(await h1.overlay(), asked, 'asked again: the same');
  const t1 = await h1.register(registration('h1', '10.250.0.11', '02:be:0a:fa:00:0b'));
  assert.deepEqual(t1.overlay, asked, 'the registration answers the same subnet');
  assert.equal((await h2.register(registration('h2', '10.250.0.12'))).overlay!.subnet, '10.252.1.0/24');
  const before = (await h1.heartbeat())!.peersVersion;
  assert.deepEqual((await h1.peers()).peers.map((p) => p.name), ['h1'], 'h2 has no VTEP yet');
  await h2.register(registration('h2', '10.250.0.12', '02:be:0a:fa:00:0c'));
  const after = await waitFor('a new version', async () => {
    const v = (await h1.heartbeat())!.peersVersion;
    return v !== before && v;
  }, 5000, 50);
  const peers = await h2.peers();
  assert.equal(peers.version, after);
  assert.deepEqual(peers.peers, [
    { name: 'h1', underlayAddress: '10.250.0.11', subnet: '10.252.0.0/24', vtepMac: '02:be:0a:fa:00:0b' },
    { name: 'h2', underlayAddress: '10.250.0.12', subnet: '10.252.1.0/24', vtepMac: '02:be:0a:fa:00:0c' },
  ]);
  await assert.rejects(h1.register(registration('h1', '10.250.0.11', '02:BE:zz')), (e) => isBerthError(e) && e.code === 'InvalidRequestContent' && e.target === 'overlay.vtepMac');
});

test('a control plane without an overlay has none to give: the agent keeps its own subnet', async () => {
  const r = await replica('plain', false);
  const h = await host(r, 'h3');
  assert.equal(await h.overlay(), undefined);
  assert.equal((await h.register(registration('h3', '10.250.0.13'))).overlay, undefined);
  assert.equal((await h.heartbeat())!.peersVersion, undefined);
});
