// Smoke run of the benchmark (--quick, no peers): it completes, reports every figure, and leaves nothing behind. No timing is asserted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

test('bench --quick completes, reports latency, throughput, teardown and density, and leaks nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-smoke-'));
  try {
    const out = join(dir, 'result.json');
    let output = '';
    const child = spawn(process.execPath, [join(repo, 'dist/bench/bench.js'), '--quick', '--no-peers', '--json', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0, output);
    const r = JSON.parse(readFileSync(out, 'utf8'));

    assert.equal(r.latency.berth.n, 5, output);
    assert.ok(r.latency.berth.p50 > 0);
    assert.ok(r.latency['runc run -d (floor)']?.n === 5, 'the runc floor is measured');
    assert.ok(r.ratios['berth/runc floor'] > 0);
    assert.equal(r.throughput.groups, 20);
    assert.equal(r.throughput.failures, 0, output);
    assert.equal(r.teardown.groups, 20);
    assert.equal(r.teardown.failures, 0);
    assert.equal(r.density.berth.count, r.density.berth.groups, 'one conmon per running group');
    assert.ok(r.density.berth.perGroupOverheadMiB > 0);
    for (const [what, n] of Object.entries(r.leaks)) assert.equal(n, 0, `leaked ${what}: ${output}`);
    assert.match(output, /create-to-running/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
