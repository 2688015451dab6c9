// Where a group's writable layers and volumes live on this host: its size-limited disk, or the data dir without limits.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, Codes } from '../lib/errors.js';
import { execCommand } from '../lib/spawner.js';
import type { DiskUsage, GroupDisks } from '../runtime/disk/disks.js';
import type { Storage } from './host-runtime.js';
import type { VolumeSpec } from './spec.js';

/**
 * Storage per sandbox id (a group's generation). On a disk, the containers' writable layers
 * (`containers/<name>`) and the volumes (`volumes/<name>`) share it, so its limit bounds all they
 * write; without, volumes live in `<dataDir>/volumes/<id>` and writable layers in the runtime's own
 * dirs, unbounded. Which of the two a generation uses is decided by its first claim and kept (told
 * by its disk image, or its volumes dir): turning limits on or off leaves running groups as they are.
 */
export class GroupStorage implements Storage {
  constructor(private readonly dataDir: string, private readonly disks: GroupDisks) {}

  private unlimitedRoot() {
    return join(this.dataDir, 'volumes');
  }

  private onDisk(id: string): boolean {
    return this.disks.has(id);
  }

  /** Makes the group's storage ready (mounts its disk); idempotent. */
  async claim(id: string): Promise<void> {
    // a generation that began without a disk (limits were off, or came later) keeps going without
    const unlimited = !this.onDisk(id) && (this.disks.sizeBytes === 0 || existsSync(join(this.unlimitedRoot(), id)));
    if (!unlimited) await this.disks.claim(id);
  }

  /** Where a container of the group keeps its writable layer; undefined: in the runtime's own dir. */
  scratchDir(id: string, container: string): string | undefined {
    return this.onDisk(id) ? join(this.disks.path(id), 'containers', container) : undefined;
  }

  volumeDir(id: string, volume: string): string {
    return join(this.onDisk(id) ? join(this.disks.path(id), 'volumes') : join(this.unlimitedRoot(), id), volume);
  }

  /**
   * Fills the group's volumes. Their dirs are reached only as root (the data dir and the disk are
   * root's alone): a container sees a volume through its bind mount, with the volume dir's own mode.
   */
  async prepareVolumes(id: string, volumes: VolumeSpec[], netnsPath: string): Promise<void> {
    if (volumes.length === 0) return;
    if (!this.onDisk(id)) await mkdir(this.unlimitedRoot(), { recursive: true, mode: 0o700 });
    const root = this.volumeDir(id, '');
    await mkdir(root, { recursive: true, mode: 0o700 });
    for (const v of volumes) {
      const dir = this.volumeDir(id, v.name);
      if (v.gitRepo) {
        await cloneVolume(v.name, v.gitRepo, dir, netnsPath);
        continue;
      }
      await mkdir(dir, { recursive: true, mode: 0o755 });
      if (v.secret) {
        // readable by the container's user, whoever it is: the dirs above keep other host users out
        for (const [file, b64] of Object.entries(v.secret)) await writeFile(join(dir, file), Buffer.from(b64, 'base64'), { mode: 0o444 });
      } else {
        // emptyDir is writable by any user of the group, as in Kubernetes.
        await chmod(dir, 0o777);
      }
    }
  }

  /** Sandbox ids that have storage on this host. */
  async ids(): Promise<string[]> {
    const unlimited = await readdir(this.unlimitedRoot()).catch(() => [] as string[]);
    return [...new Set([...unlimited, ...this.disks.list()])].sort();
  }

  /** Frees the group's storage: its disk (all it held) and its volumes. Its containers must be removed first. */
  async remove(id: string): Promise<void> {
    await rm(join(this.unlimitedRoot(), id), { recursive: true, force: true });
    await this.disks.release(id);
  }

  /** The disk's figures when it is full (a write would fail), else undefined. One statfs. */
  full(id: string): DiskUsage | undefined {
    return this.disks.full(id);
  }
}

/**
 * Clones a gitRepo volume as Kubernetes does (into `directory`, or a directory named after the
 * repository), then checks out `revision`. Idempotent: a volume already cloned is kept. Only
 * http(s) and git transports are allowed (the model refuses others), and git reads no user config.
 * git runs in the group's network namespace: it reaches what the group's containers reach, never
 * the host's loopback services.
 */
async function cloneVolume(name: string, g: NonNullable<VolumeSpec['gitRepo']>, dir: string, netnsPath: string) {
  if (await stat(dir).then(() => true, () => false)) return;
  const tmp = `${dir}.cloning`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  const sub = g.directory === '.' ? '' : (g.directory ?? g.repository.replace(/\/+$/, '').split('/').pop()!.replace(/\.git$/, ''));
  const target = join(tmp, sub);
  const git = async (args: string[], cwd?: string) => {
    const r = await execCommand('nsenter', [
      `--net=${netnsPath}`, '--', 'git', '-c', 'protocol.allow=never', '-c', 'protocol.http.allow=always', '-c', 'protocol.https.allow=always', '-c', 'protocol.git.allow=always',
      ...args,
    ], {
      cwd, timeoutMs: 120_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
    });
    if (r.code === 0 && !r.error) return;
    const why = r.stderr.trim().split('\n').filter(Boolean).pop() ?? r.error ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
    throw new BerthError(Codes.GitRepoCloneFailed, `The gitRepo volume '${name}' could not be cloned from '${g.repository}': ${why}`);
  };
  try {
    await git(['clone', '--quiet', '--', g.repository, target]);
    if (g.revision) {
      await git(['checkout', '--quiet', '--detach', g.revision, '--'], target);
    }
    // Any user of the group may write to it, as to an emptyDir.
    await chmod(tmp, 0o777);
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
