// Unit tests of the probe scheduler's thresholds and lifecycle (the real probes run in test/e2e/health.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Prober, type ProbeReport } from './prober.js';
import type { ProbeSpec } from './spec.js';

const def = (o: Partial<ProbeSpec> = {}): ProbeSpec => ({
  exec: { command: ['x'] }, initialDelaySeconds: 0, periodSeconds: 0.02, failureThreshold: 1, successThreshold: 1, timeoutSeconds: 1, ...o,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A probe whose answers follow a script, then repeat the last one. */
const scripted = (answers: boolean[]) => {
  let i = 0;
  const calls = { n: 0 };
  const fn = async () => {
    calls.n++;
    const ok = answers[Math.min(i++, answers.length - 1)];
    return { ok, message: ok ? 'fine' : 'broken' };
  };
  return { fn, calls };
};

async function until(what: string, fn: () => boolean, ms = 2000) {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

describe('Prober', () => {
  it('readiness turns healthy after successThreshold successes and unhealthy after failureThreshold failures', async () => {
    const reports: ProbeReport[] = [];
    const p = new Prober((r) => reports.push(r));
    const probe = scripted([true, true, false, false, true]);
    p.ensure('c@1', 'readiness', def({ successThreshold: 2, failureThreshold: 2 }), Date.now(), false, probe.fn);
    await until('five probes', () => reports.length >= 5);
    p.close();
    assert.deepEqual(reports.slice(0, 5).map((r) => [r.healthy, r.changed]), [
      [false, false], [true, true], [true, false], [false, true], [false, false],
    ]);
  });

  it('liveness reports once at failureThreshold and stops probing that instance', async () => {
    const reports: ProbeReport[] = [];
    const p = new Prober((r) => reports.push(r));
    const probe = scripted([true, false, false]);
    p.ensure('c@1', 'liveness', def({ failureThreshold: 2 }), Date.now(), true, probe.fn);
    await until('the failure', () => reports.some((r) => !r.healthy));
    await sleep(100);
    assert.equal(probe.calls.n, 3, 'no probes after the instance failed');
    assert.deepEqual(reports.map((r) => r.healthy), [true, true, false]);
    p.close();
  });

  it('waits initialDelaySeconds from the container start, keeps one worker per instance, and retain() stops the others', async () => {
    const p = new Prober(() => {});
    const a = scripted([true]);
    const b = scripted([true]);
    p.ensure('g1-c@1', 'readiness', def({ initialDelaySeconds: 1 }), Date.now(), false, a.fn);
    p.ensure('g1-c@1', 'readiness', def(), Date.now(), false, b.fn);
    await sleep(100);
    assert.equal(a.calls.n, 0, 'still in the initial delay');
    await until('first probe', () => a.calls.n > 0);
    assert.equal(b.calls.n, 0, 'a second ensure for the same instance adds no worker');
    p.retain('g1-', new Set());
    const n = a.calls.n;
    await sleep(100);
    assert.equal(a.calls.n, n, 'stopped');
    p.close();
  });
});
