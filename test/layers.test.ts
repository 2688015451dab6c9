// The layer rule: every import in src/ points down DESIGN.md's layers; the map below is the one place that says which way is down.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import ts from 'typescript';

const src = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'src');

/**
 * The layers, by path under src/ (a file is in the layer of its longest matching path), each with
 * what it may import besides itself: other layers, or single files of one.
 */
const LAYERS: Record<string, { path: string; may: string[] }> = {
  // Small shared pieces (the spawner, the error catalogue, the work queue, locks): no berth concepts, nothing above.
  lib: { path: 'lib/', may: [] },
  // One host: images, bundles, runc/crun and conmon, networks, cgroups, logs, exec, probes. No HTTP, no database, no ACI shapes.
  runtime: { path: 'runtime/', may: ['lib'] },
  // The host agent: level-triggered reconcile of the specs placed on its host, over the runtime.
  agent: { path: 'agent/', may: ['runtime', 'lib'] },
  // State behind one interface (SQLite, etcd).
  store: { path: 'store/', may: ['lib'] },
  // What every ARM provider shares: the HTTP edge (canonical targets, auth on the route that runs, api-version
  // checks, envelopes), LRO headers, tags, and Microsoft.Resources (subscriptions, resource groups, login).
  arm: { path: 'arm/', may: ['lib'] },
  // The container instances service: its ARM routes, model, admission, placement, the agent API. It drives agents through
  // their contract only (the host spec, the link and the statuses they report: agent/spec.ts, agent/link.ts,
  // agent/types.ts), never an agent's implementation.
  instances: { path: 'instances/', may: ['arm', 'store', 'agent/types.ts', 'agent/spec.ts', 'agent/link.ts', 'lib'] },
  // The one typed ARM client: speaks HTTP to the API, never imports what serves it.
  client: { path: 'client/', may: ['lib'] },
  // Everything above the API reaches berth through the client only, as any ACI user would.
  cli: { path: 'cli/', may: ['client', 'lib'] },
  connectors: { path: 'connectors/', may: ['client', 'lib'] },
  orchestrator: { path: 'orchestrator/', may: ['client', 'lib'] },
  web: { path: 'web/', may: ['client', 'lib'] },
  // The server's composition root: wires instances, agent, runtime and store into one process, and runs the
  // orchestrator in it by default (a client of the API it serves, reaching it over loopback through client/).
  server: { path: 'server', may: ['instances', 'arm', 'agent', 'runtime', 'store', 'orchestrator', 'client', 'lib'] },
  // The composition root of `berth agent`: one host's runtime and agent, linked to a control plane over the network.
  agentProcess: { path: 'agent-process.ts', may: ['agent', 'runtime', 'lib'] },
  // The `berth` binary: runs the server in-process (`berth server`, `up`) and registers the client-side
  // commands (cli/, connectors/); the one file that reaches both sides of the API.
  entry: { path: 'cli/main.ts', may: ['server', 'agentProcess', 'cli', 'connectors', 'orchestrator', 'client', 'lib'] },
};

/** npm packages that belong to one side only. */
const PACKAGES: Record<string, string[]> = {
  // the ARM HTTP front is the providers'
  fastify: ['arm', 'instances'],
  // state lives behind the store's interface
  'better-sqlite3': ['store'],
  etcd3: ['store'],
  // the Kubernetes API is the connector's business
  '@kubernetes/client-node': ['connectors'],
};

/** Imports that break the rule for a reason recorded here, until they are fixed. Empty: none today. */
const ALLOWED: { from: string; to: string; reason: string }[] = [];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? filesUnder(p) : e.endsWith('.ts') && !e.endsWith('.d.ts') ? [p] : [];
  });
}

/** The layer of a path relative to src/ (undefined: in none). */
export function layerOf(rel: string): string | undefined {
  let best: [string, number] | undefined;
  for (const [name, l] of Object.entries(LAYERS))
    if ((rel === l.path || rel.startsWith(l.path)) && (!best || l.path.length > best[1])) best = [name, l.path.length];
  return best?.[0];
}

