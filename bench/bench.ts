// Benchmark driver: berth create-to-running vs the raw runtime floor and podman/docker, then throughput, teardown, density and leaks.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageStore } from '../src/runtime/image/store.js';
import { Api, cleanupDir, group, groupDiskLoops, hostFootprint, startBerth, type BerthProcess } from '../test/helpers/berth.js';
import { buildImage } from '../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { startFloor, type Floor } from './floor.js';
import {
  childrenNamed, findProcesses, iptablesSnapshot, meanPssMiB, pssKiB, restoreIptables, rssKiB, run, sleep, summarize, version, waitTcp, type Summary,
} from './lib.js';
import { startDocker, startPodman, type Peer } from './peers.js';

interface Options {
  quick: boolean;
  samples: number;
  throughputGroups: number;
  densityGroups: number;
  peerDensity: number;
  peers: boolean;
  poolSize: number;
  ociRuntime: string;
  json?: string;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const num = (flag: string, d: number) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const str = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    quick,
    samples: num('--samples', quick ? 5 : 50),
    throughputGroups: num('--groups', quick ? 20 : 500),
    densityGroups: num('--density', quick ? 10 : 200),
    peerDensity: num('--peer-density', quick ? 5 : 50),
    peers: !argv.includes('--no-peers'),
    // the server's defaults; `--pool 0 --runtime runc` measures berth without its fast paths
    poolSize: num('--pool', 8),
    ociRuntime: str('--runtime') ?? 'auto',
    json: str('--json'),
  };
}

const BRIDGE = 'btbench0';
const SUBNET = '10.213.80.0/22';
const SUB = 'bench';
// Peers publish with a proxy that binds its host port: theirs stay below the ephemeral range (32768+), where a
// client socket of the moment could hold the port.
const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];
/** ACI publishes a port as itself (no remapping): the server inside listens on the published port. */
export const httpdOn = (port: number) => ['httpd', '-f', '-p', String(port), '-h', '/www'];
/** Peer rules and chains (docker's, netavark's, and anything on their bridges/subnets): never berth's. */
const PEER_RULE = /DOCKER|NETAVARK|docker0|podman0|10\.213\.(88|92)\./;

const ms = (t0: number) => performance.now() - t0;
const log = (s: string) => console.error(`bench: ${s}`);

/** Groups in one resource group, by instance-view state, following nextLink pages. */
async function statesOf(api: Api, rg: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let url: string | undefined = `/subscriptions/${SUB}/resourceGroups/${rg}/providers/Microsoft.ContainerInstance/containerGroups`;
  while (url) {
    const r = await api.req('GET', url);
    if (r.status !== 200) throw new Error(`list ${rg}: ${r.status} ${r.text}`);
    for (const g of r.body.value ?? []) {
      const p = g.properties;
      // List results carry no group instance view (as ACI's): a group runs when all its containers do.
      const running = (p.containers ?? []).every((c: { properties: { instanceView?: { currentState?: { state?: string } } } }) => c.properties.instanceView?.currentState?.state === 'Running');
      out.set(g.name, p.provisioningState === 'Failed' ? 'Failed' : p.provisioningState === 'Succeeded' ? (running ? 'Running' : '?') : p.provisioningState);
    }
    url = r.body.nextLink;
  }
  return out;
}

/** Creates `n` groups at once; resolves when all are Running (or failed), with timings. */
export async function createMany(api: Api, image: string, rg: string, n: number, firstPort: number) {
  const t0 = performance.now();
  let putFailures = 0;
  await Promise.all(Array.from({ length: n }, (_, i) =>
    api.req('PUT', api.groupPath(rg, `g${i}`), group(image, { command: httpdOn(firstPort + i), ports: [firstPort + i], publish: true, cpu: 0.1, memoryInGB: 0.05 }))
      .then((r) => { if (r.status !== 201 && r.status !== 200) { putFailures++; log(`PUT g${i}: ${r.status} ${r.text}`); } })));
  const acceptedMs = ms(t0);
  let states = new Map<string, string>();
  for (;;) {
    states = await statesOf(api, rg);
    const settled = [...states.values()].filter((s) => s === 'Running' || s === 'Failed').length;
    if (settled + putFailures >= n) break;
    if (ms(t0) > 600_000) throw new Error(`${rg}: only ${settled}/${n} settled after 10 min`);
    // each poll lists every group through the API (work for the server being measured): 4 a second
    await sleep(250);
  }
  const allRunningMs = ms(t0);
  const failed = [...states.values()].filter((s) => s !== 'Running').length + putFailures;
  return { groups: n, acceptedMs: Math.round(acceptedMs), allRunningMs: Math.round(allRunningMs), createsPerSec: Math.round((n / allRunningMs) * 1000 * 10) / 10, failures: failed };
}

