// Integration tests of group disks against real loop devices and ext4 (needs root): limits, pool, release, crashes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(dir + '/'));

after(async () => {
  for (const l of mountsUnder(base)) {
    const { execFileSync } = await import('node:child_process');
    execFileSync('umount', ['-l', l.split(' ')[4]]);
  }
  rmSync(base, { recursive: true, force: true });
});

describe('GroupDisks', () => {
  it('gives a group a file system of the limit\'s size: writes past it fail with ENOSPC, full() says so, release frees everything', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB });
    const path = await disks.claim('g1');
    assert.equal(path, join(root, 'g1'));
    assert.equal(await disks.claim('g1'), path, 'claim is idempotent');
    assert.equal(mountsUnder(root).length, 1);
    assert.equal(loopsUnder(root).length, 1);
    // root's alone: the image and the file system's root
    assert.equal(statSync(join(root, 'g1.img')).mode & 0o777, 0o600);
    assert.equal(statSync(path).mode & 0o777, 0o700);
    assert.equal(statSync(root).mode & 0o777, 0o700);
    const usage = disks.usage('g1')!;
    assert.ok(usage.sizeBytes > 28 * MiB && usage.sizeBytes <= 32 * MiB, `size ${usage.sizeBytes}`);
    assert.equal(disks.full('g1'), undefined);
    // sparse: a fresh image takes a few MB of real disk, not its size
    assert.ok(statSync(join(root, 'g1.img')).blocks * 512 < 8 * MiB);

    assert.throws(() => writeFileSync(join(path, 'big'), Buffer.alloc(40 * MiB)), /ENOSPC/);
    assert.ok(disks.full('g1'), 'full once a write ran out of space');
    rmSync(join(path, 'big'));
    assert.equal(disks.full('g1'), undefined, 'not full once space is freed');

    assert.deepEqual(disks.list(), ['g1']);
    await disks.release('g1');
    await disks.release('g1');
    assert.deepEqual({ mounts: mountsUnder(root), loops: loopsUnder(root), list: disks.list(), files: readdirSync(root) }, { mounts: [], loops: [], list: [], files: ['pool'] });
    assert.equal(disks.usage('g1'), undefined);
  });

  it('claims formatted images from a pool kept across restarts; drops half-made and wrong-size ones at start', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB, poolSize: 2 });
    await disks.startPool();
    await disks.refill();
    assert.equal(disks.poolReady(), 2);
    const pool = () => readdirSync(join(root, 'pool')).sort();
    const formatted = new Set(pool().map((f) => statSync(join(root, 'pool', f)).ino));
    await disks.claim('g2');
    assert.equal(disks.poolReady(), 1);
    assert.ok(formatted.has(statSync(join(root, 'g2.img')).ino), 'the claim took a pool image (renamed, not formatted anew)');
    await disks.stopPool();

    // a crash left one image half-formatted, and the limit changed for another
    writeFileSync(join(root, 'pool', 'pool-0123456789ab.partial'), 'half');
    writeFileSync(join(root, 'pool', 'pool-ba9876543210.img'), 'wrong size');
    const kept = pool().filter((f) => f.endsWith('.img') && f !== 'pool-ba9876543210.img');
    const again = new GroupDisks({ root, sizeBytes: 32 * MiB, poolSize: 2 });
    await again.startPool();
    assert.ok(!existsSync(join(root, 'pool', 'pool-0123456789ab.partial')));
    assert.ok(!existsSync(join(root, 'pool', 'pool-ba9876543210.img')));
    for (const f of kept) assert.ok(existsSync(join(root, 'pool', f)), `${f} is kept for the next claim`);
    await again.refill();
    await again.stopPool();
    assert.equal(again.poolReady(), 2);
    // the mounted disk of g2 is adopted as is
    writeFileSync(join(again.path('g2'), 'kept'), 'data');
    assert.equal(await again.claim('g2'), again.path('g2'));
    assert.equal(readFileSync(join(again.path('g2'), 'kept'), 'utf8'), 'data');
    await again.release('g2');
    assert.deepEqual(loopsUnder(root), []);
  });

  it('mounts an image a crash left unmounted, keeping its content, and says why a disk cannot be made', async () => {
    const root = freshRoot();
    const disks = new GroupDisks({ root, sizeBytes: 32 * MiB });
    const path = await disks.claim('g3');
    writeFileSync(join(path, 'f'), 'before');
    const { execFileSync } = await import('node:child_process');
    execFileSync('umount', [path]);
    assert.deepEqual(loopsUnder(root), [], 'the loop device went with the mount');
    assert.deepEqual(disks.list(), ['g3']);
    await disks.claim('g3');
    assert.equal(readFileSync(join(path, 'f'), 'utf8'), 'before');
    await disks.release('g3');

    const broken = new GroupDisks({ root, sizeBytes: 32 * MiB, mkfsPath: '/nonexistent/mkfs.ext4' });
    await assert.rejects(broken.claim('g4'), /formatting a group disk: .*ENOENT/);
    assert.deepEqual(readdirSync(join(root, 'pool')), [], 'no half-made image');
    assert.throws(() => new GroupDisks({ root, sizeBytes: 1 * MiB }), /too small/);
  });

  it('a kill -9 at any moment of claims and releases leaves nothing a restart cannot remove: no loop device, mount or image', async () => {
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
    // what a restart does: start the pool, release every disk no group wants
    const disks = new GroupDisks({ root, sizeBytes: 32 << 20, poolSize: 2 });
    await disks.startPool();
    await disks.stopPool();
    for (const id of disks.list()) await disks.release(id);
    // berth-spawnd's built-ins outlive a killed parent for a moment: let the last one finish
    for (let i = 0; i < 100 && (loopsUnder(root).length > 0 || mountsUnder(root).length > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
      for (const id of disks.list()) await disks.release(id);
    }
    assert.deepEqual({ mounts: mountsUnder(root), loops: loopsUnder(root), files: readdirSync(root) }, { mounts: [], loops: [], files: ['pool'] });
    assert.ok(readdirSync(join(root, 'pool')).every((f) => /^pool-[0-9a-f]{12}\.img$/.test(f)), 'only whole pool images are left');
  });
});
