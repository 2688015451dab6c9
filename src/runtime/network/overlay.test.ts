// The overlay on real kernel networking: three hosts (network namespaces on an underlay bridge, each with its own NetworkManager and Overlay in a process of its own), sandboxes talking across them.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBerthError } from '../../lib/errors.js';
import { hostNetworkCounts, randomSuffix } from '../container/testing.js';
import type { Sandbox } from '../types.js';
import type { OverlayLocal, OverlayPeer, PeersApplied } from './overlay.js';
import { fetchFrom, kernelSnapshot, sendUdp, serveIn, serveOnHost, TestHost, TestUnderlay, udpReceiver, type Fetched } from './testing/hosts.js';

const sfx = randomSuffix();
const dir = mkdtempSync(join(tmpdir(), 'berth-overlay-'));
const underlay = new TestUnderlay(`bu${sfx}`, `10.250.${100 + Math.floor(Math.random() * 100)}`);
const clusterCidr = '10.253.0.0/16';
const DEVICE = 'berth-vxlan';
const BRIDGE = 'berth0';
const hosts = [1, 2, 3].map((i) => new TestHost(underlay, i, sfx));
const [h1, h2, h3] = hosts;
const subnetOf = (h: TestHost) => `10.253.${h.index}.0/24`;
const locals = new Map<TestHost, OverlayLocal>();
const peerOf = (h: TestHost): OverlayPeer => ({ name: h.netns, underlayAddress: h.underlayAddress, subnet: subnetOf(h), vtepMac: locals.get(h)!.vtepMac });
const children: ChildProcess[] = [];
const sandboxes = new Map<string, Sandbox & { host: TestHost }>();
/** What each host's kernel held before berth touched it. */
const pristine = new Map<TestHost, Record<string, unknown>>();
const baseline = hostNetworkCounts();

/** A sandbox on `host` in `segment` (tags: a is 1, b is 2) with an HTTP server on 8080 answering the client's address. */
async function sandbox(host: TestHost, id: string, segment: string, opts: { ports?: { port: number; protocol: 'TCP' }[]; tag?: number | null } = {}): Promise<Sandbox> {
  const tag = opts.tag === null ? undefined : (opts.tag ?? { a: 1, b: 2 }[segment]);
  const sb = await host.call<Sandbox>('sandbox', { id, segment, tag, ports: opts.ports });
  sandboxes.set(id, { ...sb, host });
  children.push(await serveIn(host, id, 8080));
  return sb;
}
const ipOf = (id: string) => sandboxes.get(id)!.ip;
/** A GET from sandbox `from` to sandbox `to`'s server. */
const get = (from: string, to: string, path = '/', timeoutMs?: number) => fetchFrom(sandboxes.get(from)!.host, from, `http://${ipOf(to)}:8080${path}`, timeoutMs);
async function waitFor(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !ok(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}
const refused = (r: Fetched) => !r.ok && ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'].includes(r.error);

/** The overlay's entries in a host's kernel, as the host sees them. */
function overlayEntries(host: TestHost) {
  const json = (...argv: string[]) => JSON.parse(host.exec(...argv) || '[]') as Record<string, unknown>[];
  return {
    routes: json('ip', '-j', 'route', 'show', 'table', 'all', 'proto', '213').map((r) => `${r.table ?? 'main'} ${r.type ?? ''} ${r.dst} ${r.gateway ?? ''}`).sort(),
    neighbours: json('ip', '-j', 'neigh', 'show', 'dev', DEVICE, 'nud', 'permanent').map((n) => `${n.dst} ${n.lladdr}`).sort(),
    fdb: json('bridge', '-j', 'fdb', 'show', 'dev', DEVICE).filter((e) => e.dst).map((e) => `${e.mac} ${e.dst}`).sort(),
    rules: json('ip', '-j', 'rule', 'show').filter((r) => r.table === '2130').map((r) => `${r.priority} ${r.iif}`),
    device: json('ip', '-j', '-d', 'link', 'show', 'dev', DEVICE).map((l) => `${l.ifindex} ${l.address} ${l.mtu}`),
  };
}

async function startHostNetwork(h: TestHost): Promise<void> {
  await h.call('network', {
    name: 'berth', bridge: BRIDGE, subnet: subnetOf(h), stateDir: join(dir, h.netns, 'state'), ipamDataDir: join(dir, h.netns, 'ipam'),
    hostAddress: h.underlayAddress, mtu: locals.get(h)?.mtu ?? 1450, overlayDevice: DEVICE,
  });
}

async function startOverlay(h: TestHost): Promise<OverlayLocal> {
  const local = await h.call<OverlayLocal>('overlay', { vni: 4242, underlayAddress: h.underlayAddress, localSubnet: subnetOf(h), clusterCidr, bridge: BRIDGE, device: DEVICE });
  locals.set(h, local);
  return local;
}

before(async () => {
  underlay.create();
  for (const h of hosts) {
    await h.start();
    pristine.set(h, kernelSnapshot(h));
  }
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const h of hosts) {
    await h.call('destroyNetwork').catch(() => undefined);
    await h.call('teardownOverlay').catch(() => undefined);
    await h.stop().catch((e) => console.error(`stopping ${h.netns}`, e));
  }
  underlay.remove();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(hostNetworkCounts(), baseline);
});

