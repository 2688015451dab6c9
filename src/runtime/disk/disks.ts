// Size-limited disks for container groups: a sparse ext4 image per group, loop-mounted; state is the files on disk.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { KeyedLock } from '../../lib/keyed-lock.js';
import { Refiller } from '../../lib/refiller.js';
import { runCommand } from '../../lib/spawner.js';
import { span } from '../../lib/trace.js';

/*
 * This kernel has no disk quotas (no XFS project quotas, no ext4 quota format), so a directory
 * cannot be limited in place as Docker's overlay2 `size=` does. Instead each group gets a file
 * system of its own: an ext4 image of the limit's size, sparse (about 4 MB of real disk until
 * written), on a loop device. A write past the limit fails with ENOSPC inside the group only.
 *
 * Layout under the root (root's alone: images hold secret volumes and secure values written by
 * containers):
 *   <id>.img          the group's image (0600)
 *   <id>/             its mount point
 *   pool/<p>.img      formatted images ready to be claimed
 *   pool/<p>.partial  one being formatted (removed at start: a crash may have left it half-made)
 * A claim renames a pool image to `<id>.img`, so at any moment an image belongs to a group, to the
 * pool, or is unfinished; loop devices detach themselves with their mount (autoclear), so after a
 * kill -9 nothing exists that these files do not name.
 */

export interface GroupDisksOptions {
  root: string;
  /** Each new disk's size in bytes; 0 makes no new disks (those made before are still adopted and released). */
  sizeBytes: number;
  /** Formatted images kept ready, so a claim only mounts (~2 ms) instead of formatting (~15 ms). Default 0. */
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
/** Below this much free space (or without a free inode) a disk counts as full: the next write fails. */
const FULL_BELOW_BYTES = 1 << 20;
/** The inode tables of a fresh image are zeroed lazily by a kernel thread at mount; nothing needs them zeroed. */
const MOUNT_OPTIONS = 'noinit_itable';

const errText = (e: unknown) => String((e as { stderr?: string }).stderr || (e as Error).message || e).trim();

/** True when something is mounted on `path` (its device differs from its parent's). */
function isMountpoint(path: string): boolean {
  try {
    return statSync(path).dev !== statSync(dirname(path)).dev;
  } catch {
    return false;
  }
}

export class GroupDisks {
  private readonly locks = new KeyedLock();
  private readonly poolSize: number;
  private readonly mkfs: string;
  private ready: string[] = [];
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
    return existsSync(this.image(id));
  }

  /** Where the disk of `id` is mounted (whether or not it is now). */
  path(id: string): string {
    return join(this.opts.root, id);
  }

  private image(id: string): string {
    return join(this.opts.root, `${id}.img`);
  }

  private poolDir(): string {
    return join(this.opts.root, 'pool');
  }

  private checkId(id: string): void {
    if (!ID_RE.test(id) || id === 'pool' || id.length > 200) throw new BerthError(Codes.RuntimeError, `invalid disk id "${id}"`);
  }

  private ensureRoot(): void {
    mkdirSync(this.poolDir(), { recursive: true, mode: 0o700 });
    chmodSync(this.opts.root, 0o700);
  }

  /**
   * The disk of `id`, mounted: adopted when its image exists (a restart, a crash between steps),
   * else a pool image, else one formatted now. Resolves with its mount point.
   */
  claim(id: string): Promise<string> {
    this.checkId(id);
    return this.locks.run(id, async () => {
      const mountPoint = this.path(id);
      if (isMountpoint(mountPoint)) return mountPoint;
      this.ensureRoot();
      if (!existsSync(this.image(id))) {
        if (this.opts.sizeBytes === 0) throw new BerthError(Codes.RuntimeError, `no disk for ${id}: group disks are turned off`);
        if (!this.takeFromPool(id)) await span(id, 'disk.format', () => this.format(this.image(id)));
        if (this.poolSize > 0) this.refiller.soon();
      }
      mkdirSync(mountPoint, { recursive: true, mode: 0o700 });
      try {
        await span(id, 'disk.mount', () => runCommand('@loop-mount', [this.image(id), mountPoint, 'ext4', '0', MOUNT_OPTIONS]));
      } catch (e) {
        throw new BerthError(Codes.RuntimeError, `mounting the disk of ${id}: ${errText(e)}`);
      }
      // the file system's root is the group's: no other host user looks inside
      chmodSync(mountPoint, 0o700);
      return mountPoint;
    });
  }

  /** Renames a ready pool image to the group's; false when the pool has none. */
  private takeFromPool(id: string): boolean {
    for (let poolId = this.ready.shift(); poolId; poolId = this.ready.shift()) {
      try {
        renameSync(join(this.poolDir(), `${poolId}.img`), this.image(id));
        return true;
      } catch {
        /* gone meanwhile (a concurrent start's cleanup): the next one */
      }
    }
    return false;
  }

