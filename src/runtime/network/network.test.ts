// Integration tests of NetworkManager with the real CNI plugins, iptables and containers (needs root).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isBerthError } from '../../lib/errors.js';
import { ContainerRuntime } from '../container/runtime.js';
import { berthNftObjects, containerSpec, freeTestOctet, hostNetworkCounts, hostVethOf, makeBusyboxImage, randomSuffix } from '../container/testing.js';
import { NetworkManager, type NetworkManagerOptions } from './network.js';

const baseline = hostNetworkCounts();
const sfx = randomSuffix();
const dir = mkdtempSync(join(tmpdir(), 'berth-net-'));
const octet = freeTestOctet();
const netOpts: NetworkManagerOptions = {
  name: `berth-test-${sfx}`,
  bridge: `bt${sfx}`,
  subnet: `10.213.${octet}.0/24`,
  stateDir: join(dir, 'state'),
  ipamDataDir: join(dir, 'ipam'),
};
const nm = new NetworkManager(netOpts);
const cgroupParent = `/berth-nettest-${sfx}`;
const runcRoot = `/run/berth-nettest-${sfx}/runc`;
const rt = new ContainerRuntime({ root: join(dir, 'containers'), runcRoot, cgroupParent });
const image = makeBusyboxImage(join(dir, 'layer'));
const port = () => 20000 + Math.floor(Math.random() * 10000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function httpGet(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.text();
}
async function waitHttp(url: string): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return await httpGet(url);
    } catch (e) {
      if (i > 100) throw e;
      await sleep(30);
    }
  }
}
const ipamAllocations = () => {
  const d = join(dir, 'ipam', netOpts.name!);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
};
const bridgeExists = () => {
  try {
    execFileSync('ip', ['link', 'show', netOpts.bridge!], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/**
 * A CNI dir of the real plugins where bridge's ADD, once the real plugin has made the veth and
 * taken an address, runs `addScript` (which fails, or kills the caller, half-way through setup).
 */
function cniDirWithBridgeAdd(name: string, addScript: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  for (const p of readdirSync('/usr/lib/cni')) if (p !== 'bridge') symlinkSync(join('/usr/lib/cni', p), join(d, p));
  writeFileSync(join(d, 'bridge'), `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then\nout=$(/usr/lib/cni/bridge) || { echo "$out"; exit 1; }\n${addScript}\necho "$out"\nexit 0\nfi\nexec /usr/lib/cni/bridge\n`);
  chmodSync(join(d, 'bridge'), 0o755);
  return d;
}

after(async () => {
  for (const id of await rt.list()) await rt.remove(id).catch(() => undefined);
  for (const id of await nm.list()) await nm.teardown(id).catch((e) => console.error('teardown', id, e));
  await nm.destroy().catch(() => undefined);
  try {
    execFileSync('ip', ['link', 'delete', netOpts.bridge!], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  for (const ctl of readdirSync('/sys/fs/cgroup')) {
    const p = join('/sys/fs/cgroup', ctl, cgroupParent);
    if (existsSync(p)) rmdirSync(p);
  }
  rmSync(`/run/berth-nettest-${sfx}`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('NetworkManager', () => {
  it('sets up a sandbox idempotently and finds it again', async () => {
    const sb = await nm.setup('basic', []);
    assert.equal(sb.id, 'basic');
    assert.equal(sb.netnsPath, '/run/netns/berth-basic');
    assert.ok(existsSync(sb.netnsPath));
    assert.ok(sb.ip.startsWith(`10.213.${octet}.`), sb.ip);
    assert.deepEqual(await nm.setup('basic', []), sb);
    assert.deepEqual(await nm.get('basic'), sb);
    assert.deepEqual(await nm.list(), ['basic']);
    assert.equal(await nm.get('absent'), undefined);
    // a fresh manager reads the same state from disk
    assert.deepEqual(await new NetworkManager(netOpts).get('basic'), sb);
    const addr = execFileSync('ip', ['netns', 'exec', 'berth-basic', 'ip', '-o', '-4', 'addr', 'show', 'eth0'], { encoding: 'utf8' });
    assert.ok(addr.includes(`${sb.ip}/24`));
    const lo = execFileSync('ip', ['netns', 'exec', 'berth-basic', 'ip', '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });
    assert.match(lo, /UP/);
    await nm.teardown('basic');
    await nm.teardown('basic');
    assert.ok(!existsSync(sb.netnsPath));
    assert.deepEqual(await nm.list(), []);
    assert.deepEqual(ipamAllocations(), []);
  });

  it('publishes a port on 127.0.0.1 of the host until teardown, then restores the host exactly', async () => {
    const p = port();
    const sb = await nm.setup('web', [{ port: p, protocol: 'TCP' }]);
    await rt.start(containerSpec('web-httpd', image, sb.netnsPath, { ip: sb.ip, command: ['httpd', '-f', '-p', String(p), '-h', '/www'] }));
    assert.equal(await waitHttp(`http://127.0.0.1:${p}/index.html`), 'hello from berth\n');
    assert.equal(await httpGet(`http://${sb.ip}:${p}/index.html`), 'hello from berth\n');
    const hosts = await rt.exec('web-httpd', ['cat', '/etc/hosts']);
    let hostsText = '';
    hosts.stdout.on('data', (c) => (hostsText += c));
    assert.deepEqual(await hosts.done, { exitCode: 0 });
    assert.match(hostsText, new RegExp(`^${sb.ip.replace(/\./g, '\\.')}\\tweb-httpd$`, 'm'));

    await rt.remove('web-httpd');
    await nm.teardown('web');
    await assert.rejects(httpGet(`http://127.0.0.1:${p}/index.html`));
    await nm.destroy();
    assert.ok(!bridgeExists());
    assert.deepEqual(hostNetworkCounts(), baseline);
    assert.deepEqual(ipamAllocations(), []);
  });

  it('lets two containers of one sandbox talk over localhost', async () => {
    const sb = await nm.setup('pair', []);
    await rt.start(containerSpec('pair-server', image, sb.netnsPath, { command: ['httpd', '-f', '-p', '127.0.0.1:8081', '-h', '/www'] }));
    await rt.start(containerSpec('pair-client', image, sb.netnsPath, {
      command: ['sh', '-c', 'for i in $(seq 1 50); do wget -q -O - http://127.0.0.1:8081/index.html && exit 0; sleep 0.05; done; exit 1'],
    }));
    for (let i = 0; i < 200; i++) {
      const st = await rt.status('pair-client');
      if (st?.state === 'exited') break;
      await sleep(20);
    }
    const st = await rt.status('pair-client');
    assert.equal(st?.exitCode, 0, await rt.readLogs('pair-client'));
    assert.equal(await rt.readLogs('pair-client'), 'hello from berth\n');
    await rt.remove('pair-server');
    await rt.remove('pair-client');
    await nm.teardown('pair');
  });

  it('refuses to publish a host port another sandbox already publishes', async () => {
    const p = port();
    await nm.setup('owner', [{ port: p, protocol: 'TCP' }]);
    const err = await nm.setup('thief', [{ port: p, protocol: 'TCP' }]).catch((e) => e);
    assert.ok(isBerthError(err) && err.code === 'PortAlreadyInUse' && err.status === 409, String(err));
    assert.doesNotMatch(err.message, /owner/, 'the holder is not named');
    assert.ok(!(await nm.list()).includes('thief'));
    await nm.setup('thief', [{ port: p, protocol: 'UDP' }]);
    await nm.teardown('thief');
    await nm.teardown('owner');
  });

  it('publishes on its host address only, never over a port a host socket holds there or the host reserves', async () => {
    const before = hostNetworkCounts();
    const reserved = port();
    const rm = new NetworkManager({ ...netOpts, reservedPorts: () => [{ port: reserved, protocol: 'TCP' }] });
    const holder = await rm.setup('holder', []);
    const gateway = `10.213.${octet}.1`;
    const listen = (host: string) => new Promise<Server>((resolve) => {
      const server = createServer((c) => c.end('HTTP/1.0 200 OK\r\n\r\nhost\n')).listen(0, host, () => resolve(server));
    });
    const onLoopback = await listen('127.0.0.1');
    const onAny = await listen('0.0.0.0');
    const onGateway = await listen(gateway);
    const portOf = (s: Server) => (s.address() as AddressInfo).port;
    try {
      for (const p of [portOf(onLoopback), portOf(onAny), reserved]) {
        const err = await rm.setup('taker', [{ port: p, protocol: 'TCP' }]).catch((e) => e);
        assert.ok(isBerthError(err) && err.code === 'PortAlreadyInUse' && err.status === 409, String(err));
        assert.deepEqual(await rm.list(), ['holder'], 'nothing made');
      }
      assert.equal(await httpGet(`http://127.0.0.1:${portOf(onLoopback)}/`), 'host\n', 'the host keeps it');
      // what a cluster host reports for its placement: the same ports, all of them, once each
      const held = (await rm.heldPorts()).map((h) => `${h.protocol}/${h.port}`);
      for (const p of [portOf(onLoopback), portOf(onAny), reserved]) assert.ok(held.includes(`TCP/${p}`), `TCP/${p} among the held ports`);
      assert.ok(!held.includes(`TCP/${portOf(onGateway)}`), 'not one held at another address only');
      assert.equal(new Set(held).size, held.length);
      // a socket on another address of the host does not hold the port at 127.0.0.1, and keeps its own
      const p = portOf(onGateway);
      const sb = await rm.setup('web-loopback', [{ port: p, protocol: 'TCP' }]);
      await rt.start(containerSpec('web-loopback-httpd', image, sb.netnsPath, { ip: sb.ip, command: ['httpd', '-f', '-p', String(p), '-h', '/www'] }));
      assert.equal(await waitHttp(`http://127.0.0.1:${p}/index.html`), 'hello from berth\n');
      assert.equal(await httpGet(`http://${gateway}:${p}/`), 'host\n');
      await rt.remove('web-loopback-httpd');
      await rm.teardown('web-loopback');
    } finally {
      for (const s of [onLoopback, onAny, onGateway]) s.close();
    }
    await rm.teardown(holder.id);
    assert.deepEqual(hostNetworkCounts(), before);
  });

  describe('a sandbox published before per-address publishing (a DNAT for every local address, a hairpin rule per port)', () => {
    const nat = () => execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('berth:legacy'));
    /** Sets up `legacy` publishing `p`, then makes its state and rules what the previous release wrote. */
    async function legacy(m: NetworkManager, p: number) {
      const sb = await m.setup('legacy', [{ port: p, protocol: 'TCP' }]);
      const statePath = join(netOpts.stateDir, 'legacy.json');
      const { hostAddress: _, ...old } = JSON.parse(readFileSync(statePath, 'utf8'));
      writeFileSync(statePath, JSON.stringify(old));
      const rule = (op: string, chain: string, addrs: string[], target: string[]) =>
        execFileSync('iptables', ['-t', 'nat', op, chain, ...addrs, '-p', 'tcp', '-m', 'tcp', '--dport', String(p), '-m', 'comment', '--comment', 'berth:legacy', ...target]);
      const dnat = ['-j', 'DNAT', '--to-destination', `${sb.ip}:${p}`];
      rule('-D', 'BERTH-HOSTPORTS', ['-d', '127.0.0.1/32'], dnat);
      rule('-A', 'BERTH-HOSTPORTS', [], dnat);
      rule('-A', 'BERTH-HOSTPORTS-MASQ', ['-s', `${sb.ip}/32`, '-d', `${sb.ip}/32`], ['-j', 'MASQUERADE']);
      assert.equal(nat().length, 3);
      return sb;
    }

    it('is unpublished completely', async () => {
      const before = hostNetworkCounts();
      await legacy(nm, port());
      await nm.teardown('legacy');
      assert.deepEqual(nat(), []);
      assert.deepEqual(hostNetworkCounts(), before);
    });

    it('is published again on the host address only when its group is checked again', async () => {
      const p = port();
      const sb = await legacy(nm, p);
      assert.deepEqual(await nm.setup('legacy', [{ port: p, protocol: 'TCP' }]), sb);
      assert.deepEqual(nat().filter((l) => l.includes(' -j DNAT ')).map((l) => / -d (\S+) /.exec(l)?.[1]), ['127.0.0.1/32']);
      assert.equal(nat().length, 2, 'the hairpin rule is gone');
      await nm.teardown('legacy');
    });

    it('gives way to the host where it keeps the port', async () => {
      const p = port();
      const reserving = new NetworkManager({ ...netOpts, reservedPorts: () => [{ port: p, protocol: 'TCP' }] });
      await legacy(nm, p);
      const err = await reserving.setup('legacy', [{ port: p, protocol: 'TCP' }]).catch((e) => e);
      assert.ok(isBerthError(err) && err.code === 'PortAlreadyInUse', String(err));
      assert.deepEqual(nat(), [], 'nothing of it shadows the host any more');
      await reserving.teardown('legacy');
    });
  });

  it('cleans up everything when a plugin fails mid-setup', async () => {
    const before = hostNetworkCounts();
    const cniPath = cniDirWithBridgeAdd('cni-failing', `echo '{"code":100,"msg":"injected failure"}'; exit 1`);
    const failing = new NetworkManager({ ...netOpts, cniPath });
    await assert.rejects(failing.setup('halfway', [{ port: port(), protocol: 'TCP' }]), /injected failure/);
    assert.deepEqual(await failing.list(), []);
    assert.ok(!existsSync('/run/netns/berth-halfway'));
    assert.deepEqual(ipamAllocations(), []);
    assert.deepEqual(hostNetworkCounts(), before);
  });

  it('tears down a sandbox whose setup was cut short by a crash', async () => {
    const before = hostNetworkCounts();
    // the fake bridge kills the Node process running setup once the real one has made the veth and
    // taken an IP (its parent is berth-spawnd, whose parent is that process)
    const cniPath = cniDirWithBridgeAdd('cni-crashing', 'kill -9 $(cut -d" " -f4 /proc/$PPID/stat); sleep 5; exit 1');
    const script = join(dir, 'crasher.mjs');
    writeFileSync(script, `
      import { NetworkManager } from ${JSON.stringify(new URL('./network.js', import.meta.url).href)};
      const nm = new NetworkManager(JSON.parse(process.argv[2]));
      await nm.setup('crashed', [{ port: ${port()}, protocol: 'TCP' }]);
    `);
    const child = spawn(process.execPath, [script, JSON.stringify({ ...netOpts, cniPath })], { stdio: 'inherit' });
    const [, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, s) => r([c, s])));
    assert.equal(signal, 'SIGKILL');
    assert.deepEqual(await nm.list(), ['crashed']);
    assert.equal(ipamAllocations().length, 1);
    assert.equal(await nm.get('crashed'), undefined, 'a half-built sandbox is not handed out');
    await nm.teardown('crashed');
    assert.deepEqual(await nm.list(), []);
    assert.deepEqual(ipamAllocations(), []);
    assert.ok(!existsSync('/run/netns/berth-crashed'));
    assert.deepEqual(hostNetworkCounts(), before);
  });

  it('claims warm sandboxes from the pool, refills it, and drains it on stop', async () => {
    const before = hostNetworkCounts();
    const pm = new NetworkManager({ ...netOpts, poolSize: 2 });
    await pm.startPool();
    await pm.refill();
    assert.equal(pm.poolReady(), 2);
    assert.deepEqual(await pm.list(), [], 'warm sandboxes belong to no group');
    assert.equal(hostNetworkCounts().netns, before.netns + 2);

    const p = port();
    const sb = await pm.setup('pooled', [{ port: p, protocol: 'TCP' }]);
    assert.match(sb.netnsPath, /\/berth-pool-[0-9a-f]{12}$/);
    assert.equal(pm.poolReady(), 1);
    assert.deepEqual(await pm.get('pooled'), sb);
    await rt.start(containerSpec('pooled-httpd', image, sb.netnsPath, { ip: sb.ip, command: ['httpd', '-f', '-p', String(p), '-h', '/www'] }));
    assert.equal(await waitHttp(`http://127.0.0.1:${p}/index.html`), 'hello from berth\n');
    // a second claim of the same port is refused, pool or not
    const err = await pm.setup('pooled-thief', [{ port: p, protocol: 'TCP' }]).catch((e) => e);
    assert.ok(isBerthError(err) && err.status === 409, String(err));
    await pm.refill();
    assert.equal(pm.poolReady(), 2);

    await rt.remove('pooled-httpd');
    await pm.teardown('pooled');
    await assert.rejects(httpGet(`http://127.0.0.1:${p}/index.html`));
    await pm.stopPool();
    assert.equal(pm.poolReady(), 0);
    assert.deepEqual(ipamAllocations(), []);
    assert.deepEqual(hostNetworkCounts(), before);
  });

  it('tears down the pool a killed process left behind, and never a claimed sandbox', async () => {
    const before = hostNetworkCounts();
    const script = join(dir, 'pool-crasher.mjs');
    writeFileSync(script, `
      import { NetworkManager } from ${JSON.stringify(new URL('./network.js', import.meta.url).href)};
      const nm = new NetworkManager(JSON.parse(process.argv[2]));
      await nm.startPool();
      await nm.refill();
      await nm.setup('claimed', []);
      await nm.refill();
      process.kill(process.pid, 'SIGKILL');
    `);
    const child = spawn(process.execPath, [script, JSON.stringify({ ...netOpts, poolSize: 2 })], { stdio: 'inherit' });
    const [, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, s) => r([c, s])));
    assert.equal(signal, 'SIGKILL');
    assert.equal(hostNetworkCounts().netns, before.netns + 3);
    // a claim writes the group's state, then removes the pool's: a crash between the two leaves both
    const claimedState = JSON.parse(readFileSync(join(netOpts.stateDir, 'claimed.json'), 'utf8')) as { id: string; netnsName: string };
    const halfClaimed = join(netOpts.stateDir, 'pool', 'pool-0123456789ab.json');
    writeFileSync(halfClaimed, JSON.stringify({ ...claimedState, id: 'pool-0123456789ab', result: undefined }));

    // the isolation tables hold the two warm sandboxes (in no segment) and the claimed one
    const claimedVeth = JSON.stringify(hostVethOf(claimedState.netnsName));
    // each in the map and the set of sandboxes, and bound to its address; the claimed one in its segment too
    assert.equal(berthNftObjects().elements.length, 3 * 3 + 1);

    const restarted = new NetworkManager({ ...netOpts, poolSize: 0 });
    await restarted.startPool();
    assert.deepEqual(berthNftObjects().elements, [claimedVeth, claimedVeth, claimedVeth, claimedVeth], 'what the dead process left is adopted, the rest dropped');
    assert.deepEqual(await restarted.list(), ['claimed']);
    assert.equal(existsSync(halfClaimed), false, 'the pool forgets a sandbox its group has');
    const claimed = await restarted.get('claimed');
    assert.ok(claimed && existsSync(claimed.netnsPath), 'the claimed sandbox survives the pool cleanup');
    assert.equal(hostNetworkCounts().netns, before.netns + 1);
    await restarted.teardown('claimed');
    assert.deepEqual(berthNftObjects().tables, 0, 'the tables go with the last sandbox');
    assert.deepEqual(ipamAllocations(), []);
    assert.deepEqual(hostNetworkCounts(), before);
  });

  it('keeps one set of network rules for all its sandboxes, removed with the last one', async () => {
    const rules = () =>
      execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`berth-net:${netOpts.bridge}`) || l.startsWith(`-A BERTH-MASQ-${netOpts.bridge} `));
    assert.deepEqual(rules(), []);
    await nm.setup('rules-a', []);
    const one = rules();
    // the POSTROUTING jump, MASQUERADE to published ports within the subnet, RETURN for the rest
    // within it and MASQUERADE out of it, FORWARD accepts in, and out for replies and published ports
    assert.equal(one.length, 7, one.join('\n'));
    await nm.setup('rules-b', [{ port: port(), protocol: 'TCP' }]);
    assert.deepEqual(rules(), one, 'a second sandbox adds no network rule');
    await nm.teardown('rules-a');
    assert.deepEqual(rules(), one, 'kept while a sandbox uses the network');
    await nm.teardown('rules-b');
    assert.deepEqual(rules(), []);
    assert.ok(!execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).includes('BERTH-HOSTPORTS'), 'host-port chains go with their last rule');
  });

  it('leaves the host as it found it', async () => {
    assert.deepEqual(await nm.list(), []);
    await nm.destroy();
    assert.ok(!bridgeExists());
    assert.deepEqual(hostNetworkCounts(), baseline);
  });
});
