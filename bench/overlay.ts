// Overlay benchmark: TCP round trips, connection setups and iperf3 throughput between two sandboxes on two hosts (the VXLAN overlay), the same pair on one host's bridge, and two namespaces on a bare veth, side by side in one run.
// Usage: bash scripts/isolated.sh node dist/bench/overlay.js [--rounds N] [--trips N] [--connects N] [--seconds S] [--json FILE]   (bench/overlay.sh)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomSuffix } from '../src/runtime/container/testing.js';
import { vtepMacFor, type OverlayLocal, type PeersApplied } from '../src/runtime/network/overlay.js';
import { TestHost, TestUnderlay } from '../src/runtime/network/testing/hosts.js';
import type { Sandbox } from '../src/runtime/types.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    trips: { type: 'string', default: '2000' },
    connects: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '5' },
    json: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const trips = Number(args.trips);
const connects = Number(args.connects);
const seconds = Number(args.seconds);

/** Where a process of one end of a path runs: argv that runs `argv` there. */
type Place = (argv: string[]) => string[];
interface Path {
  name: string;
  client: Place;
  server: Place;
  serverIp: string;
}

/**
 * TCP ping-pong against an echo server: `trips` round trips of one byte on one connection, then `connects` fresh
 * connections each carrying one round trip; prints the medians and 99th percentiles in microseconds.
 */
const PINGPONG = `
const net = require('node:net');
const [ip, port, trips, connects] = process.argv.slice(1);
const us = (t) => Number(process.hrtime.bigint() - t) / 1000;
const stats = (xs) => { xs.sort((a, b) => a - b); const q = (p) => xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]; return { p50: q(0.5), p99: q(0.99) }; };
const once = (s) => new Promise((r) => s.once('data', r));
(async () => {
  const s = net.connect({ host: ip, port: Number(port), noDelay: true });
  await new Promise((r) => s.once('connect', r));
  const rtt = [];
  for (let i = 0; i < Number(trips); i++) { const t = process.hrtime.bigint(); s.write('x'); await once(s); rtt.push(us(t)); }
  s.destroy();
  const setup = [];
  for (let i = 0; i < Number(connects); i++) {
    const t = process.hrtime.bigint();
    const c = net.connect({ host: ip, port: Number(port), noDelay: true });
    await new Promise((r) => c.once('connect', r));
    c.write('x'); await once(c); setup.push(us(t)); c.destroy();
  }
  console.log(JSON.stringify({ rtt: stats(rtt), connect: stats(setup) }));
})();`;
const ECHO = `require('node:net').createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); c.on('error', () => {}); }).listen(Number(process.argv[1]), () => console.log('ready'));`;

