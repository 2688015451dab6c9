// The command runner (berth-spawnd) keeps execFile's contract: output, exit code, stdin, env, cwd, a missing binary, a timeout.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SPAWN_HELPER, execCommand, runCommand, spawnWithSyncPipe } from './spawner.js';

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('the helper is built, and commands run through it (not through a fork of this process)', async () => {
  assert.ok(existsSync(DEFAULT_SPAWN_HELPER), 'npm run build makes dist/libexec/berth-spawnd');
  const { stdout } = await runCommand('/bin/sh', ['-c', 'cat /proc/$PPID/comm']);
  assert.equal(stdout.trim(), 'berth-spawnd');
});

test('runs commands with their output, exit code, stdin, env and working directory', async () => {
  const ok = await execCommand('/bin/sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'from stdin' });
  assert.deepEqual({ code: ok.code, stdout: ok.stdout, stderr: ok.stderr, error: ok.error }, { code: 3, stdout: 'from stdin', stderr: 'err\n', error: undefined });
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => runCommand('/bin/echo', [String(i)])));
  assert.deepEqual(many.map((r) => r.stdout), Array.from({ length: 50 }, (_, i) => `${i}\n`));
  await assert.rejects(runCommand('/bin/sh', ['-c', 'echo nope >&2; exit 1']), (e: Error & { stderr?: string; code?: number }) => e.stderr === 'nope\n' && e.code === 1);
  // a name is looked up in the PATH of the env given; the env is exactly the one given
  const env = await runCommand('env', [], { env: { PATH: '/usr/bin:/bin', ONLY: 'this' } });
  assert.deepEqual(env.stdout.trim().split('\n').sort(), ['ONLY=this', 'PATH=/usr/bin:/bin']);
  assert.equal((await runCommand('pwd', [], { cwd: '/proc' })).stdout, '/proc\n');
  // large output and large input pass whole
  const big = 'x'.repeat(3 << 20);
  assert.equal((await runCommand('/bin/cat', [], { input: big })).stdout.length, big.length);
  // a NUL inside an argument cannot reach execve: refused, and the helper keeps its framing
  assert.match((await execCommand('/bin/echo', ['a\0b'])).error ?? '', /NUL byte/);
  assert.equal((await runCommand('/bin/echo', ['still in step'])).stdout, 'still in step\n');
  const missing = await execCommand('/nonexistent/binary', []);
  assert.match(missing.error ?? '', /ENOENT/);
  assert.match((await execCommand('no-such-command-anywhere', [])).error ?? '', /ENOENT/);
  const slow = await execCommand('/bin/sleep', ['5'], { timeoutMs: 100 });
  assert.equal(slow.signal, 'SIGKILL');
  const signalled = await execCommand('/bin/sh', ['-c', 'kill -TERM $$']);
  assert.deepEqual([signalled.code, signalled.signal], [null, 'SIGTERM']);
});

