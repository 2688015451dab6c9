// Segments and host protection of a bridge's sandboxes (isolation.ts through NetworkManager): real kernel, processes in the sandboxes' namespaces.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { berthNftObjects, hostNetworkCounts, hostVethOf, randomSuffix } from '../container/testing.js';
import { NetworkManager, type NetworkManagerOptions } from './network.js';

const baseline = hostNetworkCounts();
const sfx = randomSuffix();
const dir = mkdtempSync(join(tmpdir(), 'berth-iso-'));
const www = join(dir, 'www');
mkdirSync(www);
writeFileSync(join(www, 'index.html'), 'hello\n');
const octet = 1 + Math.floor(Math.random() * 120) * 2;
const gateway = `10.213.${octet}.1`;
const opts = (name: string, subnet: string, extra: Partial<NetworkManagerOptions> = {}): NetworkManagerOptions => ({
  name: `berth-iso-${name}-${sfx}`, bridge: `b${name}${sfx}`, subnet, stateDir: join(dir, name, 'state'), ipamDataDir: join(dir, name, 'ipam'), ...extra,
});
// published on the gateway: an address of the host the sandboxes themselves can send to
const nm = new NetworkManager(opts('i', `10.213.${octet}.0/24`, { hostAddress: gateway }));
const children: ChildProcess[] = [];
const servers: Server[] = [];
const port = () => 20000 + Math.floor(Math.random() * 10000);

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) s.close();
  for (const m of [nm, other].filter(Boolean)) {
    await m.stopPool().catch(() => undefined);
    for (const id of await m.list()) await m.teardown(id).catch((e) => console.error('teardown', id, e));
    await m.destroy().catch(() => undefined);
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `argv` in the sandbox's network namespace (`berth-<id>`, or the netns itself) with the host's busybox. */
const inSandbox = (id: string, argv: string[]) => ['netns', 'exec', id.startsWith('berth-') ? id : `berth-${id}`, '/bin/busybox', ...argv];

/** Sends one UDP datagram from the sandbox (`berth-<id>`, or the netns itself), or the host (busybox's nc has no UDP). */
const sendUdp = (id: string | undefined, ip: string, port: number, text: string) =>
  execFileSync(id ? 'ip' : process.execPath, [...(id ? ['netns', 'exec', id.startsWith('berth-') ? id : `berth-${id}`, process.execPath] : []), '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.send(${JSON.stringify(text)}, ${port}, ${JSON.stringify(ip)}, () => s.close());`]);

/** An HTTP server in the sandbox, on `port`; resolves once the host reaches it. */
async function serveIn(id: string, ip: string, port: number): Promise<void> {
  const child = spawn('ip', inSandbox(id, ['httpd', '-f', '-p', String(port), '-h', www]), { stdio: 'ignore' });
  children.push(child);
  await waitFor(`httpd in ${id}`, async () => (await fetchFrom(undefined, `http://${ip}:${port}/`)).ok);
}

/** wget from the sandbox `id` (or the host); a dropped connection fails after 3 s (busybox's own -T crashes it). */
function fetchFrom(id: string | undefined, url: string): Promise<{ ok: boolean; out: string; err: string }> {
  const argv = ['wget', '-q', '-O', '-', url];
  const [file, args] = id ? ['ip', inSandbox(id, argv)] : ['/bin/busybox', argv];
  return new Promise((resolve) => execFile(file, args, { timeout: 3_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => resolve({ ok: !err, out: stdout, err: stderr })));
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Whether a datagram `send` sends to a UDP port of the sandbox arrives. A datagram goes one way
 * (a TCP connection fails as soon as either way is dropped): sent first, then one from the host;
 * once the host's is there, the first would be too.
 */
async function udpArrives(id: string, ip: string, send: (port: number) => void): Promise<boolean> {
  const port = 9000 + Math.floor(Math.random() * 1000);
  const receiver = spawn('ip', ['netns', 'exec', `berth-${id}`, process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => console.log(String(m)));
    s.bind(${port}, () => console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(receiver);
  try {
    let got = '';
    receiver.stdout!.on('data', (d) => (got += d));
    await waitFor('the receiver', async () => got.includes('ready'));
    send(port);
    sendUdp(undefined, ip, port, 'from-host');
    await waitFor('the datagram of the host', async () => got.includes('from-host'));
    return got.includes('probe');
  } finally {
    receiver.kill('SIGKILL');
  }
}

/** A TCP server of the host itself, answering "host". */
async function hostService(host: string): Promise<number> {
  const server = createServer((c) => c.end('HTTP/1.0 200 OK\r\n\r\nhost\n'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

let other: NetworkManager;

describe('isolation of sandboxes', () => {
  it('lets sandboxes of one segment talk over the bridge, and no other', async () => {
    await nm.setup('a1', [], 'a');
    const a2 = await nm.setup('a2', [], 'a');
    const b1 = await nm.setup('b1', [], 'b');
    await serveIn('a2', a2.ip, 8080);
    await serveIn('b1', b1.ip, 8080);
    assert.equal((await fetchFrom('a1', `http://${a2.ip}:8080/`)).out, 'hello\n', 'the same segment');
    assert.equal((await fetchFrom('a1', `http://${b1.ip}:8080/`)).ok, false, 'another segment');
    assert.equal((await fetchFrom('b1', `http://${a2.ip}:8080/`)).ok, false, 'another segment, the other way');
    // a sandbox moved to another segment (a group's segment is written again) follows it
    await nm.setup('b1', [], 'a');
    assert.equal((await fetchFrom('a1', `http://${b1.ip}:8080/`)).out, 'hello\n');
    await nm.setup('b1', [], 'b');
    assert.equal((await fetchFrom('a1', `http://${b1.ip}:8080/`)).ok, false);
  });

  it('lets a sandbox reach another segment only through a port published on the host address', async () => {
    const p = port();
    const pub = await nm.setup('b-pub', [{ port: p, protocol: 'TCP' }], 'b');
    await serveIn('b-pub', pub.ip, p);
    // with br_netfilter on (the usual, and docker's), a DNAT back into the bridge is bridged; without, routed
    const callIptables = '/proc/sys/net/bridge/bridge-nf-call-iptables';
    const was = readFileSync(callIptables, 'utf8').trim();
    try {
      for (const mode of ['1', '0']) {
        writeFileSync(callIptables, mode);
        assert.equal((await fetchFrom('a1', `http://${gateway}:${p}/`)).out, 'hello\n', `the published port answers everyone (bridge-nf-call-iptables ${mode})`);
        assert.equal((await fetchFrom('a1', `http://${pub.ip}:${p}/`)).ok, false, `its own address does not (bridge-nf-call-iptables ${mode})`);
      }
    } finally {
      writeFileSync(callIptables, was);
    }
  });

  it('drops what a sandbox routes through the gateway to another segment', async () => {
    const b1 = (await nm.get('b1'))!;
    // a sandbox that sends b1's traffic to the gateway's MAC: the host would route it back into the bridge
    execFileSync('ip', ['netns', 'exec', 'berth-a1', 'ip', 'route', 'add', `${b1.ip}/32`, 'via', gateway]);
    assert.equal(await udpArrives('b1', b1.ip, (p) => sendUdp('a1', b1.ip, p, 'probe')), false);
  });

  it('keeps the host itself out of reach, at every address, loopback included', async () => {
    const a1 = (await nm.get('a1'))!;
    const anyPort = await hostService('0.0.0.0');
    assert.equal((await fetchFrom(undefined, `http://${gateway}:${anyPort}/`)).out, 'host\n', 'the host reaches its own service');
    // refused at once, as a closed port is (not left to time out)
    assert.match((await fetchFrom('a1', `http://${gateway}:${anyPort}/`)).err, /Connection refused/, 'a sandbox does not');
    // a sandbox sending 127.0.0.2 to the gateway (what a raw socket can do): route_localnet, which
    // publishing on loopback turns on, lets the host take it as its own
    const loopPort = await hostService('127.0.0.2');
    writeFileSync(`/proc/sys/net/ipv4/conf/${opts('i', '').bridge}/route_localnet`, '1');
    const inA1 = (...args: string[]) => execFileSync('ip', ['netns', 'exec', 'berth-a1', ...args]);
    inA1('sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1');
    inA1('ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local');
    inA1('ip', 'route', 'add', '127.0.0.2/32', 'via', gateway, 'dev', 'eth0', 'src', a1.ip);
    assert.equal((await fetchFrom('a1', `http://127.0.0.2:${loopPort}/`)).ok, false);
  });

  it('lets sandboxes reach only the host services their network offers', async () => {
    const offered = await hostService('0.0.0.0');
    const refused = await hostService('0.0.0.0');
    const subnet = `10.213.${octet + 1}.0/24`;
    other = new NetworkManager(opts('j', subnet, { hostServices: [{ port: offered, protocol: 'TCP' }] }));
    await other.setup('c1', [], 'c');
    const gw = `10.213.${octet + 1}.1`;
    assert.equal((await fetchFrom('c1', `http://${gw}:${offered}/`)).out, 'host\n');
    assert.equal((await fetchFrom('c1', `http://${gw}:${refused}/`)).ok, false);
    await other.teardown('c1');
    await other.destroy();
  });

  it('keeps a warm sandbox apart from every segment until it is claimed', async () => {
    const pooled = new NetworkManager({ ...opts('i', `10.213.${octet}.0/24`, { hostAddress: gateway }), poolSize: 1 });
    await pooled.startPool();
    await pooled.refill();
    const a2 = (await nm.get('a2'))!;
    const warm = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).find((n) => n.startsWith('berth-pool-'))!;
    assert.equal((await fetchFrom(warm, `http://${a2.ip}:8080/`)).ok, false);
    const claimed = await pooled.setup('a3', [], 'a');
    assert.equal(claimed.netnsPath, `/run/netns/${warm}`);
    // its failed ARP for a2 from before is remembered a moment (a fresh sandbox has none)
    await waitFor('a2 from the claimed sandbox', async () => (await fetchFrom(warm, `http://${a2.ip}:8080/`)).out === 'hello\n');
    await pooled.teardown('a3');
    await pooled.stopPool();
  });

  it('keeps whatever else is plugged into the bridge apart from the sandboxes', async () => {
    const a2 = (await nm.get('a2'))!;
    const ns = `berth-foreign-${sfx}`;
    const host = `vf${sfx}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      execFileSync('ip', ['link', 'set', host, 'master', opts('i', '').bridge!, 'up']);
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `10.213.${octet}.250/24`, 'dev', 'eth0']);
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up']);
      // it works (the host reaches it), and knows a2's MAC without asking (a2's answer would be dropped)
      await serveIn(ns, `10.213.${octet}.250`, 8080);
      const mac = execFileSync('ip', ['netns', 'exec', 'berth-a2', 'cat', '/sys/class/net/eth0/address'], { encoding: 'utf8' }).trim();
      execFileSync('ip', ['netns', 'exec', ns, 'ip', 'neigh', 'replace', a2.ip, 'lladdr', mac, 'dev', 'eth0']);
      assert.equal(await udpArrives('a2', a2.ip, (p) => sendUdp(ns, a2.ip, p, 'probe')), false);
    } finally {
      for (const c of children) if (c.spawnargs.includes(ns)) c.kill('SIGKILL');
      execFileSync('ip', ['link', 'del', host], { stdio: 'ignore' });
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });

  it('holds one element per sandbox and one chain per segment, and nothing once they are gone', async () => {
    const segments = () => berthNftObjects().segmentChains;
    assert.equal(segments(), 2, 'a and b');
    // concurrent setups are committed together
    await Promise.all(['x1', 'x2', 'y1', 'y2'].map((id) => nm.setup(id, [], id.slice(0, 1))));
    assert.equal(segments(), 4);
    const veths = ['x1', 'y1'].map((id) => hostVethOf(`berth-${id}`));
    const elements = berthNftObjects().elements;
    // in its segment's set, in the map to its chain, in the set of this bridge's sandboxes, and bound to its address
    for (const v of veths) assert.equal(elements.filter((e) => e === JSON.stringify(v)).length, 4, v);
    for (const id of ['x1', 'x2', 'y1', 'y2']) await nm.teardown(id);
    assert.equal(segments(), 2);
    for (const v of veths) assert.ok(!berthNftObjects().elements.includes(JSON.stringify(v)));
    for (const c of children) c.kill('SIGKILL');
    for (const id of await nm.list()) await nm.teardown(id);
    await nm.destroy();
    assert.deepEqual(berthNftObjects(), { tables: 0, chains: 0, segmentChains: 0, rules: 0, elements: [] });
    assert.deepEqual(hostNetworkCounts(), baseline);
  });
});
