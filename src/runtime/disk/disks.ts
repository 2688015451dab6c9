// Size-limited disks for container groups: a sparse ext4 image per group, loop-mounted; state is the files on disk.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, statfsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { isMountpoint, unmount } from '../../lib/mounts.js';
import { Refiller } from '../../lib/refiller.js';
import { runCommand } from '../../lib/spawner.js';
import { span } from '../../lib/trace.js';

/*
 * This kernel has no disk quotas (no XFS project quotas, no ext4 quota format), so a directory
 * cannot be limited in place as Docker's overlay2 `size=` does. Instead each group gets a file
 * system of its own: an ext4 image of the limit's size, sparse (about 0.2 MB of real disk until
 * written), on a loop device. A write past the limit fails with ENOSPC inside the group only.
 *
 * A disk is a directory (root's alone: images hold secret volumes and what containers write):
 *   <id>/disk.img     the image (0600)
 *   <id>/fs/          where it is mounted
 * under the root for a group's, under `pool/` for one made ahead (formatted and mounted: ~15 ms of
 * mkfs and a loop device set up, whose LOOP_CONFIGURE waits for the kernel's RCU, milliseconds on
 * a busy host), and under `pool/.new-*` while it is being made. A claim renames a pool directory
 * to the group's: the mount moves with it, in one atomic step. So at any moment a disk belongs to
 * a group, to the pool, or is unfinished; and loop devices detach themselves with their mount
 * (autoclear): after a kill -9, nothing exists that these directories do not name.
 */

export interface GroupDisksOptions {
  root: string;
  /** Each new disk's size in bytes; 0 makes no new disks (those made before are still adopted and released). */
  sizeBytes: number;
  /** Disks kept formatted and mounted, so a claim is a rename. Default 0. */
  poolSize?: number;
  /** mkfs.ext4; Debian's e2fsprogs. */
  mkfsPath?: string;
}

export interface DiskUsage {
  /** The size it was made with (its image's); the file system inside is a few percent smaller. */
  limitBytes: number;
  sizeBytes: number;
  availableBytes: number;
  freeInodes: number;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const POOL_RE = /^pool-[0-9a-f]{12}$/;
const POOL = 'pool';
const IMAGE = 'disk.img';
const FS = 'fs';
/** Below this much free space (or without a free inode) a disk counts as full: the next write fails. */
const FULL_BELOW_BYTES = 1 << 20;
/** The inode tables of a fresh image would be zeroed by a kernel thread after mount; nothing needs them zeroed. */
const MOUNT_OPTIONS = 'noinit_itable';

const errText = (e: unknown) => String((e as { stderr?: string }).stderr || (e as Error).message || e).trim();

export class GroupDisks {
  private readonly locks = new KeyedLock();
  private readonly poolSize: number;
  private readonly mkfs: string;
  /** Pool disks ready to be claimed (mounted). */
  private ready: string[] = [];
  /** Directories under the pool this process is making disks in (any other `.new-*` is a crash's). */
  private readonly making = new Set<string>();
  private readonly refiller = new Refiller(() => this.fillPool());

  constructor(private readonly opts: GroupDisksOptions) {
    this.poolSize = opts.sizeBytes > 0 ? Math.max(0, opts.poolSize ?? 0) : 0;
    this.mkfs = opts.mkfsPath ?? '/sbin/mkfs.ext4';
    if (opts.sizeBytes !== 0 && !(opts.sizeBytes >= 16 << 20)) throw new BerthError(Codes.RuntimeError, `a group disk of ${opts.sizeBytes} bytes is too small for ext4: give at least 16 MiB`);
  }

  /** Each new disk's size; 0 when no new disks are made. */
  get sizeBytes(): number {
    return this.opts.sizeBytes;
  }

  /** True when `id` has a disk (its image), mounted or not. */
  has(id: string): boolean {
    return existsSync(join(this.dir(id), IMAGE));
  }

  /** Where the disk of `id` is mounted (whether or not it is now). */
  path(id: string): string {
    return join(this.dir(id), FS);
  }

  private dir(id: string): string {
    return join(this.opts.root, id);
  }

