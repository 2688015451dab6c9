// Store benchmark: get, put, an admission-shaped txn, list and watch delivery on SQLite and etcd side by side in one run,
// and the election handover after kill -9 of the leader's process.
// Usage: node dist/bench/store.js [--samples N] [--handovers N] [--json FILE]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Election } from '../src/store/election.js';
import { EtcdStore } from '../src/store/etcd.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/store.js';
import { startEtcd, type TestEtcd } from '../test/helpers/etcd.js';
import { summarize, type Summary } from './lib.js';

const { values: args } = parseArgs({
  options: { samples: { type: 'string', default: '300' }, handovers: { type: 'string', default: '3' }, json: { type: 'string' } },
});
const samples = Number(args.samples);
const handovers = Number(args.handovers);

interface Backend {
  name: string;
  store: Store;
  url: string;
  stop(): Promise<void>;
}

/** A value the size of a group record (~2 KB of JSON). */
const record = (i: number) => ({
  uid: `uid-${i}`,
  subscriptionId: 'default',
  resourceGroup: 'bench',
  name: `g${i}`,
  generation: 1,
  spec: {
    containers: [{
      name: 'web',
      image: '127.0.0.1:5000/web:1',
      command: ['/bin/httpd', '-f', '-p', '80'],
      env: Array.from({ length: 24 }, (_, j) => ({ name: `VARIABLE_${j}`, value: `value-${j}-${'x'.repeat(30)}` })),
      resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } },
      ports: [{ port: 80, protocol: 'TCP' }],
    }],
    ipAddress: { type: 'Public', ports: [{ port: 80, protocol: 'TCP' }], dnsNameLabel: `label-${i}` },
  },
});

async function backends(dir: string): Promise<Backend[]> {
  const sqlitePath = join(dir, 'bench.db');
  const sqlite: Backend = { name: 'sqlite', store: new SqliteStore(sqlitePath), url: sqlitePath, stop: async () => {} };
  const etcdOn = async (name: string, parent?: string): Promise<Backend> => {
    const server: TestEtcd = await startEtcd({ parent });
    const store = await EtcdStore.connect({ endpoints: [server.endpoint] });
    return { name, store, url: `etcd://${server.endpoint}`, stop: () => server.stop() };
  };
  return [sqlite, await etcdOn('etcd (disk)', dir), await etcdOn('etcd (tmpfs)')];
}

type Op = 'get' | 'put' | 'txn (admit)' | 'list 100' | 'watch delivery';
const ops: Op[] = ['get', 'put', 'txn (admit)', 'list 100', 'watch delivery'];

async function timeOnce(s: Store, op: Op, i: number, watched: Map<string, (at: number) => void>): Promise<number> {
  const t0 = performance.now();
  switch (op) {
    case 'get':
      await s.get(`/bench/groups/g${i % 100}`);
      break;
    case 'put':
      await s.put(`/bench/status/s${i % 500}`, record(i));
      break;
    case 'txn (admit)': {
      // what an admission writes: the group, its operation and its DNS name, each only if nothing changed
      const rg = await s.get('/bench/rgs/bench');
      await s.txn({
        if: [{ key: `/bench/new/g${i}`, modRevision: 0 }, { key: '/bench/rgs/bench', modRevision: rg!.modRevision }, { key: `/bench/dns/l${i}`, exists: false }],
        then: [{ put: `/bench/new/g${i}`, value: record(i) }, { put: `/bench/ops/o${i}`, value: { status: 'Running' } }, { put: `/bench/dns/l${i}`, value: { group: `g${i}` } }],
      });
      break;
    }
    case 'list 100':
      await s.list('/bench/groups/');
      break;
    case 'watch delivery': {
      const key = `/bench/w/${i}`;
      const seen = new Promise<number>((resolve) => watched.set(key, resolve));
      await s.put(key, record(i));
      return (await seen) - t0;
    }
  }
  return performance.now() - t0;
}

