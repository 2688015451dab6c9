// The server's configuration defaults: the fast paths (sandbox pool, crun where usable) are on unless config.json says otherwise.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chooseOciRuntime } from './runtime/container/runtime.js';
import { loadConfig } from './server.js';

test('a server keeps warm sandboxes and picks its OCI runtime by default; config.json turns either off', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
  try {
    const d = loadConfig(dir, {});
    assert.ok(d.sandboxPool > 0, 'a sandbox pool by default');
    assert.equal(d.ociRuntime, 'auto');
    assert.equal(d.agentPollMs, 10_000);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ sandboxPool: 0, ociRuntime: 'runc' }));
    const off = loadConfig(dir, {});
    assert.equal(off.sandboxPool, 0);
    assert.equal(off.ociRuntime, 'runc');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("'auto' falls back to runc where crun is not installed", () => {
  assert.equal(chooseOciRuntime('auto', { runc: '/usr/sbin/runc', crun: '/nonexistent/crun' }), '/usr/sbin/runc');
  assert.equal(chooseOciRuntime('runc'), '/usr/sbin/runc');
  assert.equal(chooseOciRuntime('crun'), '/usr/bin/crun');
});
