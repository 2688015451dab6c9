// Unpacks a verified layer blob into a directory overlayfs can use: gzip, zstd or plain tar through GNU tar, OCI whiteouts turned into overlay's.

import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BerthError, Codes } from '../../lib/errors.js';

/** Extracts the layer in `blob` into the empty directory `dir` and converts its whiteouts. */
export async function unpackLayerInto(blob: string, dir: string): Promise<void> {
  await extractLayer(blob, dir);
  await convertWhiteouts(dir);
}

type Compression = 'gzip' | 'zstd' | 'none';

/**
 * Compression from the file's magic bytes. gzip and zstd always start with theirs, so bytes without
 * one are a plain tar whatever the media type claims (some registries mislabel layers).
 */
async function detectCompression(file: string): Promise<Compression | 'empty'> {
  const fh = await open(file, 'r');
  const magic = Buffer.alloc(4);
  let n: number;
  try {
    ({ bytesRead: n } = await fh.read(magic, 0, 4, 0));
  } finally {
    await fh.close();
  }
  if (n === 0) return 'empty';
  if (magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip';
  if (magic.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
  return 'none';
}

/** GNU tar does the extraction: it handles hardlinks, devices, modes and refuses `..` escapes. */
async function extractLayer(blob: string, dir: string): Promise<void> {
  const compression = await detectCompression(blob);
  if (compression === 'empty') return;
  const tar = spawn('tar', ['-x', '--numeric-owner', '-p', '--xattrs', '--xattrs-include=security.capability', '-f', '-', '-C', dir], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const tarDone = childDone(tar, 'tar');
  const feeds: Promise<unknown>[] = [];
  if (compression === 'zstd') {
    const zstd = spawn('zstd', ['-dc', '-q', '--', blob], { stdio: ['ignore', 'pipe', 'pipe'] });
    feeds.push(childDone(zstd, 'zstd'), pipeline(zstd.stdout, tar.stdin));
  } else if (compression === 'gzip') {
    feeds.push(pipeline(createReadStream(blob), createGunzip(), tar.stdin));
  } else {
    feeds.push(pipeline(createReadStream(blob), tar.stdin));
  }
  const results = await Promise.allSettled([tarDone, ...feeds]);
  // tar's own message is the most useful one; a broken pipe on the feeding side is its consequence.
  const tarResult = results[0]!;
  if (tarResult.status === 'rejected') throw tarResult.reason;
  // tar stops reading at the end-of-archive blocks and exits; whatever was still being fed to it
  // (padding, or just the close racing the exit) is of no interest: the blob's digest was verified.
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !isBrokenPipe(r.reason));
  if (failed) throw failed.reason;
}

const isBrokenPipe = (e: unknown): boolean => {
  const err = e as { code?: string; signal?: string };
  return err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.signal === 'SIGPIPE';
};

/**
 * OCI whiteouts to overlayfs: `.wh.NAME` becomes a 0:0 character device NAME, `.wh..wh..opq` becomes
 * the `trusted.overlay.opaque=y` xattr on its directory.
 */
async function convertWhiteouts(root: string): Promise<void> {
  const opaque: string[] = [];
  const whiteouts: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.name === '.wh..wh..opq') {
        await unlink(path);
        opaque.push(dir);
      } else if (entry.name.startsWith('.wh.')) {
        await rm(path, { recursive: true, force: true });
        whiteouts.push(join(dir, entry.name.slice(4)));
      } else if (entry.isDirectory()) {
        await walk(path);
      }
    }
  };
  await walk(root);
  for (const path of whiteouts) {
    // A layer should not both add and delete a name; if it does, the deletion is what it means.
    await rm(path, { recursive: true, force: true });
    await run('mknod', ['-m', '000', path, 'c', '0', '0']);
  }
  for (let i = 0; i < opaque.length; i += 100) {
    await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', '--', ...opaque.slice(i, i + 100)]);
  }
}

function childDone(child: ReturnType<typeof spawn>, name: string): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  return new Promise((resolvePromise, reject) => {
    child.on('error', (e) =>
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? new BerthError(Codes.RuntimeError, `'${name}' is not installed on this host.`, 500)
          : e,
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(Object.assign(new Error(`${name} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`), { signal }));
    });
  });
}

function run(cmd: string, args: string[]): Promise<void> {
  return childDone(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }), cmd);
}