/** Every import of a file: static, re-exports, side-effect and dynamic ones, with their line. */
function importsOf(file: string): { spec: string; line: number }[] {
  const text = readFileSync(file, 'utf8');
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map((f) => ({ spec: f.fileName, line: text.slice(0, f.pos).split('\n').length }));
}

/** What is wrong with one import, if anything. */
function verdict(fromRel: string, spec: string): string | undefined {
  const from = layerOf(fromRel)!;
  if (spec.startsWith('.')) {
    const target = relative(src, resolve(src, dirname(fromRel), spec)).replace(/\.js$/, '.ts');
    if (target.startsWith('..')) return undefined; // outside src/ (test helpers)
    const to = layerOf(target);
    if (to === undefined) return `${target} is in no layer`;
    if (to === from || LAYERS[from].may.includes(to) || LAYERS[from].may.includes(target)) return undefined;
    return `${from} may not use ${to} (${target}); it may use ${LAYERS[from].may.join(', ') || 'nothing of berth'}`;
  }
  const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  const owners = PACKAGES[pkg];
  if (owners && !owners.includes(from)) return `${pkg} belongs to ${owners.join(', ')}, not ${from}`;
  return undefined;
}

test('every import in src/ points down the layers', () => {
  const files = filesUnder(src).map((f) => relative(src, f));
  const unplaced = files.filter((f) => layerOf(f) === undefined);
  assert.deepEqual(unplaced, [], 'each file of src/ belongs to a layer of the map in test/layers.test.ts');
  const violations: string[] = [];
  for (const rel of files)
    for (const { spec, line } of importsOf(join(src, rel))) {
      const why = verdict(rel, spec);
      if (why && !ALLOWED.some((a) => rel === a.from && spec.includes(a.to))) violations.push(`src/${rel}:${line} imports '${spec}': ${why}`);
    }
  assert.deepEqual(violations, []);
});

test('only the client builds the ARM paths of berth\'s API above it', () => {
  // (the entry prints an example curl line for `berth up`; it speaks no HTTP of its own)
  const above = new Set(Object.keys(LAYERS).filter((name) => LAYERS[name].may.includes('client') && name !== 'entry'));
  const found = filesUnder(src).map((f) => relative(src, f))
    .filter((rel) => above.has(layerOf(rel)!) && !rel.endsWith('.test.ts'))
    .filter((rel) => /\/providers\/Microsoft\.|\/subscriptions\/\$\{/.test(readFileSync(join(src, rel), 'utf8')));
  assert.deepEqual(found, [], 'cli, connectors, orchestrator and web reach the API through src/client');
});

test('the map judges imports as DESIGN.md draws the arrows', () => {
  const judge = (from: string, spec: string) => verdict(from, spec) ?? 'ok';
  assert.equal(judge('cli/container.ts', '../client/index.js'), 'ok');
  assert.match(judge('connectors/kubernetes/run.ts', '../../cli/command.js'), /connectors may not use cli/);
  assert.match(judge('cli/container.ts', '../instances/service.js'), /cli may not use instances/);
  assert.equal(judge('instances/service.ts', '../agent/types.js'), 'ok');
  assert.equal(judge('instances/host-specs.ts', '../agent/spec.js'), 'ok');
  assert.match(judge('instances/hosts/gateway.ts', '../../agent/follower.js'), /instances may not use agent/);
  assert.match(judge('agent/agent.ts', '../store/store.js'), /agent may not use store/);
  assert.match(judge('instances/service.ts', '../agent/agent.js'), /instances may not use agent/);
  assert.match(judge('runtime/probe.ts', '../agent/types.js'), /runtime may not use agent/);
  assert.match(judge('lib/workqueue.ts', '../client/index.js'), /lib may not use client/);
  assert.match(judge('client/client.ts', '../instances/http.js'), /client may not use instances/);
  assert.match(judge('client/transport.ts', 'fastify'), /fastify belongs to arm, instances/);
  assert.equal(judge('cli/main.ts', '../server.js'), 'ok');
  assert.match(judge('cli/group.ts', '../server.js'), /cli may not use server/);
});