export async function deleteMany(api: Api, rg: string) {
  const names = [...(await statesOf(api, rg)).keys()];
  const t0 = performance.now();
  let failures = 0;
  await Promise.all(names.map((n) => api.req('DELETE', api.groupPath(rg, n)).then((r) => {
    if (r.status !== 202 && r.status !== 204) {
      // counted as a failure; asked once more so the run can end and the host be cleaned
      failures++;
      log(`DELETE ${n}: ${r.status} ${r.text}`);
      return sleep(1000).then(() => api.req('DELETE', api.groupPath(rg, n))).then((again) => log(`DELETE ${n} again: ${again.status}`));
    }
  })));
  while ((await statesOf(api, rg)).size > 0) {
    if (ms(t0) > 600_000) throw new Error(`${rg}: groups still there after 10 min`);
    await sleep(250);
  }
  const t = ms(t0);
  return { groups: names.length, allDeletedMs: Math.round(t), deletesPerSec: Math.round((names.length / t) * 1000 * 10) / 10, failures };
}

/** Containers any OCI runtime still holds under berth's state root (runc and crun keep one dir per container). */
const runtimeStateDirs = (root: string) => (existsSync(root) ? readdirSync(root).length : 0);

export async function main(argv: string[]) {
  const o = parseArgs(argv);
  const work = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  const runcRoot = join('/run', `berth-bench-${process.pid}`, 'runc');
  const baseline = { ...hostFootprint(runcRoot), runtimeState: 0 };
  const result: Record<string, unknown> = { options: o };
  const cleanups: (() => Promise<unknown>)[] = [];
  let registry: TestRegistry | undefined;
  let berth: BerthProcess | undefined;
  let floor: Floor | undefined;
  const peers: Peer[] = [];
  try {
    result.machine = {
      nproc: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
      memGiB: Math.round((Number(/MemTotal:\s+(\d+)/.exec(execFileSync('cat', ['/proc/meminfo'], { encoding: 'utf8' }))![1]) / 1024 / 1024) * 10) / 10,
      kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
      node: process.version,
      runc: await version('/usr/sbin/runc'),
      crun: await version('/usr/bin/crun'),
      conmon: await version('/usr/bin/conmon'),
      podman: await version('/usr/bin/podman'),
      docker: await version('/usr/bin/docker'),
    };

    registry = await startRegistry();
    const image = (await buildImage(registry.host, 'bench', '1', { cmd: HTTPD })).reference;
    log(`image ${image}`);

    const dataDir = join(work, 'berth');
    const config = { sandboxPool: o.poolSize, ociRuntime: o.ociRuntime };
    execFileSync('mkdir', ['-p', dataDir]);
    writeFileSync(join(dataDir, 'config.json'), JSON.stringify(config));
    berth = await startBerth({ dataDir, bridge: BRIDGE, subnet: SUBNET, runcRoot });
    const api = new Api(berth, SUB);
    // warm-up: the image is pulled and unpacked once, like every cached image after it
    await api.createAndWait('warm', 'w0', group(image, { command: httpdOn(31999), ports: [31999], publish: true }));
    await waitTcp('127.0.0.1', 31999);
    await api.deleteAndWait('warm', 'w0');

    const images = new ImageStore({ root: join(work, 'floor-images') });
    floor = await startFloor(join(work, 'floor'), await images.pull(image));
    log(`floor runtimes: ${floor.runtimes.join(', ')}`);

    let ipt: Awaited<ReturnType<typeof iptablesSnapshot>> | undefined;
    if (o.peers) {
      ipt = await iptablesSnapshot();
      const forwardPolicy = /^:FORWARD (\S+)/m.exec(await run('iptables-save', ['-t', 'filter']))?.[1] ?? 'ACCEPT';
      cleanups.push(async () => {
        const removed = await restoreIptables(ipt!, PEER_RULE);
        // dockerd sets FORWARD to DROP when it enables forwarding itself
        await run('iptables', ['-P', 'FORWARD', forwardPolicy]).catch(() => undefined);
        log(`peers: removed ${removed.rules} iptables rules and ${removed.chains} chains they added`);
      });
      for (const start of [startPodman, startDocker]) {
        try {
          const p = await start(join(work, start === startPodman ? 'podman' : 'docker'), image);
          if (p) peers.push(p);
        } catch (e) {
          log(`peer unavailable: ${(e as Error).message}`);
        }
      }
      log(`peers: ${peers.map((p) => `${p.name} (${p.runtime})`).join(', ') || 'none'}`);
    }

    // --- latency, interleaved: each round runs every subject once, in a rotating order ---
    const subjects: { name: string; sample: (i: number) => Promise<number> }[] = [
      {
        name: 'berth',
        sample: async (i) => {
          const port = 32000 + i;
          const t0 = performance.now();
          const r = await api.req('PUT', api.groupPath('lat', `l${i}`), group(image, { command: httpdOn(port), ports: [port], publish: true }));
          if (r.status !== 201) throw new Error(`PUT: ${r.status} ${r.text}`);
          await waitTcp('127.0.0.1', port);
          const t = ms(t0);
          const d0 = performance.now();
          await api.deleteAndWait('lat', `l${i}`);
          berthDeletes.push(ms(d0));
          return t;
        },
      },
      ...floor.runtimes.map((rt) => ({ name: `${rt} run -d (floor)`, sample: (i: number) => floor!.sample(rt, i) })),
      ...peers.map((p, k) => ({ name: `${p.name} run -d`, sample: (i: number) => p.sample(i, 20000 + k * 2000 + i) })),
    ];
    const berthDeletes: number[] = [];
    const samples = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
    for (let i = 0; i < o.samples; i++) {
      for (let k = 0; k < subjects.length; k++) {
        const s = subjects[(i + k) % subjects.length];
        samples.get(s.name)!.push(await s.sample(i));
      }
      if ((i + 1) % 10 === 0) log(`latency round ${i + 1}/${o.samples}`);
    }
    const latency: Record<string, Summary | undefined> = {};
    for (const [k, v] of samples) latency[k] = summarize(v);
    latency['berth delete (API -> gone)'] = summarize(berthDeletes);
    result.latency = latency;
    const p50 = (k: string) => latency[k]?.p50;
    const ratios: Record<string, number> = {};
    const ratio = (name: string, other: string) => {
      const a = p50('berth');
      const b = p50(other);
      if (a && b) ratios[name] = Math.round((a / b) * 100) / 100;
    };
    for (const p of peers) ratio(`berth/${p.name}`, `${p.name} run -d`);
    for (const rt of floor.runtimes) ratio(`berth/${rt} floor`, `${rt} run -d (floor)`);
    if (latency.berth) ratios['berth p99/p50'] = Math.round((latency.berth.p99 / latency.berth.p50) * 100) / 100;
    result.ratios = ratios;

    // --- density: monitors of the peers, then berth's with densityGroups running ---
    const density: Record<string, unknown> = {};
    for (const [k, p] of peers.entries()) density[p.name] = await p.monitorPss(o.peerDensity, 24000 + k * 1000);
    const serverPid = berth.child.pid!;
    // the server and its berth-spawnd (one for the whole server) are berth's own memory
    const berthPssKiB = () => pssKiB(serverPid) + childrenNamed(serverPid, 'berth-spawnd').reduce((a, p) => a + pssKiB(p), 0);
    const pss0 = berthPssKiB();
    const rss0 = rssKiB(serverPid);
    const dens = await createMany(api, image, 'dens', o.densityGroups, 40000);
    await sleep(500);
    const conmons = findProcesses('conmon', dataDir);
    const growthPss = (berthPssKiB() - pss0) / 1024 / o.densityGroups;
    const growthRss = (rssKiB(serverPid) - rss0) / 1024 / o.densityGroups;
    density.berth = {
      groups: o.densityGroups, running: dens.groups - dens.failures, monitor: 'conmon', count: conmons.length,
      meanMonitorPssMiB: round3(meanPssMiB(conmons)), serverPssGrowthPerGroupMiB: round3(growthPss), serverRssGrowthPerGroupMiB: round3(growthRss),
      perGroupOverheadMiB: round3(meanPssMiB(conmons) + Math.max(0, growthPss)),
      serverPssMiB: round3(berthPssKiB() / 1024),
    };
    for (const p of peers) {
      const d = density[p.name] as { meanPssMiB: number };
      d.meanPssMiB = round3(d.meanPssMiB);
    }
    result.density = density;
    await deleteMany(api, 'dens');

    for (const p of peers.splice(0)) await p.close().catch((e) => log(`closing ${p.name}: ${(e as Error).message}`));
    for (const c of cleanups.splice(0)) await c();

    // --- throughput and teardown: all at once, through the API ---
    // from a settled host: the kernel finishes the deleted groups' namespaces and writeback in the background
    await sleep(o.quick ? 1000 : 10_000);
    const tp = await createMany(api, image, 'tp', o.throughputGroups, 42000);
    log(`throughput: ${JSON.stringify(tp)}`);
    const td = await deleteMany(api, 'tp');
    log(`teardown: ${JSON.stringify(td)}`);
    result.throughput = tp;
    result.teardown = td;

    await berth.stop();
    const stoppedDataDir = berth.dataDir;
    berth = undefined;
    await run('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
    await floor.close();
    floor = undefined;
    // loop devices are the machine's, shared with every other berth on it: this server's are those of its data dir
    // (its pool's included; new with it, so none before)
    const after = { ...hostFootprint(runcRoot), runtimeState: runtimeStateDirs(runcRoot), diskLoops: groupDiskLoops(stoppedDataDir, true).length };
    const leaks = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (k === 'diskLoops' ? 0 : (baseline as Record<string, number>)[k])]));
    result.leaks = leaks;
    cleanupDir(stoppedDataDir);
  } finally {
    for (const p of peers) await p.close().catch((e) => log(`closing ${p.name}: ${(e as Error).message}`));
    for (const c of cleanups) await c().catch((e) => log(`cleanup: ${(e as Error).message}`));
    if (berth) {
      await berth.destroy(['bench', SUB]).catch((e) => log(`stopping berth: ${(e as Error).message}`));
      await run('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
    }
    await floor?.close().catch(() => undefined);
    await registry?.stop();
    await run('rm', ['-rf', work, join('/run', `berth-bench-${process.pid}`)]).catch(() => undefined);
  }
  return result;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function report(r: Record<string, any>): string {
  const lines: string[] = [];
  lines.push('create-to-running (ms)            n     p50     p95     p99');
  for (const [k, s] of Object.entries(r.latency as Record<string, Summary | undefined>)) {
    if (s) lines.push(`${k.padEnd(30)} ${String(s.n).padStart(5)} ${s.p50.toFixed(1).padStart(7)} ${s.p95.toFixed(1).padStart(7)} ${s.p99.toFixed(1).padStart(7)}`);
  }
  lines.push('', 'ratios (p50): ' + Object.entries(r.ratios).map(([k, v]) => `${k} = ${v}`).join(', '));
  lines.push('', `throughput: ${JSON.stringify(r.throughput)}`, `teardown:   ${JSON.stringify(r.teardown)}`);
  lines.push('', 'density:');
  for (const [k, v] of Object.entries(r.density)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  lines.push('', `leaks (after - before): ${JSON.stringify(r.leaks)}`);
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('bench.js')) {
  main(process.argv.slice(2)).then(
    (r) => {
      console.log(report(r));
      const json = (r.options as Options).json;
      if (json) writeFileSync(json, JSON.stringify(r, null, 2));
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
