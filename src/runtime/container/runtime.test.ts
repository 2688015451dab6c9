// Integration tests of ContainerRuntime against the real runc and conmon (needs root).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ContainerSpec } from '../types.js';
import { ContainerRuntime } from './runtime.js';
import { containerSpec, runtimeTestbed, waitFor } from './testing.js';

const { dir, root, runcRoot, cgroupParent, netnsPath, image, rt, spec, execOut } = runtimeTestbed();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const waitExited = (id: string) => waitFor(async () => {
  const st = await rt.status(id);
  return st?.state === 'exited' ? st : undefined;
});

/** Runs a command to completion and returns its status and logs. */
async function runToEnd(id: string, command: string[], extra: Partial<ContainerSpec> = {}) {
  await rt.start(spec(id, { command, ...extra }));
  const st = await waitExited(id);
  return { st, logs: await rt.readLogs(id) };
}

describe('ContainerRuntime', () => {
  it('records the exit code and times of a finished container', async () => {
    const { st } = await runToEnd('exit3', ['sh', '-c', 'exit 3']);
    assert.equal(st.state, 'exited');
    assert.equal(st.exitCode, 3);
    assert.equal(st.oomKilled, false);
    assert.ok(st.startedAt && st.finishedAt && st.finishedAt >= st.startedAt);
    assert.deepEqual(await rt.list(), [...(await rt.list())].sort());
    assert.ok((await rt.list()).includes('exit3'));
  });

  it('tells a watcher of each exit as conmon records it', async () => {
    const seen: string[] = [];
    const unwatch = rt.watchExits((id) => seen.push(id));
    try {
      await rt.start(spec('watched', { command: ['sh', '-c', 'sleep 0.2; exit 4'] }));
      assert.ok(!seen.includes('watched'), 'no exit while it runs');
      await waitFor(async () => seen.includes('watched'));
      assert.equal((await rt.status('watched'))?.exitCode, 4);
    } finally {
      unwatch();
    }
  });

  it('mounts a rootfs ahead of start, and start uses it', async () => {
    await rt.prepare('prepared', image.layerDirs);
    assert.equal(await rt.status('prepared'), undefined, 'a prepared container is not one to adopt: it still needs starting');
    const rootfs = join(root, 'prepared', 'bundle', 'rootfs');
    assert.ok(existsSync(join(rootfs, 'bin', 'busybox')), 'the overlay is mounted');
    const mounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === rootfs).length;
    assert.equal(mounts(), 1);
    const { st } = await runToEnd('prepared', ['sh', '-c', 'exit 0']);
    assert.equal(st.exitCode, 0);
    assert.equal(mounts(), 1, 'start did not mount it a second time');
    await rt.remove('prepared');
    assert.equal(mounts(), 0);
  });

  it('refuses to start a command the image does not have, with the reason, as when the command was PID 1', async () => {
    await assert.rejects(rt.start(spec('nocmd', { command: ['no-such-command'] })), /exec: "no-such-command": executable file not found in \$PATH/);
    await assert.rejects(rt.start(spec('nocmd', { command: ['/etc/passwd'] })), /exec: "\/etc\/passwd": permission denied/);
    await rt.remove('nocmd');
  });

  it('reports undefined for an unknown container', async () => {
    assert.equal(await rt.status('no-such-container'), undefined);
  });

  it('captures stdout and stderr, with tail and timestamps', async () => {
    await runToEnd('logs', ['sh', '-c', 'echo one; echo two >&2; sleep 0.1; echo three; printf partial']);
    // stdout and stderr are separate pipes: order holds within a stream only
    const all = await rt.readLogs('logs');
    assert.deepEqual(all.split('\n').sort(), ['', 'one', 'partial', 'three', 'two']);
    assert.ok(all.indexOf('one') < all.indexOf('three'));
    assert.equal(await rt.readLogs('logs', { tail: 2 }), 'three\npartial\n');
    assert.equal(await rt.readLogs('logs', { tail: 0 }), '');
    const ts = (await rt.readLogs('logs', { timestamps: true, tail: 1 })).trimEnd();
    assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) partial$/);
    const raw = readFileSync(rt.logPath('logs'), 'utf8');
    assert.match(raw, / stderr F two\n/);
    assert.match(raw, / stdout P partial\n/);
  });

  it('follows logs until the container ends', async () => {
    await rt.start(spec('follow', { command: ['sh', '-c', 'echo a; sleep 0.3; echo b; sleep 0.3; echo c'] }));
    let text = '';
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 10_000);
    await rt.followLogs('follow', {}, (t) => (text += t), ac.signal);
    clearTimeout(timer);
    assert.equal(text, 'a\nb\nc\n');
  });

  it('marks a container killed by its memory limit as oomKilled', async () => {
    const { st } = await runToEnd('oom', ['dd', 'if=/dev/zero', 'bs=64M', 'count=1', 'of=/dev/null'], { memoryLimitBytes: 16 << 20 });
    assert.equal(st.exitCode, 137);
    assert.equal(st.oomKilled, true);
  });

  it('applies cpu quota, pids and memory limits to the cgroup', async () => {
    const st = await rt.start(spec('limits', { command: ['sleep', '30'], cpuLimit: 0.25, pidsLimit: 50, memoryLimitBytes: 32 << 20 }));
    assert.equal(st.state, 'running');
    const cg = (ctl: string, file: string) => readFileSync(join('/sys/fs/cgroup', ctl, cgroupParent, 'limits', file), 'utf8').trim();
    assert.equal(cg('cpu', 'cpu.cfs_quota_us'), '25000');
    assert.equal(cg('cpu', 'cpu.cfs_period_us'), '100000');
    assert.equal(cg('pids', 'pids.max'), '50');
    assert.equal(cg('memory', 'memory.limit_in_bytes'), String(32 << 20));
    assert.equal(cg('memory', 'memory.memsw.limit_in_bytes'), String(32 << 20));
    // and the container sees its own limit through the read-only cgroup mount
    const inside = await execOut('limits', ['cat', '/sys/fs/cgroup/pids/pids.max']);
    assert.equal(inside.trim(), '50');
    await rt.remove('limits');
  });

  it('runs with Docker default capabilities, no_new_privs, seccomp and masked paths', async () => {
    const { st, logs } = await runToEnd('sec', ['sh', '-c', [
      'grep -E "^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status',
      'echo kcore=$(cat /proc/kcore | wc -c)',
      'mount -t tmpfs t /tmp 2>/dev/null && echo mount=ok || echo mount=denied',
      'echo x > /proc/sys/kernel/hostname 2>/dev/null && echo procsys=rw || echo procsys=ro',
      'echo hostname=$(hostname)',
      'ls /proc/self/ns/ >/dev/null && echo pid1=$(cat /proc/1/comm) parent=$PPID',
    ].join('; ')]);
    assert.equal(st.exitCode, 0, logs);
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)$`, 'm').exec(logs)?.[1];
    assert.equal(field('CapEff'), '00000000a80425fb');
    assert.equal(field('CapPrm'), '00000000a80425fb');
    assert.equal(field('CapBnd'), '00000000a80425fb');
    assert.equal(field('CapInh'), '0000000000000000');
    assert.equal(field('CapAmb'), '0000000000000000');
    assert.equal(field('NoNewPrivs'), '1');
    assert.equal(field('Seccomp'), '2');
    assert.match(logs, /^kcore=0$/m);
    assert.match(logs, /^mount=denied$/m);
    assert.match(logs, /^procsys=ro$/m);
    assert.match(logs, /^hostname=sec$/m);
    // own pid namespace, where the init is PID 1 and the command its child
    assert.match(logs, /^pid1=init parent=1$/m);
  });

  it('resolves the image user and merges env', async () => {
    const userImage = { ...image, config: { ...image.config, user: 'app', env: ['FROM_IMAGE=1', 'OVER=image'], workingDir: '/tmp' } };
    await rt.start(containerSpec('user', userImage, netnsPath, { command: ['sh', '-c', 'id; pwd; echo $FROM_IMAGE $OVER $HOSTNAME; echo $PATH'], env: { OVER: 'spec' } }));
    await waitExited('user');
    const logs = await rt.readLogs('user');
    assert.match(logs, /^uid=1000\(app\) gid=1000\(app\) groups=(1000\(app\),)?2000\(extra\)$/m);
    assert.match(logs, /^\/tmp$/m);
    assert.match(logs, /^1 spec user$/m);
    assert.match(logs, /^\/usr\/local\/sbin:/m);
  });

  it('restarts an exited container in the same bundle, keeping its writable layer and the previous run\'s log', async () => {
    const cmd = ['sh', '-c', 'echo run >> /root/runs; cat /root/runs | wc -l'];
    await runToEnd('restart', cmd);
    await assert.rejects(rt.readLogs('restart', { previous: true }), /no previous run/);
    const first = await rt.status('restart');
    await sleep(10);
    const again = await rt.start(spec('restart', { command: cmd }));
    assert.ok(again.state === 'running' || again.state === 'exited');
    const st = await waitExited('restart');
    assert.equal(st.exitCode, 0);
    assert.notEqual(st.startedAt, first?.startedAt);
    const lines = (text: string) => text.split('\n').filter(Boolean).map((s) => s.trim()).join(',');
    assert.equal(lines(await rt.readLogs('restart')), '2');
    assert.equal(lines(await rt.readLogs('restart', { previous: true })), '1');
    // only one previous run is kept
    await rt.start(spec('restart', { command: cmd }));
    await waitFor(async () => lines(await rt.readLogs('restart')) === '3');
    assert.equal(lines(await rt.readLogs('restart', { previous: true })), '2');
  });

  it('start is idempotent, also when called concurrently', async () => {
    const s = spec('twice', { command: ['sleep', '30'] });
    const [a, b] = await Promise.all([rt.start(s), rt.start(s)]);
    assert.equal(a.state, 'running');
    assert.equal(a.pid, b.pid);
    assert.equal((await rt.start(s)).pid, a.pid);
  });

  it('stops with SIGTERM when the process handles it, SIGKILL after the grace period otherwise', async () => {
    await rt.start(spec('graceful', { command: ['sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.05; done'] }));
    await rt.start(spec('stubborn', { command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.05; done'] }));
    // the init passes SIGTERM on: a command without a handler ends by it, as it would outside a container
    await rt.start(spec('default', { command: ['sleep', '30'] }));
    await sleep(100); // let the shells install their traps
    const t0 = Date.now();
    const [g, s, d] = await Promise.all([rt.stop('graceful', 5), rt.stop('stubborn', 0.3), rt.stop('default', 5)]);
    assert.equal(g.exitCode, 7);
    assert.equal(s.exitCode, 137);
    assert.equal(d.exitCode, 128 + 15);
    assert.ok(Date.now() - t0 < 4000);
    assert.equal((await rt.stop('graceful', 1)).state, 'exited'); // stopping a stopped container is fine
  });

  it('reports a death by signal N as exit code 128 + N, through the init', async () => {
    // the command is the init's child, so it can be killed by a signal it sends itself (a PID 1 cannot)
    const { st } = await runToEnd('signalled', ['sh', '-c', 'kill -USR1 $$; sleep 5']);
    assert.equal(st.exitCode, 128 + 10);
    assert.equal(st.oomKilled, false);
  });

  it('reaps every orphan: a fork bomb and exec\'d processes whose parent ended leave no zombie, and exec still forks', async () => {
    // `sleep` never waits for children: as PID 1 it would keep every orphan a zombie until the pids limit is full
    await rt.start(spec('reaper', { command: ['sleep', '600'], pidsLimit: 48, cpuLimit: 0.5 }));
    const cg = (file: string) => readFileSync(join('/sys/fs/cgroup/pids', cgroupParent, 'reaper', file), 'utf8').trim();
    // zombies stay charged to pids.current until reaped
    const pids = () => Number(cg('pids.current'));
    await waitFor(async () => pids() === 2); // the init, then sleep once it has forked
    assert.equal(await execOut('reaper', ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 0.1 & done']), '');
    await waitFor(async () => pids() === 2);

    // forks until the pids limit refuses more; then its session is ended as when a client goes away
    const bomb = await rt.exec('reaper', ['sh', '-c', 'b() { b | b & }; b; exec sleep 1000']);
    bomb.stdout.resume();
    bomb.stderr.resume();
    await waitFor(async () => Number(/max (\d+)/.exec(cg('pids.events'))?.[1]) > 0, 20_000);
    bomb.kill();
    // ended by the kill, or earlier by its own shell giving up when a fork was refused (exit 2): either way it ends
    const { exitCode } = await bomb.done;
    assert.ok(exitCode === 137 || exitCode === 2, `the bomb's session ended with ${exitCode}`);
    await waitFor(async () => pids() === 2, 20_000);
    assert.equal(await execOut('reaper', ['echo', 'still forks']), 'still forks\n');
    await rt.remove('reaper');
  });

  it('remove is idempotent and leaves no mount, runc container or directory', async () => {
    await rt.start(spec('gone', { command: ['sleep', '30'] }));
    const rootfs = join(root, 'gone', 'bundle', 'rootfs');
    assert.ok(readFileSync('/proc/mounts', 'utf8').includes(rootfs));
    await rt.remove('gone');
    await rt.remove('gone');
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(rootfs));
    assert.ok(!execFileSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).split('\n').includes('gone'));
    assert.ok(!existsSync(join(root, 'gone')));
    assert.ok(!existsSync(join('/sys/fs/cgroup/memory', cgroupParent, 'gone')));
    assert.equal(await rt.status('gone'), undefined);
  });

  it('keeps containers running after a kill -9 of the process that started them', async () => {
    const script = join(dir, 'starter.mjs');
    const runtimeUrl = new URL('./runtime.js', import.meta.url).href;
    writeFileSync(script, `
      import { ContainerRuntime } from ${JSON.stringify(runtimeUrl)};
      const [root, runcRoot, cgroupParent, spec] = process.argv.slice(2);
      const rt = new ContainerRuntime({ root, runcRoot, cgroupParent });
      const st = await rt.start(JSON.parse(spec));
      process.stdout.write(JSON.stringify(st) + '\\n');
      setInterval(() => {}, 1000);
    `);
    const s = spec('survivor', { command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done'] });
    const child = spawn(process.execPath, [script, root, runcRoot, cgroupParent, JSON.stringify(s)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (c) => {
        buf += c;
        if (buf.includes('\n')) resolve(buf.split('\n')[0]);
      });
      child.on('exit', (code) => reject(new Error(`starter exited with ${code}`)));
    });
    const started = JSON.parse(line);
    assert.equal(started.state, 'running');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // a brand-new runtime object sees it from disk alone
    const fresh = new ContainerRuntime({ root, runcRoot, cgroupParent });
    const st = await fresh.status('survivor');
    assert.equal(st?.state, 'running');
    assert.equal(st?.pid, started.pid);
    const n1 = (await fresh.readLogs('survivor')).split('\n').length;
    await sleep(400);
    const n2 = (await fresh.readLogs('survivor')).split('\n').length;
    assert.ok(n2 > n1, `log grows after the starter died (${n1} -> ${n2})`);
    const stopped = await fresh.stop('survivor', 0.2);
    assert.equal(stopped.state, 'exited');
    await fresh.remove('survivor');
  });
});
