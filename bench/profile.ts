// Profiling aid: runs a berth server with BERTH_TRACE on, sequential then concurrent creates, and sums where the time went per phase.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, cleanupDir, group, startBerth } from '../test/helpers/berth.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry } from '../test/helpers/registry.js';
import { createMany, deleteMany, httpdOn } from './bench.js';
import { childrenNamed, findProcesses, procStat, run, sleep, summarize, waitTcp } from './lib.js';

// Usage: node dist/bench/profile.js [--seq N] [--groups N] [--pool N] [--runtime R] [--cpu-prof DIR (the server's V8 profile)]   (under flock /tmp/berth-tests.lock)
const argv = process.argv.slice(2);
const num = (f: string, d: number) => (argv.includes(f) ? Number(argv[argv.indexOf(f) + 1]) : d);
const str = (f: string, d: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);

/** The spans BERTH_TRACE wrote (src/lib/trace.ts). */
function readTrace(file: string): { id: string; what: string; start: number; ms: number }[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function summarizeTrace(file: string, since: number, until: number) {
  const rows = readTrace(file);
  const by = new Map<string, number[]>();
  const loop: string[] = [];
  for (const r of rows) {
    if (r.start < since || r.start > until) continue;
    if (r.what === 'loop.delay') loop.push(r.id);
    else by.set(r.what, [...(by.get(r.what) ?? []), r.ms]);
  }
  const out: string[] = [];
  for (const [what, xs] of [...by].sort()) {
    const s = summarize(xs)!;
    out.push(`${what.padEnd(26)} n=${String(s.n).padStart(4)} p50=${s.p50.toFixed(1).padStart(7)} p95=${s.p95.toFixed(1).padStart(7)} max=${s.max.toFixed(1).padStart(8)} sum=${(xs.reduce((a, b) => a + b, 0) / 1000).toFixed(2)}s`);
  }
  out.push(`loop delay per second: ${loop.join(' | ')}`);
  return out.join('\n');
}

/** Own CPU seconds (user + system) of every live process, kernel threads included (their names cut at "/"): pid -> [name, seconds]. */
function cpuByComm(): Map<string, [string, number]> {
  const out = new Map<string, [string, number]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const { comm, fields: f } = procStat(d);
      out.set(d, [comm.replace(/\/.*$/, ''), (f[11] + f[12]) / 100]);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** CPU seconds so far: the whole host (busy), the server's own threads, its reaped children, and this bench client. */
function cpuNow(pid: number) {
  const hz = 100;
  const host = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const busy = host.reduce((a, b) => a + b, 0) - host[3] - host[4];
  // user nice system idle iowait irq softirq steal
  const split = { user: (host[0] + host[1]) / hz, system: host[2] / hz, softirq: (host[5] + host[6]) / hz, steal: (host[7] ?? 0) / hz };
  const f = procStat(pid).fields;
  // the server's commands run as children of its berth-spawnd: their CPU is that helper's reaped children's
  let spawned = 0;
  for (const child of childrenNamed(pid, 'berth-spawnd')) {
    try {
      const c = procStat(child).fields;
      spawned += c[11] + c[12] + c[13] + c[14];
    } catch {
      /* gone */
    }
  }
  const u = process.cpuUsage();
  return { split, host: busy / hz, server: (f[11] + f[12]) / hz, children: (f[13] + f[14] + spawned) / hz, client: (u.user + u.system) / 1e6, wall: performance.now() / 1000 };
}

function cpuSince(a: ReturnType<typeof cpuNow>, b: ReturnType<typeof cpuNow>) {
  const d = (k: Exclude<keyof typeof a, 'split'>) => (b[k] - a[k]).toFixed(1);
  const split = Object.keys(a.split).map((k) => `${k} ${(b.split[k as keyof typeof a.split] - a.split[k as keyof typeof a.split]).toFixed(1)}`).join(', ');
  const host = b.host - a.host;
  const known = b.server - a.server + (b.children - a.children) + (b.client - a.client);
  return `cpu seconds over ${d('wall')} s: host busy ${host.toFixed(1)} (${split}) = berth server ${d('server')} + the commands it ran (CNI plugins, crun, conmon's start, iptables) ${d('children')} + bench client ${d('client')} + other (conmon monitors, containers, other users) ${(host - known).toFixed(1)}`;
}

/** Sequential creates one at a time: where each phase starts and ends, in ms after the PUT was sent (medians). */
function timeline(file: string, windows: [number, number][]) {
  const rows = readTrace(file);
  const by = new Map<string, { from: number[]; to: number[] }>();
  for (const [w0, w1] of windows) {
    for (const r of rows) {
      if (r.what === 'loop.delay' || r.start < w0 - 1 || r.start > w1) continue;
      const e = by.get(r.what) ?? { from: [], to: [] };
      e.from.push(r.start - w0);
      e.to.push(r.start + r.ms - w0);
      by.set(r.what, e);
    }
  }
  const accept = summarize(windows.map(([a, b]) => b - a))!;
  const lines = [...by].sort((a, b) => summarize(a[1].from)!.p50 - summarize(b[1].from)!.p50)
    .map(([what, e]) => `${what.padEnd(26)} n=${String(e.from.length).padStart(4)} from=${summarize(e.from)!.p50.toFixed(1).padStart(7)} to=${summarize(e.to)!.p50.toFixed(1).padStart(7)}`);
  return `timeline (ms after the PUT; port accepts at p50 ${accept.p50.toFixed(1)}):\n${lines.join('\n')}`;
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'berth-prof-'));
  const trace = join(work, 'trace.jsonl');
  process.env.BERTH_TRACE = trace;
  const registry = await startRegistry();
  const runcRoot = join('/run', `berth-prof-${process.pid}`, 'runc');
  const dataDir = join(work, 'berth');
  execFileSync('mkdir', ['-p', dataDir]);
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ sandboxPool: num('--pool', 8), ociRuntime: str('--runtime', 'auto') }));
  const cpuProf = str('--cpu-prof', '');
  const berth = await startBerth({ dataDir, bridge: 'btprof0', subnet: '10.213.76.0/22', runcRoot, ...(cpuProf && { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', cpuProf] }) });
  try {
    const image = (await buildImage(registry.host, 'prof', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
    const api = new Api(berth, 'bench'); // createMany lists the 'bench' subscription
    await api.createAndWait('warm', 'w0', group(image, { command: httpdOn(31998), ports: [31998], publish: true }));
    await api.deleteAndWait('warm', 'w0');
    await sleep(3000);
    const seq = num('--seq', 10);
    const lat: number[] = [];
    const windows: [number, number][] = [];
    let t = Date.now();
    for (let i = 0; i < seq; i++) {
      const port = 33000 + i;
      const t0 = performance.now();
      const w0 = performance.timeOrigin + t0;
      await api.req('PUT', api.groupPath('lat', `l${i}`), group(image, { command: httpdOn(port), ports: [port], publish: true }));
      await waitTcp('127.0.0.1', port);
      lat.push(performance.now() - t0);
      windows.push([w0, performance.timeOrigin + performance.now()]);
      await api.deleteAndWait('lat', `l${i}`);
      await sleep(300);
    }
    await sleep(1000);
    console.log(`sequential: ${JSON.stringify(summarize(lat))}\n${summarizeTrace(trace, t, Date.now())}\n${timeline(trace, windows)}\n`);
    const n = num('--groups', 100);
    if (n > 0) {
      t = Date.now();
      const cpu0 = cpuNow(berth.child.pid!);
      const procs0 = cpuByComm();
      const tp = await createMany(api, image, 'tp', n, 43000);
      const cpu = cpuSince(cpu0, cpuNow(berth.child.pid!));
      const procs1 = cpuByComm();
      const byComm = new Map<string, number>();
      for (const [pid, [comm, t]] of procs1) byComm.set(comm, (byComm.get(comm) ?? 0) + t - (procs0.get(pid)?.[1] ?? 0));
      const topComm = [...byComm].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([c, t]) => `${c} ${t.toFixed(1)}`).join(', ');
      // conmon and the `crun create` it waited for, per group (the monitors of this burst are all alive now)
      const conmons = findProcesses('conmon', dataDir);
      const monitorCpu = conmons.reduce((a, p) => {
        try {
          const f = procStat(p).fields;
          return a + (f[11] + f[12] + f[13] + f[14]) / 100;
        } catch {
          return a;
        }
      }, 0);
      await sleep(1000);
      console.log(`concurrent: ${JSON.stringify(tp)}\n${cpu}\nconmon monitors (with crun create): ${monitorCpu.toFixed(1)} s for ${conmons.length}\nlive processes' own CPU seconds (exited ones count in their parent), by name: ${topComm}\n${summarizeTrace(trace, t, Date.now())}\n`);
      t = Date.now();
      const td = await deleteMany(api, 'tp');
      await sleep(1000);
      console.log(`delete: ${JSON.stringify(td)}\n${summarizeTrace(trace, t, Date.now())}`);
    }
  } finally {
    await berth.destroy(['bench']).catch((e) => console.error(e));
    await run('ip', ['link', 'delete', 'btprof0']).catch(() => undefined);
    await registry.stop();
    cleanupDir(work);
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
