// The remote link against the control plane's agent API (real HTTPS, a real SQLite store, two replicas): join,
// credentials scoped to one host, host leases, specs followed from a revision across a replica's end, statuses
// and removals only for what is placed on the host, held ports under the host's own name.
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { SpecEvent } from '../../src/agent/link.js';
import { joinCluster, RemoteLink, type JoinResponse } from '../../src/agent/remote-link.js';
import type { GroupStatus } from '../../src/agent/types.js';
import { ensureClusterIdentity, type ClusterIdentity } from '../../src/instances/hosts/identity.js';
import { heldPortsKey, hostSpecKey, statusKey } from '../../src/instances/keys.js';
import { newKeyAndCsr } from '../../src/lib/tls.js';
import { waitFor } from '../../src/lib/wait.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { startAgentApiReplica, tlsDirOf, type AgentApiReplica as Replica } from '../helpers/agent-api.js';

const JOIN_TOKEN = 'join-' + randomBytes(8).toString('hex');
const TENANT_TOKEN = 'tenant-' + randomBytes(8).toString('hex');

let dir: string;
let store: SqliteStore;
let identity: ClusterIdentity;
const removed: string[] = [];
const replicas: Replica[] = [];
const links: RemoteLink[] = [];
/** A remote link closed after the tests whatever they did (a failed test leaves none reconnecting). */
const linkOf = (o: ConstructorParameters<typeof RemoteLink>[0]) => {
  const link = new RemoteLink(o);
  links.push(link);
  return link;
};

async function startReplica(name: string): Promise<Replica> {
  const r = await startAgentApiReplica({
    store, tlsDir: tlsDirOf(dir, name), joinToken: JOIN_TOKEN, tenantToken: TENANT_TOKEN, leaseTtlSeconds: 2, holder: name,
    onRemoved: async (host, uid) => void removed.push(`${host}/${uid}`),
  });
  replicas.push(r);
  return r;
}

const specPut = (host: string, uid: string, generation: number) => store.put(hostSpecKey(host, uid), { uid, generation, spec: { image: `img:${generation}` } });
const status = (uid: string, generation = 1): GroupStatus => ({ uid, generation, provisioning: 'Succeeded', state: 'Running', containers: {}, events: [] });

let a: Replica;
let b: Replica;
let joined: JoinResponse;
let ca: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-agent-link-'));
  store = new SqliteStore(join(dir, 'berth.db'));
  a = await startReplica('a');
  b = await startReplica('b');
  identity = await ensureClusterIdentity(store, join(dir, 'tls-a'));
  ca = identity.caCertPem;
  const { csrPem } = await newKeyAndCsr('h1');
  joined = await joinCluster({ endpoints: [a.url], token: JOIN_TOKEN, ca, name: 'h1', addresses: ['10.250.0.11', 'h1.example'], csr: csrPem });
});

