// Which OCI runtime berth takes: the one asked for, or under 'auto' crun where it is installed and can run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseOciRuntime } from './oci-runtime.js';

test("'auto' falls back to runc where crun is not installed", () => {
  assert.equal(chooseOciRuntime('auto', { runc: '/usr/sbin/runc', crun: '/nonexistent/crun' }), '/usr/sbin/runc');
  assert.equal(chooseOciRuntime('runc'), '/usr/sbin/runc');
  assert.equal(chooseOciRuntime('crun'), '/usr/bin/crun');
});
