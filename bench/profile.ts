// Profiling aid: runs a berth server with BERTH_TRACE on, sequential then concurrent creates, and sums where the time went per phase.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, cleanupDir, group, startBerth } from '../test/helpers/berth.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry } from '../test/helpers/registry.js';
import { createMany, deleteMany } from './bench.js';
import { run, sleep, summarize, waitTcp } from './lib.js';

// Usage: node dist/bench/profile.js [--seq N] [--groups N] [--pool N] [--runtime R]   (under flock /tmp/berth-tests.lock)
const argv = process.argv.slice(2);
const num = (f: string, d: number) => (argv.includes(f) ? Number(argv[argv.indexOf(f) + 1]) : d);
const str = (f: string, d: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);

function summarizeTrace(file: string, since: number, until: number) {
  const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; what: string; start: number; ms: number });
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

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'berth-prof-'));
  const trace = join(work, 'trace.jsonl');
  process.env.BERTH_TRACE = trace;
  const registry = await startRegistry();
  const runcRoot = join('/run', `berth-prof-${process.pid}`, 'runc');
  const dataDir = join(work, 'berth');
  execFileSync('mkdir', ['-p', dataDir]);
  writeFileSync(join(dataDir, 'config.json'), JSON.stringify({ sandboxPool: num('--pool', 8), ociRuntime: str('--runtime', 'auto') }));
  const berth = await startBerth({ dataDir, bridge: 'btprof0', subnet: '10.213.76.0/22', runcRoot });
  try {
    const image = (await buildImage(registry.host, 'prof', '1', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'] })).reference;
    const api = new Api(berth, 'bench'); // createMany lists the 'bench' subscription
    await api.createAndWait('warm', 'w0', group(image, { command: ['httpd', '-f', '-p', '31998', '-h', '/www'], ports: [31998], publish: true }));
    await api.deleteAndWait('warm', 'w0');
    await sleep(3000);
    const seq = num('--seq', 10);
    const lat: number[] = [];
    let t = Date.now();
    for (let i = 0; i < seq; i++) {
      const port = 33000 + i;
      const t0 = performance.now();
      await api.req('PUT', api.groupPath('lat', `l${i}`), group(image, { command: ['httpd', '-f', '-p', String(port), '-h', '/www'], ports: [port], publish: true }));
      await waitTcp('127.0.0.1', port);
      lat.push(performance.now() - t0);
      await api.deleteAndWait('lat', `l${i}`);
      await sleep(300);
    }
    await sleep(1000);
    console.log(`sequential: ${JSON.stringify(summarize(lat))}\n${summarizeTrace(trace, t, Date.now())}\n`);
    const n = num('--groups', 100);
    if (n > 0) {
      t = Date.now();
      const tp = await createMany(api, image, 'tp', n, 43000);
      await sleep(1000);
      console.log(`concurrent: ${JSON.stringify(tp)}\n${summarizeTrace(trace, t, Date.now())}\n`);
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