test('built-in mount and umount call the kernel directly and report its errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'spawnd-'));
  try {
    await runCommand('@mount', ['berthtest', dir, 'tmpfs', '0', 'size=1m']);
    writeFileSync(join(dir, 'f'), 'on tmpfs');
    assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${dir} .* - tmpfs berthtest `));
    await runCommand('@umount', [dir, '0']);
    assert.equal(existsSync(join(dir, 'f')), false);
    await assert.rejects(runCommand('@umount', [dir, '0']), (e: Error & { stderr?: string }) => /not mounted|Invalid argument/.test(e.stderr ?? ''));
    await assert.rejects(runCommand('@mount', ['x', join(dir, 'missing'), 'tmpfs', '0', '']), (e: Error & { stderr?: string }) => /No such file/.test(e.stderr ?? ''));
  } finally {
    try { execFileSync('umount', [dir], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process with a sync pipe is answered on its first line and lives on, with stdio on /dev/null', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'spawnd-'));
  try {
    const script = 'echo "{\\"data\\": $$}" >&3; exec 3>&-; echo out; t=$(readlink /proc/$$/fd/1); echo "-> $t" > fd1.tmp; mv fd1.tmp fd1; exec sleep 30';
    const r = await spawnWithSyncPipe('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin' }, cwd: dir });
    const pid = (JSON.parse(r.line) as { data: number }).data;
    assert.equal(r.error, undefined);
    assert.ok(pidAlive(pid), 'still running after the answer');
    for (let i = 0; i < 100 && !existsSync(join(dir, 'fd1')); i++) await new Promise((res) => setTimeout(res, 20));
    assert.match(readFileSync(join(dir, 'fd1'), 'utf8'), /-> \/dev\/null/);
    // its own session: it is no process group leader's follower of ours
    assert.equal(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[3], String(pid));
    process.kill(pid, 'SIGKILL');
    const gone = await spawnWithSyncPipe('/bin/sh', ['-c', 'exit 1'], { env: { PATH: '/bin' }, cwd: dir });
    assert.equal(gone.line, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a helper that dies fails what it was running, and the next command gets a new one', async () => {
  const helperPid = Number((await runCommand('/bin/sh', ['-c', 'echo $PPID'])).stdout);
  const running = execCommand('/bin/sleep', ['10']);
  await new Promise((res) => setTimeout(res, 100));
  process.kill(helperPid, 'SIGKILL');
  const r = await running;
  assert.match(r.error ?? '', /berth-spawnd exited/);
  const again = Number((await runCommand('/bin/sh', ['-c', 'echo $PPID'])).stdout);
  assert.notEqual(again, helperPid);
  assert.equal((await runCommand('/bin/echo', ['fine'])).stdout, 'fine\n');
});

test('built-in netns-add makes a named network namespace with its loopback up, netns-del removes it', async () => {
  const name = `berth-spawnd-test-${process.pid}`;
  const path = `/run/netns/${name}`;
  try {
    await runCommand('@netns-add', [name]);
    assert.ok(existsSync(path));
    const links = execFileSync('ip', ['-n', name, '-o', 'link', 'show'], { encoding: 'utf8' }).trim().split('\n');
    assert.equal(links.length, 1, 'only the loopback');
    assert.match(links[0], /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
    // a separate namespace: not the host's
    assert.notEqual(execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }), execFileSync('ip', ['netns', 'exec', name, 'readlink', '/proc/self/ns/net'], { encoding: 'utf8' }));
    await assert.rejects(runCommand('@netns-add', [name]), (e: Error & { stderr?: string }) => /File exists/.test(e.stderr ?? ''));
    await assert.rejects(runCommand('@netns-add', ['../etc']), (e: Error & { stderr?: string }) => /invalid network namespace name/.test(e.stderr ?? ''));
    await runCommand('@netns-del', [name]);
    assert.equal(existsSync(path), false);
    assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${path} `));
    await assert.rejects(runCommand('@netns-del', [name]), (e: Error & { stderr?: string }) => /No such file/.test(e.stderr ?? ''));
  } finally {
    if (existsSync(path)) execFileSync('ip', ['netns', 'delete', name]);
  }
});

/** Loop devices whose backing file is `file` (the kernel's own record, as losetup reads it). */
const loopsBacking = (file: string) => readdirSync('/sys/block').filter((d) => {
  try {
    return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim() === file;
  } catch {
    return false;
  }
});

test('built-in loop-mount mounts an image file on a loop device that detaches itself once unmounted, also when the mount fails', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'spawnd-'));
  const image = join(dir, 'disk.img');
  const target = join(dir, 'mnt');
  try {
    mkdirSync(target);
    execFileSync('truncate', ['-s', '64M', image]);
    // not formatted yet: the mount fails, and the device it took is free again
    await assert.rejects(runCommand('@loop-mount', [image, target, 'ext4', '0', '']), (e: Error & { stderr?: string; code?: number }) => e.code === 32 && /mount \/dev\/loop\d+ .* on /.test(e.stderr ?? ''));
    assert.deepEqual(loopsBacking(image), []);
    execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-m', '0', image]);
    const { stdout } = await runCommand('@loop-mount', [image, target, 'ext4', '0', 'noinit_itable']);
    const dev = stdout.trim();
    assert.match(dev, /^\/dev\/loop\d+$/);
    assert.deepEqual(loopsBacking(image), [basename(dev)]);
    assert.equal(readFileSync(`/sys/block/${basename(dev)}/loop/autoclear`, 'utf8').trim(), '1');
    assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${target} .* - ext4 ${dev} `));
    writeFileSync(join(target, 'f'), 'on the image');
    await runCommand('@umount', [target, '0']);
    assert.deepEqual(loopsBacking(image), [], 'the loop device went with the mount');
    await assert.rejects(runCommand('@loop-mount', [join(dir, 'missing.img'), target, 'ext4', '0', '']), (e: Error & { stderr?: string; code?: number }) => e.code === 2 && /No such file/.test(e.stderr ?? ''));
  } finally {
    try { execFileSync('umount', [target], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  }
});