function start(argv: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.split('\n').some(ready)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited (${code}) before it was ready`)));
  });
}

const output = (argv: string[]) => execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 16 << 20 });

async function latency(path: Path): Promise<{ rtt: { p50: number; p99: number }; connect: { p50: number; p99: number } }> {
  const port = 7000 + Math.floor(Math.random() * 1000);
  const server = await start(path.server([process.execPath, '-e', ECHO, String(port)]), (l) => l === 'ready');
  try {
    return JSON.parse(output(path.client([process.execPath, '-e', PINGPONG, path.serverIp, String(port), String(trips), String(connects)])));
  } finally {
    server.kill('SIGKILL');
  }
}

async function throughput(path: Path): Promise<number> {
  const port = 8000 + Math.floor(Math.random() * 1000);
  const server = await start(path.server(['iperf3', '-s', '-1', '--forceflush', '-p', String(port)]), (l) => l.includes('Server listening'));
  try {
    const report = JSON.parse(output(path.client(['iperf3', '-c', path.serverIp, '-p', String(port), '-t', String(seconds), '-J'])));
    return report.end.sum_received.bits_per_second / 1e9;
  } finally {
    server.kill('SIGKILL');
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main(): Promise<void> {
  const sfx = randomSuffix();
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-overlay-'));
  const underlay = new TestUnderlay(`bb${sfx}`, '10.250.77');
  const hosts = [1, 2].map((i) => new TestHost(underlay, i, sfx));
  const vethNs = [`bva-${sfx}`, `bvb-${sfx}`];
  const load = [loadavg()[0]];
  try {
    underlay.create();
    const locals: OverlayLocal[] = [];
    for (const h of hosts) {
      await h.start();
      locals.push(await h.call<OverlayLocal>('overlay', { vni: 77, underlayAddress: h.underlayAddress, localSubnet: `10.253.${h.index}.0/24`, clusterCidr: '10.253.0.0/16', bridge: 'berth0' }));
      await h.call('network', { bridge: 'berth0', subnet: `10.253.${h.index}.0/24`, stateDir: join(dir, h.netns, 'state'), ipamDataDir: join(dir, h.netns, 'ipam'), hostAddress: h.underlayAddress, mtu: locals[0].mtu, overlayDevice: 'berth-vxlan' });
    }
    const peers = hosts.map((h, i) => ({ name: h.netns, underlayAddress: h.underlayAddress, subnet: `10.253.${h.index}.0/24`, vtepMac: locals[i].vtepMac }));
    for (const h of hosts) await h.call('setPeers', peers);
    const [h1, h2] = hosts;
    await h1.call<Sandbox>('sandbox', { id: 'c1', segment: 's', tag: 1 });
    const local = await h1.call<Sandbox>('sandbox', { id: 's1', segment: 's', tag: 1 });
    const remote = await h2.call<Sandbox>('sandbox', { id: 's2', segment: 's', tag: 1 });
    // the floor: two namespaces on a veth, no bridge, no netfilter rules, no encapsulation
    for (const ns of vethNs) execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['link', 'add', 'eth0', 'netns', vethNs[0], 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vethNs[1]]);
    vethNs.forEach((ns, i) => {
      execFileSync('ip', ['-n', ns, 'addr', 'add', `10.254.0.${i + 1}/30`, 'dev', 'eth0']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    });
    const inNs = (ns: string) => (argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];
    const paths: Path[] = [
      { name: 'overlay (two hosts, VXLAN)', client: (a) => h1.sandboxArgv('c1', a), server: (a) => h2.sandboxArgv('s2', a), serverIp: remote.ip },
      { name: 'bridge (one host)', client: (a) => h1.sandboxArgv('c1', a), server: (a) => h1.sandboxArgv('s1', a), serverIp: local.ip },
      { name: 'veth (two namespaces)', client: inNs(vethNs[0]), server: inNs(vethNs[1]), serverIp: '10.254.0.2' },
    ];
    const results = new Map(paths.map((p) => [p.name, { rtt: [] as number[], rtt99: [] as number[], connect: [] as number[], connect99: [] as number[], gbps: [] as number[] }]));
    for (let round = 0; round < rounds; round++) {
      // each round in another order: a neighbour's burst on this shared machine does not always hit the same path
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(round + k) % paths.length];
        const r = results.get(path.name)!;
        const l = await latency(path);
        r.rtt.push(l.rtt.p50);
        r.rtt99.push(l.rtt.p99);
        r.connect.push(l.connect.p50);
        r.connect99.push(l.connect.p99);
        r.gbps.push(await throughput(path));
      }
      console.error(`round ${round + 1}/${rounds} done`);
    }
    // what programming the peers costs: 40 peers made, the same 40 again, back to one
    const many = [...peers, ...Array.from({ length: 39 }, (_, i) => ({ name: `fake${i}`, underlayAddress: `10.250.77.${100 + i}`, subnet: `10.253.${10 + i}.0/24`, vtepMac: vtepMacFor(`10.250.77.${100 + i}`) }))];
    const timed = async (list: typeof peers) => {
      const t0 = performance.now();
      const applied = await h1.call<PeersApplied>('setPeers', list);
      return { ms: performance.now() - t0, ...applied };
    };
    const peerCosts = { add40: await timed(many), same40: await timed(many), back1: await timed(peers) };
    load.push(loadavg()[0]);
    const rows = paths.map((p) => {
      const r = results.get(p.name)!;
      return { path: p.name, rttP50Us: median(r.rtt), rttP99Us: median(r.rtt99), connectP50Us: median(r.connect), connectP99Us: median(r.connect99), gbps: median(r.gbps) };
    });
    const veth = rows[2];
    console.log(`overlay benchmark: ${rounds} rounds of ${trips} round trips, ${connects} connections, ${seconds} s of iperf3 per path; medians over rounds; load average ${load.map((x) => x.toFixed(1)).join(' -> ')}`);
    console.log('| path | round trip p50 / p99 (µs) | connect + 1 round trip p50 / p99 (µs) | iperf3, one stream (Gbit/s) |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const r of rows) {
      const vs = (a: number, b: number) => (r === veth ? '' : ` (${(a / b).toFixed(2)}x)`);
      console.log(`| ${r.path} | ${r.rttP50Us.toFixed(0)} / ${r.rttP99Us.toFixed(0)}${vs(r.rttP50Us, veth.rttP50Us)} | ${r.connectP50Us.toFixed(0)} / ${r.connectP99Us.toFixed(0)}${vs(r.connectP50Us, veth.connectP50Us)} | ${r.gbps.toFixed(2)}${vs(r.gbps, veth.gbps)} |`);
    }
    const cost = (c: { ms: number; peers: number; changes: number }) => `${c.ms.toFixed(0)} ms (${c.changes} changes)`;
    console.log(`setPeers on one host: 40 peers from one ${cost(peerCosts.add40)}, the same 40 again ${cost(peerCosts.same40)}, back to one ${cost(peerCosts.back1)}`);
    if (args.json) writeFileSync(args.json, JSON.stringify({ rounds, trips, connects, seconds, load, rows, peerCosts, raw: Object.fromEntries(results) }, null, 2));
  } finally {
    for (const h of hosts) {
      await h.call('destroyNetwork').catch(() => undefined);
      await h.call('teardownOverlay').catch(() => undefined);
      await h.stop().catch(() => undefined);
    }
    for (const ns of vethNs) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* not made */
      }
    }
    underlay.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