  private poolDir(): string {
    return join(this.opts.root, POOL);
  }

  private checkId(id: string): void {
    if (!ID_RE.test(id) || id === POOL || id.length > 200) throw new BerthError(Codes.RuntimeError, `invalid disk id "${id}"`);
  }

  private rootMade = false;

  private ensureRoot(): void {
    if (this.rootMade) return;
    mkdirSync(this.poolDir(), { recursive: true, mode: 0o700 });
    chmodSync(this.opts.root, 0o700);
    this.rootMade = true;
  }

  /**
   * The disk of `id`, mounted: adopted when it exists (a restart, a crash between steps; mounted
   * again after a reboot), else a pool disk, else one made now. Resolves with its mount point.
   */
  claim(id: string): Promise<string> {
    this.checkId(id);
    return this.locks.run(id, async () => {
      const dir = this.dir(id);
      if (isMountpoint(join(dir, FS))) return join(dir, FS);
      this.ensureRoot();
      if (!existsSync(join(dir, IMAGE))) {
        if (this.opts.sizeBytes === 0) throw new BerthError(Codes.RuntimeError, `no disk for ${id}: group disks are turned off`);
        // whatever a crash left there without an image holds nothing (the image is made first)
        if (existsSync(dir)) await this.discard(dir);
        if (this.takeFromPool(dir)) {
          this.refiller.soon();
          return join(dir, FS);
        }
        await span(id, 'disk.make', () => this.make(dir));
        this.refiller.soon();
        return join(dir, FS);
      }
      await this.mount(dir, id);
      return join(dir, FS);
    });
  }

  /** Renames a ready pool disk (mounted) to `dir`; false when the pool has none. */
  private takeFromPool(dir: string): boolean {
    for (let poolId = this.ready.shift(); poolId; poolId = this.ready.shift()) {
      try {
        renameSync(join(this.poolDir(), poolId), dir);
        return true;
      } catch {
        /* gone meanwhile: the next one */
      }
    }
    return false;
  }

  /** Formats and mounts a disk in a directory of its own under the pool, then renames it to `dir`: never half-made there. */
  private async make(dir: string): Promise<void> {
    const name = `.new-${randomBytes(6).toString('hex')}`;
    const work = join(this.poolDir(), name);
    this.making.add(name);
    mkdirSync(work, { mode: 0o700 });
    try {
      const image = join(work, IMAGE);
      const fd = openSync(image, 'wx', 0o600);
      try {
        ftruncateSync(fd, this.opts.sizeBytes);
      } finally {
        closeSync(fd);
      }
      try {
        // no journal: what a group writes does not outlive the group, and a journal costs real disk
        // up front; no blocks kept for growing the file system (it never grows): a quarter of mkfs's
        // time and 0.2 MB of real disk instead of 4 MB; no reserved blocks: the whole limit is the group's
        await runCommand(this.mkfs, ['-q', '-F', '-O', '^has_journal,^resize_inode', '-E', 'lazy_itable_init=1,nodiscard', '-m', '0', image]);
      } catch (e) {
        throw new BerthError(Codes.RuntimeError, `formatting a group disk: ${errText(e)}`);
      }
      await this.mount(work, 'a new disk');
      renameSync(work, dir);
    } catch (e) {
      await this.discard(work).catch(() => undefined);
      throw e;
    } finally {
      this.making.delete(name);
    }
  }

  /** Mounts the image of the disk in `dir` on its `fs`, unless it is mounted. */
  private async mount(dir: string, what: string): Promise<void> {
    const fs = join(dir, FS);
    if (isMountpoint(fs)) return;
    mkdirSync(fs, { recursive: true, mode: 0o700 });
    try {
      await span(what, 'disk.mount', () => runCommand('@loop-mount', [join(dir, IMAGE), fs, 'ext4', '0', MOUNT_OPTIONS]));
    } catch (e) {
      throw new BerthError(Codes.RuntimeError, `mounting the disk of ${what}: ${errText(e)}`);
    }
    // the file system's root is the group's: no other host user looks inside
    chmodSync(fs, 0o700);
  }

