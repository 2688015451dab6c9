// Integration tests of group disks against real loop devices and ext4 (needs root): limits, pool, release, crashes.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GroupDisks } from './disks.js';

const base = mkdtempSync(join(tmpdir(), 'berth-disks-'));
const MiB = 1 << 20;
let n = 0;
const freshRoot = () => join(base, `root${n++}`);

/** Loop devices whose backing file lies under `dir` (the kernel's record, as losetup reads it). */
function loopsUnder(dir: string): string[] {
  return readdirSync('/sys/block').filter((d) => {
    try {
      return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim().startsWith(dir + '/');
    } catch {
      return false;
    }
  });
}
const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(dir + '/'));

after(() => {
  for (const m of mountsUnder(base)) execFileSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});

describe('GroupDisks', () => {
  it('gives a group a file system of the limit\'s size: writes past it fail with ENOSPC, full() says so, release frees everything', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB });
    const path = await disks.claim('g1');
    assert.equal(path, join(root, 'g1', 'fs'));
    assert.equal(await disks.claim('g1'), path, 'claim is idempotent');
    assert.deepEqual(mountsUnder(root), [path]);
    assert.equal(loopsUnder(root).length, 1);
    // root's alone: the image and the file system's root
    assert.equal(statSync(join(root, 'g1', 'disk.img')).mode & 0o777, 0o600);
    assert.equal(statSync(path).mode & 0o777, 0o700);
    assert.equal(statSync(root).mode & 0o777, 0o700);
    const usage = disks.usage('g1')!;
    assert.equal(usage.limitBytes, 32 * MiB);
    assert.ok(usage.sizeBytes > 28 * MiB && usage.sizeBytes <= 32 * MiB, `size ${usage.sizeBytes}`);
    assert.equal(disks.full('g1'), undefined);
    // sparse: a fresh image takes a few MB of real disk, not its size
    assert.ok(statSync(join(root, 'g1', 'disk.img')).blocks * 512 < 1 * MiB);

    assert.throws(() => writeFileSync(join(path, 'big'), Buffer.alloc(40 * MiB)), /ENOSPC/);
    assert.ok(disks.full('g1'), 'full once a write ran out of space');
    rmSync(join(path, 'big'));
    assert.equal(disks.full('g1'), undefined, 'not full once space is freed');

    assert.deepEqual(disks.list(), ['g1']);
    assert.ok(disks.has('g1'));
    await disks.release('g1');
    await disks.release('g1');
    assert.deepEqual({ mounts: mountsUnder(root), loops: loopsUnder(root), list: disks.list(), files: readdirSync(root) }, { mounts: [], loops: [], list: [], files: ['pool'] });
    assert.equal(disks.usage('g1'), undefined);
    assert.equal(disks.has('g1'), false);
  });

  it('claims mounted disks from a pool by a rename; a restart keeps them, drops unfinished and wrong-size ones; stop unmounts them', async () => {
    const root = freshRoot();
    const pool = join(root, 'pool');
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB, poolSize: 2 });
    await disks.startPool();
    await disks.refill();
    assert.equal(disks.poolReady(), 2);
    assert.equal(mountsUnder(pool).length, 2, 'ready means mounted');
    const made = new Set(readdirSync(pool).map((d) => statSync(join(pool, d, 'disk.img')).ino));
    const path = await disks.claim('g2');
    assert.equal(disks.poolReady(), 1);
    assert.ok(made.has(statSync(join(root, 'g2', 'disk.img')).ino), 'the claim took a pool disk (renamed, not made anew)');
    assert.ok(mountsUnder(root).includes(path), 'its mount moved with it');
    writeFileSync(join(path, 'kept'), 'data');
    await disks.refill();
    await disks.stopPool();
    assert.deepEqual(mountsUnder(pool), [], 'no pool disk stays mounted once the server stops');
    assert.deepEqual(loopsUnder(pool), []);
    assert.equal(readdirSync(pool).length, 2, 'their images are kept');

    // a crash left one disk unfinished (mounted, in .new-*) and the limit changed for another
    const other = new GroupDisks({ root: join(base, `scratch${n++}`), sizeBytes: 16 * MiB });
    await other.claim('half');
    renameSync(join(other.path('half'), '..'), join(pool, '.new-0123456789ab'));
    await other.claim('small');
    execFileSync('umount', [other.path('small')]);
    renameSync(join(other.path('small'), '..'), join(pool, 'pool-ba9876543210'));
    const kept = readdirSync(pool).filter((d) => /^pool-/.test(d) && d !== 'pool-ba9876543210');
    const again = new GroupDisks({ root, sizeBytes: 32 * MiB, poolSize: 2 });
    await again.startPool();
    assert.deepEqual(readdirSync(pool).sort(), kept.sort(), 'the unfinished and the wrong-size disk are gone');
    assert.equal(again.poolReady(), 2, 'the others are mounted again and ready');
    assert.equal(mountsUnder(pool).length, 2);
    // the group's disk is adopted as is
    assert.equal(await again.claim('g2'), path);
    assert.equal(readFileSync(join(path, 'kept'), 'utf8'), 'data');
    await again.release('g2');
    await again.stopPool();
    assert.deepEqual(loopsUnder(root), []);
    assert.deepEqual(mountsUnder(root), []);
  });

  it('a pool starting while a claim makes a disk (groups are adopted before the pool starts) leaves that disk alone', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB, poolSize: 1 });
    const claimed = disks.claim('g6');
    // the claim is formatting in the pool's directory by now (mkfs runs as a process)
    for (const deadline = Date.now() + 10_000; !(existsSync(join(root, 'pool')) && readdirSync(join(root, 'pool')).some((d) => d.startsWith('.new-'))) && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 1));
    }
    await disks.startPool();
    const path = await claimed;
    writeFileSync(join(path, 'f'), 'fine');
    await disks.refill();
    await disks.stopPool();
    await disks.release('g6');
    assert.deepEqual({ mounts: mountsUnder(root), loops: loopsUnder(root) }, { mounts: [], loops: [] });
  });

  it('mounts a disk a reboot left unmounted, keeping its content, and says why a disk cannot be made', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB });
    const path = await disks.claim('g3');
    writeFileSync(join(path, 'f'), 'before');
    execFileSync('umount', [path]);
    assert.deepEqual(loopsUnder(root), [], 'the loop device went with the mount');
    assert.deepEqual(disks.list(), ['g3']);
    await disks.claim('g3');
    assert.equal(readFileSync(join(path, 'f'), 'utf8'), 'before');
    await disks.release('g3');

    const broken = new GroupDisks({ root, sizeBytes: 32 * MiB, mkfsPath: '/nonexistent/mkfs.ext4' });
    await assert.rejects(broken.claim('g4'), /formatting a group disk: .*ENOENT/);
    assert.deepEqual(readdirSync(root), ['pool'], 'nothing half-made');
    assert.deepEqual(readdirSync(join(root, 'pool')), []);
    assert.throws(() => new GroupDisks({ root, sizeBytes: 1 * MiB }), /too small/);
    await assert.rejects(new GroupDisks({ root, sizeBytes: 0 }).claim('g5'), /group disks are turned off/);
  });

  it('a kill -9 at any moment of claims, releases and pool fills leaves nothing a restart cannot remove: no loop device, mount or image', async () => {
    const root = freshRoot();
    const script = join(base, 'churn.mjs');
    writeFileSync(script, `
      import { GroupDisks } from ${JSON.stringify(new URL('./disks.js', import.meta.url).href)};
      const disks = new GroupDisks({ root: process.argv[2], sizeBytes: 32 << 20, poolSize: 2 });
      await disks.startPool();
      process.stdout.write('up\\n');
      for (let i = 0; ; i++) { await disks.claim('g' + (i % 3)); if (i % 2) await disks.release('g' + ((i + 1) % 3)); }
    `);
    for (const delay of [0, 15, 40, 90, 150]) {
      const child = spawn(process.execPath, [script, root], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    // what a restart does: start the pool, release every disk no group wants; then stop
    const restart = async () => {
      const disks = new GroupDisks({ root, sizeBytes: 32 << 20, poolSize: 2 });
      await disks.startPool();
      await disks.stopPool();
      for (const id of disks.list()) await disks.release(id);
    };
    await restart();
    // berth-spawnd's built-ins outlive a killed parent for a moment: one still running may mount after that
    for (let i = 0; i < 100 && (loopsUnder(root).length > 0 || mountsUnder(root).length > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
      await restart();
    }
    assert.deepEqual({ mounts: mountsUnder(root), loops: loopsUnder(root), files: readdirSync(root) }, { mounts: [], loops: [], files: ['pool'] });
    const pool = readdirSync(join(root, 'pool'));
    assert.ok(pool.every((d) => /^pool-[0-9a-f]{12}$/.test(d) && existsSync(join(root, 'pool', d, 'disk.img'))), `only whole pool disks are left: ${pool.join(', ')}`);
  });
});
