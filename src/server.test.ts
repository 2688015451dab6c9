// The server's configuration defaults: the fast paths (sandbox pool, crun where usable) are on unless config.json says otherwise.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureConfig, exposedSecretsWarning, loadConfig } from './server.js';

test('a server keeps warm sandboxes and picks its OCI runtime by default; config.json turns either off', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
  try {
    const d = loadConfig(dir, {});
    assert.ok(d.sandboxPool > 0, 'a sandbox pool by default');
    assert.equal(d.ociRuntime, 'auto');
    assert.equal(d.agentPollMs, 10_000);
    assert.equal(d.diskLimitGB, 10, 'every group gets a 10 GB disk by default');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ sandboxPool: 0, ociRuntime: 'runc', diskLimitGB: 0 }));
    const off = loadConfig(dir, {});
    assert.equal(off.sandboxPool, 0);
    assert.equal(off.ociRuntime, 'runc');
    assert.equal(off.diskLimitGB, 0);
    assert.equal(loadConfig(dir, { diskLimitGB: 2 }).diskLimitGB, 2, 'the flag wins');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config file holding tokens or service principals that others may read is warned about; berth up tightens its own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-config-'));
  const file = join(dir, 'config.json');
  try {
    writeFileSync(file, JSON.stringify({ tokens: ['t0k3n'] }), { mode: 0o644 });
    chmodSync(file, 0o644);
    assert.equal(exposedSecretsWarning(file), `${file} holds API tokens and is readable by every user (mode 0644): run chmod 600 ${file}`);
    writeFileSync(file, JSON.stringify({ servicePrincipals: [{ clientId: 'c', clientSecret: 's', tenantId: 't' }] }));
    chmodSync(file, 0o640);
    assert.match(exposedSecretsWarning(file) ?? '', /holds service principals' secrets and is readable by its group \(mode 0640\)/);
    chmodSync(file, 0o600);
    assert.equal(exposedSecretsWarning(file), undefined);
    writeFileSync(file, JSON.stringify({ sandboxPool: 2 }));
    chmodSync(file, 0o644);
    assert.equal(exposedSecretsWarning(file), undefined, 'nothing secret in it');
    ensureConfig(dir);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