after(async () => {
  for (const l of links) await l.close();
  for (const r of replicas) await r.close().catch(() => undefined);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('replicas share one cluster CA and signing key through the store', () => {
  assert.equal(readFileSync(join(dir, 'tls-a', 'ca.crt'), 'utf8'), readFileSync(join(dir, 'tls-b', 'ca.crt'), 'utf8'));
  assert.equal(joined.caCert, identity.caCertPem);
  assert.equal(joined.signingPublicKey, identity.publicKeyPem);
});

test('a join with the join token gets a credential and a certificate the cluster CA signed for the given addresses only', async () => {
  assert.equal(joined.host, 'h1');
  assert.match(joined.credential, /^[A-Za-z0-9_-]{43}$/);
  const cert = new X509Certificate(joined.certificate);
  assert.ok(cert.verify(new X509Certificate(ca).publicKey), 'signed by the cluster CA');
  assert.equal(cert.subjectAltName, 'IP Address:10.250.0.11, DNS:h1.example');
  assert.match(cert.subject, /CN=berth-agent:h1/);
  const stored = await store.get<{ sha256: string }>('/agentcreds/h1');
  assert.ok(stored && !JSON.stringify(stored.value).includes(joined.credential), 'only a hash is kept');
});

test('joining takes the join token only, refuses bad requests with an envelope, and never the in-process host name', async () => {
  const { csrPem } = await newKeyAndCsr('x');
  const tryJoin = (token: string, name: string, extra: Record<string, unknown> = {}) =>
    joinCluster({ endpoints: [a.url], token, ca, name, addresses: ['10.0.0.1'], csr: csrPem, ...extra });
  for (const [token, name, code] of [
    ['wrong', 'h9', 'AuthenticationFailed'], [TENANT_TOKEN, 'h9', 'AuthenticationFailed'], [JOIN_TOKEN, 'local', 'Conflict'],
    [JOIN_TOKEN, 'UPPER', 'InvalidRequestContent'], [JOIN_TOKEN, 'a'.repeat(64), 'InvalidRequestContent'],
  ])
    await assert.rejects(tryJoin(token, name), (e: Error & { code: string }) => e.code === code || assert.fail(`${token}/${name}: ${e.code} ${e.message}`));
  await assert.rejects(tryJoin(JOIN_TOKEN, 'h9', { csr: 'not a csr' }), /'csr' must be one PEM/);
  await assert.rejects(tryJoin(JOIN_TOKEN, 'h9', { addresses: ['bad address!'] }), /addresses\[0\]/);
  assert.equal(await store.get('/agentcreds/h9'), undefined, 'nothing made by a refused join');
});

test("a host's credential works for its own host only; tenants' tokens never reach the agent API, nor credentials the ARM API", async () => {
  const reg = { name: 'h2', address: '10.250.0.12', labels: {}, allocatable: { cpu: 2, memoryGB: 2 }, agentVersion: 't' };
  const asH1onH2 = linkOf({ endpoints: [a.url], host: 'h2', credential: joined.credential, ca });
  await assert.rejects(asH1onH2.register(reg), (e: Error & { code: string; status: number }) => e.code === 'AuthenticationFailed' && e.status === 401);
  await assert.rejects(asH1onH2.reportStatuses([status('aaaaaaaaaaaa')]), /AuthenticationFailed|not host 'h2''s/);
  await asH1onH2.close();
  const asTenant = linkOf({ endpoints: [a.url], host: 'h1', credential: TENANT_TOKEN, ca });
  await assert.rejects(asTenant.heartbeat(), (e: Error & { code: string }) => e.code === 'AuthenticationFailed');
  await asTenant.close();
  const arm = await new Promise<number>((resolve, reject) =>
    request(`${a.url}/subscriptions?api-version=2022-12-01`, { ca, headers: { authorization: `Bearer ${joined.credential}` } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject).end());
  assert.equal(arm, 401);
  assert.equal(await store.get('/hosts/h2'), undefined);
});

test('register records the host and makes it Ready; without heartbeats it is NotReady within the lease TTL', async () => {
  const link = linkOf({ endpoints: [a.url], host: 'h1', credential: joined.credential, ca });
  const reg = { name: 'h1', address: '10.250.0.11', zone: 'z1', labels: { disk: 'ssd' }, allocatable: { cpu: 2, memoryGB: 3 }, dataPlane: { url: 'https://10.250.0.11:8790', certSha256: 'a'.repeat(64) }, agentVersion: 'test' };
  assert.deepEqual(await link.register(reg), { leaseTtlMs: 2000, heartbeatMs: 125 });
  const host = (await store.get<Record<string, unknown>>('/hosts/h1'))!.value;
  assert.equal(host.zone, 'z1');
  assert.deepEqual(host.allocatable, { cpu: 2, memoryGB: 3 });
  assert.ok(await store.get('/hostleases/h1'), 'Ready');
  // heartbeats through the other replica keep it Ready past the first replica's sweep of its lease
  const viaB = linkOf({ endpoints: [b.url], host: 'h1', credential: joined.credential, ca });
  for (let i = 0; i < 8; i++) {
    await viaB.heartbeat();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(await store.get('/hostleases/h1'), `still Ready after ${(i + 1) * 0.5} s of heartbeats through b`);
  }
  await waitFor('NotReady after the heartbeats stop', async () => !(await store.get('/hostleases/h1')), 6000);
  await assert.rejects(link.register({ ...reg, allocatable: { cpu: -1, memoryGB: 1 } }), /allocatable\.cpu/);
  await link.close();
  await viaB.close();
});

test('specs are followed from a revision: a reset, then each change once, in order, across the end of the replica followed', async () => {
  await specPut('h1', 'aaaaaaaaaaa1', 1);
  await specPut('h2', 'bbbbbbbbbbb1', 1); // another host's: never seen by h1
  const c = await startReplica('c');
  const link = linkOf({ endpoints: [c.url, a.url], host: 'h1', credential: joined.credential, ca, minBackoffMs: 50, maxBackoffMs: 200 });
  const events: SpecEvent[] = [];
  const errors: Error[] = [];
  const stop = link.watchSpecs(0, (e) => events.push(e), (e) => errors.push(e));
  await waitFor('the reset', () => events.length >= 1);
  assert.equal(events[0].type, 'reset');
  assert.deepEqual((events[0] as Extract<SpecEvent, { type: 'reset' }>).specs.map((s) => s.uid), ['aaaaaaaaaaa1']);
  await specPut('h1', 'aaaaaaaaaaa2', 1);
  await specPut('h1', 'aaaaaaaaaaa1', 2);
  await waitFor('two puts', () => events.length >= 3);
  assert.equal(link.endpoint, c.url);
  await c.close(); // the replica goes: the link moves to the next one and resumes after the last revision it delivered
  await store.delete(hostSpecKey('h1', 'aaaaaaaaaaa2'));
  await specPut('h1', 'aaaaaaaaaaa3', 1);
  await specPut('h2', 'bbbbbbbbbbb2', 1);
  await waitFor('the changes made while it moved', () => events.length >= 5);
  await new Promise((r) => setTimeout(r, 300)); // nothing more may come
  stop();
  assert.equal(link.endpoint, a.url);
  assert.ok(errors.length >= 1, 'the broken stream was told');
  const seen = events.slice(1).map((e) => (e.type === 'put' ? `put ${e.placed.uid} g${e.placed.generation}` : e.type === 'delete' ? `delete ${e.uid}` : 'reset'));
  assert.deepEqual(seen, ['put aaaaaaaaaaa2 g1', 'put aaaaaaaaaaa1 g2', 'delete aaaaaaaaaaa2', 'put aaaaaaaaaaa3 g1']);
  const revs = events.map((e) => e.revision);
  assert.deepEqual(revs, [...revs].sort((x, y) => x - y), 'in revision order');
  await link.close();
});

test('a revision compacted away while the host was gone starts over with a reset', async () => {
  const link = linkOf({ endpoints: [a.url], host: 'h1', credential: joined.credential, ca });
  const first: SpecEvent[] = [];
  const stop = link.watchSpecs(0, (e) => first.push(e), () => {});
  await waitFor('the reset', () => first.length >= 1);
  stop();
  const from = first[0].revision;
  await specPut('h1', 'aaaaaaaaaaa4', 1);
  await specPut('h1', 'aaaaaaaaaaa4', 2);
  await store.compact(await store.revision());
  const events: SpecEvent[] = [];
  const stop2 = link.watchSpecs(from, (e) => events.push(e), () => {});
  await waitFor('a reset after compaction', () => events.length >= 1);
  stop2();
  assert.equal(events[0].type, 'reset');
  assert.ok((events[0] as Extract<SpecEvent, { type: 'reset' }>).specs.some((s) => s.uid === 'aaaaaaaaaaa4' && s.generation === 2));
  await link.close();
});

test("statuses are written only for groups placed on the reporting host, with the host's name", async () => {
  await specPut('h1', 'aaaaaaaaaaa5', 1);
  const link = linkOf({ endpoints: [a.url], host: 'h1', credential: joined.credential, ca });
  await link.reportStatuses([status('aaaaaaaaaaa5'), status('bbbbbbbbbbb1'), status('ccccccccccc1')]);
  assert.equal((await store.get<GroupStatus & { host: string }>(statusKey('aaaaaaaaaaa5')))?.value.host, 'h1');
  assert.equal(await store.get(statusKey('bbbbbbbbbbb1')), undefined, "h2's group");
  assert.equal(await store.get(statusKey('ccccccccccc1')), undefined, 'placed nowhere');
  // more than one request's worth and more than one transaction's: all of them land
  const many = Array.from({ length: 450 }, (_, i) => `d${String(i).padStart(11, '0')}`);
  for (const uid of many) await specPut('h1', uid, 1);
  await link.reportStatuses(many.map((uid) => status(uid)));
  assert.equal((await store.list('/status/d')).length, 450);
  await link.close();
});

test('a removal report finishes the deletion only once the group is no longer placed on the host', async () => {
  const link = linkOf({ endpoints: [a.url], host: 'h1', credential: joined.credential, ca });
  await specPut('h1', 'aaaaaaaaaaa6', 1);
  await link.reportRemoved('aaaaaaaaaaa6');
  assert.deepEqual(removed, [], 'still placed: ignored');
  await store.delete(hostSpecKey('h1', 'aaaaaaaaaaa6'));
  await link.reportRemoved('aaaaaaaaaaa6');
  assert.deepEqual(removed, ['h1/aaaaaaaaaaa6']);
  await link.close();
});

test("a host's held ports land in the store under its own name only; a bad list is refused with an envelope and changes nothing", async () => {
  const link = linkOf({ endpoints: [a.url], host: 'h1', credential: joined.credential, ca });
  await link.reportHeldPorts([{ protocol: 'TCP', port: 22 }, { protocol: 'UDP', port: 53 }]);
  assert.deepEqual((await store.get<{ ports: string[] }>(heldPortsKey('h1')))?.value.ports, ['TCP/22', 'UDP/53']);
  for (const bad of [[{ protocol: 'SCTP', port: 22 }], [{ protocol: 'TCP', port: 0 }], [{ protocol: 'TCP', port: 70000 }], Array.from({ length: 4097 }, (_, i) => ({ protocol: 'TCP', port: (i % 65535) + 1 }))])
    await assert.rejects(link.reportHeldPorts(bad as never), (e: Error & { code: string; status: number }) => e.code === 'InvalidRequestContent' && e.status === 400);
  assert.deepEqual((await store.get<{ ports: string[] }>(heldPortsKey('h1')))?.value.ports, ['TCP/22', 'UDP/53']);
  const asH1onH2 = linkOf({ endpoints: [a.url], host: 'h2', credential: joined.credential, ca });
  await assert.rejects(asH1onH2.reportHeldPorts([{ protocol: 'TCP', port: 80 }]), (e: Error & { code: string }) => e.code === 'AuthenticationFailed');
  assert.equal(await store.get(heldPortsKey('h2')), undefined);
  await link.close();
  await asH1onH2.close();
});

test('a host that joins again gets a new credential, taken at once by every replica; the old one stops working', async () => {
  const reg = { name: 'h3', address: '10.250.0.13', labels: {}, allocatable: { cpu: 1, memoryGB: 1 }, agentVersion: 't' };
  const join = async () => joinCluster({ endpoints: [a.url], token: JOIN_TOKEN, ca, name: 'h3', addresses: ['10.250.0.13'], csr: (await newKeyAndCsr('h3')).csrPem });
  const onB = (credential: string) => linkOf({ endpoints: [b.url], host: 'h3', credential, ca });
  const first = await join();
  // issued on a, used on b straight away
  await onB(first.credential).register(reg);
  const second = await join();
  await onB(second.credential).heartbeat();
  const old = onB(first.credential);
  await waitFor('the old credential refused', () => old.heartbeat().then(() => false, (e: Error & { code: string }) => e.code === 'AuthenticationFailed'), 5000);
  // and stays refused on both replicas
  await assert.rejects(linkOf({ endpoints: [a.url], host: 'h3', credential: first.credential, ca }).heartbeat(), (e: Error & { code: string }) => e.code === 'AuthenticationFailed');
  await assert.rejects(old.heartbeat(), (e: Error & { code: string }) => e.code === 'AuthenticationFailed');
});
