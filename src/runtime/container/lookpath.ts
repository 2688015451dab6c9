// Finds a container's command in its rootfs before it starts, as the OCI runtime would have when it was PID 1.
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

/** Symlinks followed per lookup before giving up, as the kernel does (ELOOP). */
const MAX_LINKS = 40;

/**
 * `path` (absolute, inside the container) resolved within `rootfs`: symlinks are followed as the
 * container would see them (an absolute target starts again at the rootfs, `..` stops at it).
 * Undefined when a component is missing or links loop.
 */
export function resolveInRootfs(rootfs: string, path: string): string | undefined {
  const pending = path.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(rootfs, ...done, part);
    let isLink: boolean;
    try {
      isLink = lstatSync(host).isSymbolicLink();
    } catch {
      return undefined;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) return undefined;
    const target = readlinkSync(host);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return '/' + done.join('/');
}

/** True when `path` is `dir` or lies below it. */
const within = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/**
 * Why `argv0` cannot be executed in the container, in the OCI runtime's words, or undefined when it
 * can, or when only running it can tell (it may come from one of the mounts at `mountPoints`, which
 * are not part of the rootfs). With an init as PID 1, a missing command would otherwise only show as
 * the init's exit code 127 after the container started, instead of failing the start with a reason.
 */
export function commandProblem(rootfs: string, argv0: string, env: string[], cwd: string, mountPoints: string[]): string | undefined {
  const mounted = (path: string) => mountPoints.some((m) => within(path, m));
  const check = (path: string): 'ok' | 'missing' | 'not executable' | 'unknown' => {
    if (mounted(path)) return 'unknown';
    const resolved = resolveInRootfs(rootfs, path);
    if (resolved === undefined) return 'missing';
    if (mounted(resolved)) return 'unknown';
    try {
      const st = statSync(join(rootfs, resolved));
      return st.isFile() && (st.mode & 0o111) !== 0 ? 'ok' : 'not executable';
    } catch {
      return 'missing';
    }
  };
  if (argv0.includes('/')) {
    const path = posix.resolve(cwd || '/', argv0);
    const found = check(path);
    if (found === 'missing') return `exec: "${argv0}": stat ${argv0}: no such file or directory`;
    if (found === 'not executable') return `exec: "${argv0}": permission denied`;
    return undefined;
  }
  const pathVar = [...env].reverse().find((e) => e.startsWith('PATH='))?.slice(5) ?? '';
  for (const dir of pathVar.split(':')) {
    // an empty entry is the working directory, as for a shell
    const found = check(posix.resolve(cwd || '/', dir || '.', argv0));
    if (found === 'ok' || found === 'unknown') return undefined;
  }
  return `exec: "${argv0}": executable file not found in $PATH`;
}