  /** Formats a sparse image at `path`, made under a temporary name so a crash never leaves a half-made one there. */
  private async format(path: string): Promise<void> {
    const partial = join(this.poolDir(), `pool-${randomBytes(6).toString('hex')}.partial`);
    try {
      const fd = openSync(partial, 'wx', 0o600);
      try {
        ftruncateSync(fd, this.opts.sizeBytes);
      } finally {
        closeSync(fd);
      }
      // no journal: what a group writes does not outlive the group, and a journal costs real disk
      // up front; no reserved blocks: the whole limit is the group's
      await runCommand(this.mkfs, ['-q', '-F', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', '-m', '0', partial]);
      renameSync(partial, path);
    } catch (e) {
      rmSync(partial, { force: true });
      throw new BerthError(Codes.RuntimeError, `formatting a group disk: ${errText(e)}`);
    }
  }

  /** Unmounts the disk of `id` and deletes its image; what it held is gone. Idempotent. */
  release(id: string): Promise<void> {
    this.checkId(id);
    return this.locks.run(id, async () => {
      const mountPoint = this.path(id);
      if (isMountpoint(mountPoint)) {
        try {
          await runCommand('@umount', [mountPoint, '0']);
        } catch (e) {
          // still used (a process's working directory): detached now, gone with its last user
          await runCommand('@umount', [mountPoint, '2']).catch(() => undefined);
          if (isMountpoint(mountPoint)) throw new BerthError(Codes.RuntimeError, `unmounting the disk of ${id}: ${errText(e)}`);
        }
      }
      rmSync(this.image(id), { force: true });
      // never recursive into a mount: checked just above
      await rm(mountPoint, { recursive: true, force: true });
    });
  }

  /** Ids of the disks on this host, mounted or not. */
  list(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.opts.root);
    } catch {
      return [];
    }
    const ids = new Set(names.map((n) => n.replace(/\.img$/, '')).filter((n) => n !== 'pool' && ID_RE.test(n)));
    return [...ids].sort();
  }

  /** Size and free space of the mounted disk of `id` (one statfs), or undefined when it is not mounted. */
  usage(id: string): DiskUsage | undefined {
    const mountPoint = this.path(id);
    if (!isMountpoint(mountPoint)) return undefined;
    const st = statfsSync(mountPoint);
    let limitBytes: number;
    try {
      limitBytes = statSync(this.image(id)).size;
    } catch {
      return undefined; // released meanwhile
    }
    return { limitBytes, sizeBytes: st.blocks * st.bsize, availableBytes: st.bavail * st.bsize, freeInodes: st.ffree };
  }

  /** True when a write to the disk of `id` would fail for lack of space or inodes. */
  full(id: string): DiskUsage | undefined {
    const u = this.usage(id);
    return u && (u.availableBytes < FULL_BELOW_BYTES || u.freeInodes === 0) ? u : undefined;
  }

  // --- the pool ---

  /**
   * Drops what a previous process left half-made (and images of another size), keeps the rest, and
   * fills the pool in the background. Call once at start.
   */
  async startPool(): Promise<void> {
    this.ensureRoot();
    for (const name of readdirSync(this.poolDir())) {
      const path = join(this.poolDir(), name);
      const poolId = name.replace(/\.img$/, '');
      const keep = name.endsWith('.img') && POOL_RE.test(poolId) && this.ready.length < this.poolSize && statSync(path).size === this.opts.sizeBytes;
      if (keep) this.ready.push(poolId);
      else rmSync(path, { force: true, recursive: true });
    }
    if (this.poolSize > 0) this.refiller.start();
  }

  /** Stops refilling; the ready images stay for the next start (they are plain files). */
  async stopPool(): Promise<void> {
    await this.refiller.stop();
  }

  /** Ready pool images. */
  poolReady(): number {
    return this.ready.length;
  }

  /** Resolves once the pool is full (or stopped). */
  refill(): Promise<void> {
    return this.refiller.now();
  }

  /** One image at a time, in the background. */
  private async fillPool(): Promise<void> {
    while (!this.refiller.stopped && this.ready.length < this.poolSize) {
      const poolId = `pool-${randomBytes(6).toString('hex')}`;
      try {
        await span(poolId, 'disk.poolFormat', () => this.format(join(this.poolDir(), `${poolId}.img`)));
      } catch (e) {
        console.error(`disks: preparing a group disk: ${(e as Error).message}`);
        return; // retried on the next claim
      }
      this.ready.push(poolId);
    }
  }
}
