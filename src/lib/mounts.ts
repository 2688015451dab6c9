// Mount points: whether something is mounted on a path, and unmounting through berth-spawnd.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { BerthError, Codes } from './errors.js';
import { runCommand } from './spawner.js';

/**
 * True when something is mounted on `path`: its device differs from its parent's. O(1), unlike a
 * scan of /proc/self/mountinfo, which grows with every mount (every container's overlay). Holds for
 * berth's own mount points, on which only a file system of their own is ever mounted.
 */
export function isMountpoint(path: string): boolean {
  try {
    return statSync(path).dev !== statSync(dirname(path)).dev;
  } catch {
    return false;
  }
}

/** Unmounts `path`; a busy mount is detached (MNT_DETACH) and goes once its last user is gone. */
export async function unmount(path: string): Promise<void> {
  try {
    await runCommand('@umount', [path, '0']);
  } catch (e) {
    await runCommand('@umount', [path, '2']).catch(() => undefined);
    if (isMountpoint(path)) throw new BerthError(Codes.RuntimeError, `unmounting ${path}: ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
  }
}