  /** Unmounts the disk in `dir` (its loop device goes with the mount) and removes it all. */
  private async discard(dir: string): Promise<void> {
    const fs = join(dir, FS);
    if (isMountpoint(fs)) await unmount(fs);
    // never recursive into a mount: unmount() throws when it could not
    await rm(dir, { recursive: true, force: true });
  }

  /** Unmounts the disk of `id` and deletes it; what it held is gone. Idempotent. */
  release(id: string): Promise<void> {
    this.checkId(id);
    return this.locks.run(id, () => this.discard(this.dir(id)));
  }

  /** Ids of the disks on this host, mounted or not. */
  list(): string[] {
    try {
      return readdirSync(this.opts.root).filter((n) => n !== POOL && ID_RE.test(n)).sort();
    } catch {
      return [];
    }
  }

  /** Size and free space of the mounted disk of `id` (one statfs), or undefined when it is not mounted. */
  usage(id: string): DiskUsage | undefined {
    const fs = this.path(id);
    if (!isMountpoint(fs)) return undefined;
    let limitBytes: number;
    try {
      limitBytes = statSync(join(this.dir(id), IMAGE)).size;
    } catch {
      return undefined; // released meanwhile
    }
    const st = statfsSync(fs);
    return { limitBytes, sizeBytes: st.blocks * st.bsize, availableBytes: st.bavail * st.bsize, freeInodes: st.ffree };
  }

  /** The disk's figures when a write to it would fail for lack of space or inodes, else undefined. */
  full(id: string): DiskUsage | undefined {
    const u = this.usage(id);
    return u && (u.availableBytes < FULL_BELOW_BYTES || u.freeInodes === 0) ? u : undefined;
  }

  // --- the pool ---

  /**
   * Keeps the pool disks a previous process left (mounting them again if they are not), drops the
   * unfinished ones and those of another size, and fills the pool in the background. Call once at start.
   */
  async startPool(): Promise<void> {
    this.ensureRoot();
    for (const name of readdirSync(this.poolDir())) {
      // a claim may be making a disk already (groups are adopted before the pool starts)
      if (this.making.has(name)) continue;
      const dir = join(this.poolDir(), name);
      let keep = POOL_RE.test(name) && this.ready.length < this.poolSize;
      try {
        keep &&= statSync(join(dir, IMAGE)).size === this.opts.sizeBytes;
        if (keep) await this.mount(dir, name);
      } catch (e) {
        if (keep) console.error(`disks: dropping pool disk ${name}: ${(e as Error).message}`);
        keep = false;
      }
      if (keep) this.ready.push(name);
      else await this.discard(dir).catch((e) => console.error(`disks: pool cleanup ${name}: ${(e as Error).message}`));
    }
    if (this.poolSize > 0) this.refiller.start();
  }

  /** Stops refilling and unmounts the pool's disks (no loop device outlives the server); their images stay for the next start. */
  async stopPool(): Promise<void> {
    await this.refiller.stop();
    this.ready.splice(0);
    for (const name of existsSync(this.poolDir()) ? readdirSync(this.poolDir()) : []) {
      if (this.making.has(name)) continue;
      const fs = join(this.poolDir(), name, FS);
      if (!isMountpoint(fs)) continue;
      await runCommand('@umount', [fs, '0']).catch((e) => console.error(`disks: unmounting pool disk ${name}: ${errText(e)}`));
    }
  }

  /** Ready pool disks. */
  poolReady(): number {
    return this.ready.length;
  }

  /** Resolves once the pool is full (or stopped). */
  refill(): Promise<void> {
    return this.refiller.now();
  }

  /** One disk at a time, in the background. */
  private async fillPool(): Promise<void> {
    while (!this.refiller.stopped && this.ready.length < this.poolSize) {
      const poolId = `pool-${randomBytes(6).toString('hex')}`;
      try {
        await span(poolId, 'disk.poolMake', () => this.make(join(this.poolDir(), poolId)));
      } catch (e) {
        console.error(`disks: preparing a group disk: ${(e as Error).message}`);
        return; // retried on the next claim
      }
      this.ready.push(poolId);
    }
  }
}