describe('the overlay between hosts', () => {
  it('joins hosts by VXLAN: a sandbox reaches one of its segment on another host by its private address, and is seen from its own', async () => {
    for (const h of hosts) {
      const local = await startOverlay(h);
      assert.equal(local.mtu, 1450, 'the underlay veth has 1500');
      assert.equal(local.vtepAddress, `10.253.${h.index}.0`);
      await startHostNetwork(h);
    }
    // every host is given every host, itself included (as the control plane lists the Ready ones)
    for (const h of hosts) await h.call('setPeers', hosts.map(peerOf));
    await sandbox(h1, 'a1', 'a');
    await sandbox(h1, 'b1', 'b');
    await sandbox(h2, 'a2', 'a');
    await sandbox(h2, 'b2', 'b');
    await sandbox(h3, 'a3', 'a');
    assert.deepEqual(await get('a1', 'a2'), { ok: true, body: ipOf('a1') }, 'h1 to h2, no NAT on the way');
    assert.deepEqual(await get('a2', 'a1'), { ok: true, body: ipOf('a2') }, 'h2 to h1');
    assert.deepEqual(await get('a3', 'a1'), { ok: true, body: ipOf('a3') }, 'h3 to h1');
    assert.deepEqual(await get('b2', 'b1'), { ok: true, body: ipOf('b2') }, 'segment b too');
    // a large answer crosses in full: the sandboxes' MTU fits the overlay's
    const big = await get('a1', 'a2', '/big');
    assert.ok(big.ok && big.body.length === ipOf('a1').length + 200000, JSON.stringify(big).slice(0, 200));
    assert.match(h1.exec('ip', 'netns', 'exec', 'berth-a1', 'ip', '-o', 'link', 'show', 'eth0'), / mtu 1450 /);
    // the same host's sandboxes still reach each other over the bridge
    await sandbox(h1, 'a1x', 'a');
    assert.deepEqual(await get('a1x', 'a1'), { ok: true, body: ipOf('a1x') });
  });

  it('refuses other segments across hosts at once, both ways: the receiving host decides', async () => {
    // the sending host knows nothing of other hosts' sandboxes: what refuses is the receiver's check of the tag
    for (const [from, to] of [['a1', 'b2'], ['b2', 'a1'], ['b1', 'a2'], ['a2', 'b1'], ['b1', 'a3']]) {
      const r = await get(from, to);
      assert.ok(refused(r), `${from} -> ${to}: ${JSON.stringify(r)}`);
    }
    // a sandbox with no tag (a segment the control plane gave none) reaches no other host
    await sandbox(h2, 'a2untagged', 'a', { tag: null });
    assert.ok(refused(await get('a1', 'a2untagged')), 'to it');
    assert.ok(refused(await get('a2untagged', 'a1')), 'from it');
  });

  it('refuses a sandbox whose tag is another segment\'s on the host, and leaves nothing of it', async () => {
    const before = await h1.call<string[]>('sandboxes');
    await assert.rejects(h1.call('sandbox', { id: 'c1', segment: 'c', tag: 1 }), (e) => isBerthError(e) && e.code === 'NetworkError' && /tag 1 .* segment a/.test(e.message));
    assert.deepEqual(await h1.call<string[]>('sandboxes'), before);
    assert.ok(!h1.exec('ip', 'netns', 'list').includes('berth-c1'));
  });

  it('lets no sandbox borrow another\'s address to pass for its segment', async () => {
    // a1 (segment a) takes b1's address as a second one of its own
    const b1 = ipOf('b1');
    const inA1 = (...argv: string[]) => h1.exec('ip', 'netns', 'exec', 'berth-a1', ...argv);
    inA1('ip', 'addr', 'add', `${b1}/32`, 'dev', 'eth0');
    const receiver = await udpReceiver(h2, 'b2', 9999);
    try {
      // a datagram goes one way (a TCP connection from a borrowed address fails anyway, its answer going to
      // the owner): a1's from b1's address first, then b1's own; once b1's is there, a1's would be too
      sendUdp(h1, 'a1', ipOf('b2'), 9999, 'borrowed', b1);
      sendUdp(h1, 'b1', ipOf('b2'), 9999, 'own');
      await waitFor('the datagram of b1', () => receiver.messages.includes('own'));
      assert.deepEqual(receiver.messages, ['own']);
      // nor can it claim the address by ARP (the host would send b1's traffic to a1)
      inA1('busybox', 'arping', '-U', '-c', '2', '-s', b1, '-I', 'eth0', '10.253.1.1');
      const a1mac = inA1('cat', '/sys/class/net/eth0/address').trim();
      assert.ok(!h1.exec('ip', 'neigh', 'show', b1, 'dev', BRIDGE).includes(a1mac));
    } finally {
      receiver.stop();
      inA1('ip', 'addr', 'del', `${b1}/32`, 'dev', 'eth0');
    }
    assert.deepEqual(await get('b2', 'b1'), { ok: true, body: ipOf('b2') });
  });

  it('keeps the other hosts\' own services out of reach, at every address they have, while hosts reach them', async () => {
    const port = 9000 + Math.floor(Math.random() * 1000);
    children.push(await serveOnHost(h2, port));
    assert.deepEqual(await fetchFrom(h1, undefined, `http://${h2.underlayAddress}:${port}/`), { ok: true, body: 'host' }, 'host to host');
    for (const address of [h2.underlayAddress, `10.253.2.1`, `10.253.2.0`]) {
      const r = await fetchFrom(h1, 'a1', `http://${address}:${port}/`);
      assert.ok(refused(r), `${address}: ${JSON.stringify(r)}`);
    }
  });

  it('publishes a port on its host\'s address to sandboxes of other hosts and segments, who are seen from their own addresses', async () => {
    const port = 10000 + Math.floor(Math.random() * 1000);
    const pub = await h2.call<Sandbox>('sandbox', { id: 'pub2', segment: 'b', tag: 2, ports: [{ port, protocol: 'TCP' }] });
    sandboxes.set('pub2', { ...pub, host: h2 });
    children.push(await serveIn(h2, 'pub2', port));
    assert.deepEqual(await fetchFrom(h1, 'a1', `http://${h2.underlayAddress}:${port}/`), { ok: true, body: ipOf('a1') }, 'segment a, another host');
    assert.deepEqual(await fetchFrom(h3, 'a3', `http://${h2.underlayAddress}:${port}/`), { ok: true, body: ipOf('a3') });
    assert.deepEqual(await fetchFrom(h1, undefined, `http://${h2.underlayAddress}:${port}/`), { ok: true, body: h1.underlayAddress }, 'a host');
    // its private address stays its segment's
    assert.ok(refused(await fetchFrom(h1, 'a1', `http://${pub.ip}:${port}/`)));
  });

  it('removes a peer that leaves (route, neighbour, FDB entry), so traffic to it fails at once, and takes it back', async () => {
    const h3mac = locals.get(h3)!.vtepMac;
    const applied = await h1.call<PeersApplied>('setPeers', [h1, h2].map(peerOf));
    assert.equal(applied.peers, 1);
    const e = overlayEntries(h1);
    assert.deepEqual(e.routes, [
      `2130  ${h2.underlayAddress} 10.253.2.0`,
      'main  10.253.2.0/24 10.253.2.0',
      'main unreachable 10.253.0.0/16 ',
    ].sort());
    assert.deepEqual(e.neighbours, [`10.253.2.0 ${locals.get(h2)!.vtepMac}`]);
    assert.deepEqual(e.fdb, [`${locals.get(h2)!.vtepMac} ${h2.underlayAddress}`]);
    assert.ok(!JSON.stringify(e).includes(h3mac) && !JSON.stringify(e).includes('10.253.3.'));
    const r = await get('a1', 'a3');
    assert.ok(!r.ok && r.error === 'EHOSTUNREACH', JSON.stringify(r));
    // h3 still has h1 as a peer, but h1 drops VXLAN from hosts it does not know
    const back = await get('a3', 'a1', '/', 1000);
    assert.ok(!back.ok, JSON.stringify(back));
    await h1.call('setPeers', hosts.map(peerOf));
    assert.deepEqual(await get('a1', 'a3'), { ok: true, body: ipOf('a1') });
  });

  it('changes nothing when given the same peers again', async () => {
    const before = kernelSnapshot(h1);
    const entries = overlayEntries(h1);
    assert.deepEqual(await h1.call<PeersApplied>('setPeers', hosts.map(peerOf)), { peers: 2, changes: 0 });
    assert.deepEqual(overlayEntries(h1), entries);
    assert.deepEqual(kernelSnapshot(h1), before);
    assert.equal(entries.routes.length, 5, 'two peers: two routes each, and the cluster CIDR unreachable');
    assert.equal(entries.neighbours.length, 2);
    assert.equal(entries.fdb.length, 2);
    assert.equal(entries.rules.length, 1);
  });

  it('makes its device again when it was deleted, with everything on it', async () => {
    const entries = overlayEntries(h3);
    h3.exec('ip', 'link', 'del', DEVICE);
    assert.ok(!(await get('a3', 'a1', '/', 1000)).ok);
    const applied = await h3.call<PeersApplied>('setPeers', hosts.map(peerOf));
    assert.equal(applied.changes, 8, 'per peer: its FDB entry, neighbour and two routes');
    const again = overlayEntries(h3);
    assert.deepEqual({ ...again, device: [] }, { ...entries, device: [] });
    assert.notDeepEqual(again.device, entries.device, 'a new device (ifindex)');
    assert.deepEqual(await get('a3', 'a1'), { ok: true, body: ipOf('a3') });
  });

  it('refuses bad peers with a clear error and changes nothing', async () => {
    const before = kernelSnapshot(h1);
    await assert.rejects(h1.call('setPeers', [peerOf(h2), { ...peerOf(h3), subnet: '10.99.0.0/24' }]), (e) => isBerthError(e) && e.code === 'NetworkError' && e.target === 'peers[1].subnet');
    assert.deepEqual(kernelSnapshot(h1), before);
  });

  it('is adopted by a restarted host process, which repairs what drifted and leaves alone what is not berth\'s', async () => {
    const entries = overlayEntries(h1);
    // kill -9 of the host's process: the overlay carries on without it
    await h1.kill();
    assert.deepEqual(await get('a2', 'a1'), { ok: true, body: ipOf('a2') }, 'while the process is down');
    // meanwhile: someone removes a neighbour, adds a stray FDB remote, and routes and a rule of their own
    h1.exec('ip', 'neigh', 'del', '10.253.2.0', 'dev', DEVICE);
    h1.exec('bridge', 'fdb', 'append', '02:be:00:00:00:99', 'dev', DEVICE, 'dst', '192.0.2.99', 'self', 'permanent');
    h1.exec('ip', 'route', 'add', '192.0.2.0/24', 'dev', DEVICE);
    h1.exec('ip', 'route', 'add', '198.51.100.0/24', 'via', underlay.gateway);
    h1.exec('ip', 'rule', 'add', 'from', '192.0.2.1', 'lookup', '7', 'pref', '100');
    await h1.startProcess();
    await startOverlay(h1);
    await startHostNetwork(h1);
    const applied = await h1.call<PeersApplied>('setPeers', hosts.map(peerOf));
    assert.equal(applied.changes, 2, 'the neighbour back, the stray FDB entry out');
    assert.deepEqual(overlayEntries(h1), entries, 'the same device (ifindex), routes, neighbours, FDB entries and rule');
    assert.match(h1.exec('ip', 'route', 'show', '192.0.2.0/24'), /dev berth-vxlan/);
    assert.match(h1.exec('ip', 'route', 'show', '198.51.100.0/24'), /via/);
    assert.match(h1.exec('ip', 'rule', 'show', 'pref', '100'), /lookup 7/);
    h1.exec('ip', 'route', 'del', '192.0.2.0/24', 'dev', DEVICE);
    h1.exec('ip', 'route', 'del', '198.51.100.0/24');
    h1.exec('ip', 'rule', 'del', 'pref', '100');
    assert.deepEqual(await h1.call<PeersApplied>('setPeers', hosts.map(peerOf)), { peers: 2, changes: 0 });
    assert.deepEqual(await get('a1', 'a2'), { ok: true, body: ipOf('a1') });
    assert.ok(refused(await get('a1', 'b2')), 'segments hold after the restart');
  });

  it('tears down to the kernel state each host had before', async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const h of hosts) {
      await h.call('destroyNetwork');
      await h.call('teardownOverlay');
      await h.call('teardownOverlay');
      assert.deepEqual(kernelSnapshot(h), pristine.get(h), h.netns);
    }
  });
});