/** kill -9 of a process leading an election, until a candidate in this process leads. */
async function handover(b: Backend, n: number): Promise<number> {
  const campaigner = fileURLToPath(new URL('../test/helpers/campaigner.js', import.meta.url));
  const prefix = `/bench/election-${n}/`;
  const child = spawn(process.execPath, [campaigner, b.url, prefix, '2', 'child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`campaigner exited with ${code}`)));
    });
    const election = new Election(b.store, prefix);
    const campaign = election.campaign('bench', { ttlSeconds: 2 });
    while ((await b.store.list(prefix)).length < 2) await new Promise((r) => setTimeout(r, 10));
    const exited = new Promise((r) => child.once('exit', r));
    const t0 = performance.now();
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    const leadership = await campaign;
    const took = performance.now() - t0;
    await leadership.resign();
    return took;
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'berth-store-bench-'));
  const all = await backends(dir);
  try {
    const watched = all.map(() => new Map<string, (at: number) => void>());
    const stops = all.map((b, k) =>
      b.store.watch('/bench/w/', (e) => {
        const at = performance.now();
        watched[k].get(e.key)?.(at);
        watched[k].delete(e.key);
      }),
    );
    for (const b of all) {
      await b.store.put('/bench/rgs/bench', { name: 'bench' });
      for (let i = 0; i < 100; i += 50) await b.store.txn({ then: Array.from({ length: 50 }, (_, j) => ({ put: `/bench/groups/g${i + j}`, value: record(i + j) })) });
    }
    // let etcd's watches settle before timing deliveries
    await new Promise((r) => setTimeout(r, 500));
    const times = all.map(() => new Map<Op, number[]>(ops.map((op) => [op, []])));
    // rounds of 10 of each op per backend, the backends' order rotating: noise on this shared machine hits all alike
    for (let round = 0, i = 0; round * 10 < samples; round++) {
      for (let k = 0; k < all.length; k++) {
        const b = (round + k) % all.length;
        for (const op of ops) for (let j = 0; j < 10; j++) times[b].get(op)!.push(await timeOnce(all[b].store, op, i + j, watched[b]));
      }
      i += 10;
    }
    stops.forEach((stop) => stop());
    const result: Record<string, Record<string, Summary | undefined>> = {};
    // in microseconds: SQLite's answers take a fraction of a millisecond
    for (const [k, b] of all.entries()) result[b.name] = Object.fromEntries(ops.map((op) => [op, summarize(times[k].get(op)!.map((ms) => ms * 1000))]));
    const handoverMs: Record<string, Summary | undefined> = {};
    for (const b of [all[0], all[1]]) {
      const xs: number[] = [];
      for (let n = 0; n < handovers; n++) xs.push(await handover(b, n));
      handoverMs[b.name] = summarize(xs);
    }
    const ratio = (name: string, op: Op) => Math.round(result[name][op]!.p50 / result.sqlite[op]!.p50);
    console.log(`store operations, µs (${samples} samples each; p50 / p95; ratio = p50 / sqlite's p50)`);
    console.log(['op'.padEnd(16), ...all.map((b) => b.name.padEnd(26))].join(''));
    for (const op of ops)
      console.log([op.padEnd(16), ...all.map((b) => `${result[b.name][op]!.p50} / ${result[b.name][op]!.p95}${b.name === 'sqlite' ? '' : `  (${ratio(b.name, op)}x)`}`.padEnd(26))].join(''));
    console.log(`election handover after kill -9 of the leader's process (TTL 2 s, ${handovers} runs): ` +
      Object.entries(handoverMs).map(([name, s]) => `${name} p50 ${s!.p50} ms, max ${s!.max} ms`).join('; '));
    if (args.json) writeFileSync(args.json, JSON.stringify({ samples, operations: result, handoverMs }, null, 2));
  } finally {
    for (const b of all) {
      await b.store.close();
      await b.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
