// Integration tests of exec in a running container (pipes, pseudo-terminals, sessions) with the real runc and crun (needs root).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chooseOciRuntime } from './oci-runtime.js';
import { ContainerRuntime } from './runtime.js';
import { runtimeTestbed, waitFor } from './testing.js';

const { dir, root, runcRoot, cgroupParent, rt, spec, execOut } = runtimeTestbed();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ContainerRuntime.exec', () => {
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
      // (its own temp dir: other runs on the machine make and remove exec dirs in the shared one meanwhile)
      const ownerTmp = join(dir, 'owner-tmp');
      mkdirSync(ownerTmp, { recursive: true });
      const execDirs = () => readdirSync(ownerTmp).filter((e) => e.startsWith('berth-exec-')).sort();
      const script = join(dir, 'exec-owner.mjs');
      writeFileSync(script, `
        import { ContainerRuntime } from ${JSON.stringify(new URL('./runtime.js', import.meta.url).href)};
        const rt = new ContainerRuntime(${JSON.stringify({ root, runcRoot, cgroupParent, ...(oci === 'crun' && { runcPath: '/usr/bin/crun' }) })});
        const p = await rt.exec(${JSON.stringify(cid)}, ['sh', '-c', 'sleep 1005 & exec sleep 1006'], { tty: { rows: 24, cols: 80 } });
        p.stdout.resume();
        setInterval(() => { if (p.pid) process.stdout.write(p.pid + '\\n'); }, 20);
      `);
      const owner = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: ownerTmp } });
      await new Promise<void>((resolve) => owner.stdout!.on('data', () => resolve()));
      await waitFor(async () => procs().length === 2 + 2);
      assert.equal(execDirs().length, 1, 'the session has its files while it runs');
      owner.kill('SIGKILL');
      await waitFor(async () => procs().length === 2);
      await waitFor(async () => ptys().length === before.ptys.length);
      await waitFor(async () => pids() === before.pids);
      assert.deepEqual({ procs: procs(), ptys: ptys(), pids: pids() }, before);
      await waitFor(async () => execDirs().length === 0);
      assert.deepEqual(execDirs(), []);
    });
  }
});
