// Integration tests of ContainerRuntime against the real runc and conmon (needs root).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ContainerSpec } from '../types.js';
import { ContainerRuntime, chooseOciRuntime } from './runtime.js';
import { containerSpec, makeBusyboxImage, randomSuffix } from './testing.js';

const sfx = randomSuffix();
const dir = mkdtempSync(join(tmpdir(), 'berth-rt-'));
const root = join(dir, 'containers');
const runcRoot = `/run/berth-test-${sfx}/runc`;
const cgroupParent = `/berth-test-${sfx}`;
const netns = `berth-rt-${sfx}`;
const netnsPath = `/run/netns/${netns}`;
const image = makeBusyboxImage(join(dir, 'layer'));
const rt = new ContainerRuntime({ root, runcRoot, cgroupParent });
const spec = (id: string, extra: Partial<ContainerSpec>) => containerSpec(id, image, netnsPath, extra);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}
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

before(() => {
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);
});

after(async () => {
  for (const id of await rt.list()) await rt.remove(id).catch((e) => console.error('cleanup', id, e));
  try {
    execFileSync('ip', ['netns', 'delete', netns]);
  } catch {
    /* already gone */
  }
  for (const ctl of readdirSync('/sys/fs/cgroup')) {
    const p = join('/sys/fs/cgroup', ctl, cgroupParent);
    if (existsSync(p)) {
      try {
        rmdirSync(p);
      } catch {
        /* still busy: reported by the remove tests */
      }
    }
  }
  rmSync(`/run/berth-test-${sfx}`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

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

  it('execs a command in a running container with pipes', async () => {
    await rt.start(spec('execd', { command: ['sleep', '30'] }));
    assert.equal((await execOut('execd', ['sh', '-c', 'echo $FOO; pwd'], { env: ['FOO=bar'], cwd: '/tmp' })), 'bar\n/tmp\n');
    const child = await rt.exec('execd', ['sh', '-c', 'cat; echo to-stderr >&2; exit 4']);
    assert.equal(child.tty, false);
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.stdin.end('piped\n');
    assert.deepEqual(await child.done, { exitCode: 4 });
    assert.equal(out, 'piped\n');
    assert.equal(err, 'to-stderr\n');
    // the exec'd process runs in its own session: what berth kills when a session ends
    const probe = await rt.exec('execd', ['sh', '-c', 'set -- $(cat /proc/$$/stat); echo $1 $6; exec sleep 5']);
    try {
      let ids = '';
      probe.stdout.on('data', (c) => (ids += c));
      await waitFor(async () => ids.includes('\n'));
      const [pid, sid] = ids.trim().split(' ');
      assert.equal(sid, pid);
    } finally {
      probe.kill();
    }
    assert.deepEqual(await probe.done, { exitCode: 137 });
  });

  it('execs under a pseudo-terminal of the asked size, resizes it and reports the exit code', async () => {
    await rt.start(spec('ttyd', { command: ['sleep', '600'] }));
    const once = await rt.exec('ttyd', ['sh', '-c', 'tty; stty size; exit 5'], { tty: { rows: 33, cols: 101 } });
    assert.equal(once.tty, true);
    let out = '';
    once.stdout.on('data', (c) => (out += c));
    assert.deepEqual(await once.done, { exitCode: 5 });
    assert.match(out, /^\/dev\/pts\/\d+\r\n33 101\r\n$/);

    const sh = await rt.exec('ttyd', ['sh'], { tty: { rows: 10, cols: 20 } });
    try {
      let screen = '';
      sh.stdout.on('data', (c) => (screen += c));
      sh.stdin.write('stty size\n');
      await waitFor(async () => /\r\n10 20\r\n/.test(screen));
      sh.resize({ rows: 40, cols: 132 });
      sh.stdin.write('stty size\n');
      await waitFor(async () => /\r\n40 132\r\n/.test(screen));
      sh.stdin.write('exit 3\n');
      assert.deepEqual(await sh.done, { exitCode: 3 });
    } finally {
      sh.kill();
    }

    // End of input is the terminal's EOF character: the shell at its prompt ends. (Typed earlier, the
    // shell's line editor would discard it when it sets the terminal up, as on any terminal.)
    const eof = await rt.exec('ttyd', ['sh'], { tty: { rows: 24, cols: 80 } });
    try {
      let screen = '';
      eof.stdout.on('data', (c) => (screen += c));
      await waitFor(async () => screen.includes('# '));
      await sleep(200);
      eof.stdin.end();
      assert.deepEqual(await eof.done, { exitCode: 0 });
    } finally {
      eof.kill();
    }
  });

  // Exec must hold with either OCI runtime berth uses (they differ: crun without a terminal puts
  // the process in a session of its own making, not one the process leads; their errors differ).
  for (const oci of ['runc', 'crun'] as const) {
    const skip = oci === 'crun' && chooseOciRuntime('auto') !== '/usr/bin/crun' && 'crun cannot run on this host';
    const ort = oci === 'runc' ? rt : new ContainerRuntime({ root, runcRoot, cgroupParent, runcPath: '/usr/bin/crun' });
    const cid = `ttyd-${oci}`;

    it(`says why an exec could not start (${oci})`, { skip }, async () => {
      await ort.start(spec(cid, { command: ['sleep', '600'] }));
      for (const tty of [undefined, { rows: 24, cols: 80 }]) {
        const p = await ort.exec(cid, ['no-such-command'], { tty });
        p.stdout.resume();
        p.stderr.resume();
        const r = await p.done;
        assert.equal(r.exitCode, undefined);
        assert.match(r.error ?? '', /no-such-command.*not found/);
      }
    });

    it(`kills what an exec started when its session ends or its owner dies, leaving no process, pty or helper (${oci})`, { skip }, async () => {
      await ort.start(spec(cid, { command: ['sleep', '600'] }));
      const init = (await ort.status(cid))!.pid!;
      // cgroup.procs leaves zombies out; pids.current counts them until they are reaped
      const procs = () => readFileSync(join('/sys/fs/cgroup/pids', cgroupParent, cid, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).sort();
      const pids = () => Number(readFileSync(join('/sys/fs/cgroup/pids', cgroupParent, cid, 'pids.current'), 'utf8'));
      const ptys = () => readdirSync(`/proc/${init}/root/dev/pts`).sort();
      await waitFor(async () => procs().length === 2); // the init, then its command once forked
      const before = { procs: procs(), ptys: ptys(), pids: pids() };
      assert.equal(before.procs.length, 2, 'the init and its command');
      assert.ok(before.procs.includes(String(init)));
      assert.equal(before.pids, 2);

      const piped = await ort.exec(cid, ['sh', '-c', 'sleep 1000 & sleep 1001 & exec sleep 1002']);
      const term = await ort.exec(cid, ['sh'], { tty: { rows: 24, cols: 80 } });
      term.stdout.resume();
      term.stdin.write('sleep 1003 &\nsleep 1004\n');
      await waitFor(async () => procs().length === 2 + 3 + 3); // init and command; 3 sleeps; sh and 2 sleeps
      assert.equal(ptys().length, before.ptys.length + 1);
      piped.kill();
      term.kill();
      assert.deepEqual(await piped.done, { exitCode: 137 });
      assert.deepEqual(await term.done, { exitCode: 137 });
      // the killed sleeps' parents were killed too: the container's init reaps them, no zombie is left
      await waitFor(async () => pids() === before.pids);
      assert.deepEqual({ procs: procs(), ptys: ptys(), pids: pids() }, before);
      for (const p of [piped, term]) assert.ok(!existsSync(`/proc/${p.helperPid}`), `helper ${p.helperPid} is gone`);

      // The owner (berth) dies without a word: its end of the control socket closes, and that is enough;
      // the helper also removes the session's files (the process spec holds the container's secrets).
      const execDirs = () => readdirSync(tmpdir()).filter((e) => e.startsWith('berth-exec-')).sort();
      const dirsBefore = execDirs();
      const script = join(dir, 'exec-owner.mjs');
      writeFileSync(script, `
        import { ContainerRuntime } from ${JSON.stringify(new URL('./runtime.js', import.meta.url).href)};
        const rt = new ContainerRuntime(${JSON.stringify({ root, runcRoot, cgroupParent, ...(oci === 'crun' && { runcPath: '/usr/bin/crun' }) })});
        const p = await rt.exec(${JSON.stringify(cid)}, ['sh', '-c', 'sleep 1005 & exec sleep 1006'], { tty: { rows: 24, cols: 80 } });
        p.stdout.resume();
        setInterval(() => { if (p.pid) process.stdout.write(p.pid + '\\n'); }, 20);
      `);
      const owner = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => owner.stdout!.on('data', () => resolve()));
      await waitFor(async () => procs().length === 2 + 2);
      owner.kill('SIGKILL');
      await waitFor(async () => procs().length === 2);
      await waitFor(async () => ptys().length === before.ptys.length);
      await waitFor(async () => pids() === before.pids);
      assert.deepEqual({ procs: procs(), ptys: ptys(), pids: pids() }, before);
      await waitFor(async () => execDirs().length === dirsBefore.length);
      assert.deepEqual(execDirs(), dirsBefore);
    });
  }

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

async function execOut(id: string, argv: string[], opts?: { env?: string[]; cwd?: string }): Promise<string> {
  const child = await rt.exec(id, argv, opts);
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  child.stdin.end();
  assert.deepEqual(await child.done, { exitCode: 0 }, err);
  return out;
}
