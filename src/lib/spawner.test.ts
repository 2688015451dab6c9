// The off-thread command runner keeps execFile's contract: output, exit code, stdin, a missing binary, a timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execOffThread, runOffThread } from './spawner.js';

test('runs commands off the event loop with their output, exit code and stdin', async () => {
  const ok = await execOffThread('/bin/sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'from stdin' });
  assert.deepEqual({ code: ok.code, stdout: ok.stdout, stderr: ok.stderr, error: ok.error }, { code: 3, stdout: 'from stdin', stderr: 'err\n', error: undefined });
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => runOffThread('/bin/echo', [String(i)])));
  assert.deepEqual(many.map((r) => r.stdout), Array.from({ length: 20 }, (_, i) => `${i}\n`));
  await assert.rejects(runOffThread('/bin/sh', ['-c', 'echo nope >&2; exit 1']), (e: Error & { stderr?: string; code?: number }) => e.stderr === 'nope\n' && e.code === 1);
  const missing = await execOffThread('/nonexistent/binary', []);
  assert.match(missing.error ?? '', /ENOENT/);
  const slow = await execOffThread('/bin/sleep', ['5'], { timeoutMs: 100 });
  assert.equal(slow.signal, 'SIGKILL');
});
