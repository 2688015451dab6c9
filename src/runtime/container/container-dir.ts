// The containers' directories under one root: each one's meta, exit record, conmon PID and log files, the state that outlives berth.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, watch, writeFileSync } from 'node:fs';
import { readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';

/** What we keep next to the bundle; everything else is read back from runc and conmon's files. */
export interface ContainerMeta {
  id: string;
  startedAt?: string;
  /** The container's init PID and its start time in clock ticks (guards against PID reuse). */
  pid?: number;
  pidStartTicks?: string;
  lowerdir?: string;
  /** Where the writable layer (upper and work dirs) lives when not in the container's own dir. */
  scratch?: string;
  restarts: number;
}

const ID_RE = /^[a-z0-9][a-z0-9_.-]*$/;

export function checkContainerId(id: string): void {
  if (!ID_RE.test(id) || id.length > 128) {
    throw new BerthError(Codes.RuntimeError, `invalid container id "${id}"`);
  }
}

/** True while the process runs; a zombie counts as gone (init may reap orphans lazily). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone or a zombie. */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** The recorded init PID while that very process (same start time) is alive. */
export function livePidOf(meta: ContainerMeta): number | undefined {
  return meta.pid && meta.pidStartTicks && processStartTicks(meta.pid) === meta.pidStartTicks ? meta.pid : undefined;
}

async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * A container's own dir is root's alone: its bundle's config.json holds the container's secure
 * environment values. What the container itself reads through a bind mount (the /etc files) keeps
 * its own mode; the dirs above it are never traversed from inside the container.
 */
const PRIVATE_DIR = 0o700;

/**
 * A container's own small files (meta, OCI config, etc files) are written and read synchronously:
 * a round trip through libuv's thread pool costs more than the write, and under load it queues.
 */
export class ContainerDirs {
  /** Per-container directories live in `<root>/<id>/`. */
  constructor(readonly root: string) {}

  dir(id: string, ...rest: string[]): string {
    return join(this.root, id, ...rest);
  }

  /** The container's own dir, private to root (see PRIVATE_DIR), also when an older berth made it wider. */
  makeOwnDir(id: string): void {
    mkdirSync(this.root, { recursive: true, mode: PRIVATE_DIR });
    mkdirSync(this.dir(id), { recursive: true, mode: PRIVATE_DIR });
    chmodSync(this.dir(id), PRIVATE_DIR);
  }

  async list(): Promise<string[]> {
    try {
      const entries = await readdir(this.root, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && ID_RE.test(e.name)).map((e) => e.name).sort();
    } catch {
      return [];
    }
  }

  logPath(id: string): string {
    return this.dir(id, 'ctr.log');
  }

  previousLogPath(id: string): string {
    return this.dir(id, 'ctr.previous.log');
  }

  /** On a restart, the log of the run that ended becomes the previous log; the new run starts a fresh one. */
  async rotateLog(id: string): Promise<void> {
    try {
      await rename(this.logPath(id), this.previousLogPath(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await writeFile(this.previousLogPath(id), ''); // that run wrote nothing
    }
  }

  async readMeta(id: string): Promise<ContainerMeta | undefined> {
    try {
      return JSON.parse(readFileSync(this.dir(id, 'meta.json'), 'utf8')) as ContainerMeta;
    } catch {
      return undefined;
    }
  }

  writeMeta(meta: ContainerMeta): Promise<void> {
    return writeFileAtomic(this.dir(meta.id, 'meta.json'), JSON.stringify(meta));
  }

  /** One exit dir for every container conmon monitors: a single inotify watch sees every exit. */
  exitsDir(): string {
    return join(this.root, '.exits');
  }

  readExit(id: string): { code: number; at: string } | undefined {
    // containers started before the shared dir existed keep their exit file beside their bundle
    for (const p of [join(this.exitsDir(), id), this.dir(id, 'exits', id)]) {
      try {
        const text = readFileSync(p, 'utf8').trim();
        if (text === '') continue;
        return { code: Number(text), at: statSync(p).mtime.toISOString() };
      } catch {
        /* not there */
      }
    }
    return undefined;
  }

  /**
   * Calls `onExit(id)` whenever conmon records a container's exit (it writes `<exit dir>/<id>`),
   * so a caller learns of exits without polling every container. Events may repeat or name
   * conmon's temporary files (`<id>.XXXXXX`): treat them as hints to look again.
   */
  watchExits(onExit: (id: string) => void): () => void {
    mkdirSync(this.exitsDir(), { recursive: true });
    const w = watch(this.exitsDir(), (_event, name) => {
      if (typeof name === 'string' && name !== '') onExit(name.replace(/\.[A-Za-z0-9]{6}$/, ''));
    });
    w.on('error', (e) => console.error(`runtime: watching exits: ${e.message}`));
    return () => w.close();
  }

  conmonPid(id: string): number | undefined {
    try {
      const pid = Number(readFileSync(this.dir(id, 'conmon.pid'), 'utf8').trim());
      if (!(pid > 0) || !pidAlive(pid)) return undefined;
      // guard against PID reuse: the live process must be conmon for this id
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('conmon') && cmdline.includes(this.dir(id)) ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}
