// The image store's file discipline: whole files appear by rename from temp names that carry the writer's pid, and small metadata files are read synchronously.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';

/** Marks a file or dir as work in progress; no final path ever holds it. */
export const TMP_PREFIX = '.tmp-';

// The store's metadata (references, manifests, configs, layer dirs) is a few small files read on
// every create: read synchronously, as a round trip through libuv's thread pool costs more than the
// read itself, and under load that pool queues behind everything else.
export async function exists(path: string): Promise<boolean> {
  return existsSync(path);
}

export async function readFileOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  const body = await readFileOrUndefined(path);
  if (!body) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Write to a temp name in the same directory then rename: readers see the old file or the new one, never a part. */
export async function atomicWrite(path: string, body: Buffer): Promise<void> {
  const tmp = `${path}${TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, body, { flag: 'wx' });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Temp names carry the writer's pid: a temp of a live process is someone's work in progress. */
export function ownerAlive(name: string): boolean {
  const m = /\.tmp-(?:[a-f0-9]{64}-)?(\d+)-[a-f0-9]+$/.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  // Our own temps are in use: failed work removes its temp itself.
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
