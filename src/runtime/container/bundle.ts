// A container's OCI bundle: the overlay rootfs (the image's layers under a writable one) and config.json with the /etc files it mounts.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { isMountpoint, unmount } from '../../lib/mounts.js';
import { runCommand } from '../../lib/spawner.js';
import type { ContainerSpec } from '../types.js';
import type { ContainerDirs, ContainerMeta } from './container-dir.js';
import { commandProblem } from './lookpath.js';
import { buildOciSpec, hostsFileContent, processArgs, resolvConfContent } from './spec.js';

/**
 * Mounts the overlay rootfs (upper layer kept across restarts) unless it is mounted with these
 * layers already. The writable layer lives in `scratch` when given (a group's size-limited disk),
 * else in the container's own dir; a container keeps the one it started with.
 */
export async function mountRootfs(dirs: ContainerDirs, meta: ContainerMeta, layerDirs: string[], scratch?: string): Promise<void> {
  const id = meta.id;
  const rootfs = dirs.dir(id, 'bundle', 'rootfs');
  const lowerdir = [...layerDirs].reverse().join(':');
  if (layerDirs.length === 0) throw new BerthError(Codes.RuntimeError, `container ${id}: image has no layers`);
  if (isMountpoint(rootfs) && meta.lowerdir !== lowerdir) await unmount(rootfs);
  // mounted before (lowerdir on record) without a scratch dir: its layer stays in its own dir
  if (meta.lowerdir === undefined) meta.scratch ??= scratch;
  const layer = meta.scratch ?? dirs.dir(id);
  if (!isMountpoint(rootfs)) {
    dirs.makeOwnDir(id);
    mkdirSync(rootfs, { recursive: true });
    // the upper dir's mode is the container's / (0755 as in any image); work is overlay's own
    mkdirSync(join(layer, 'upper'), { recursive: true, mode: 0o755 });
    mkdirSync(join(layer, 'work'), { recursive: true, mode: 0o700 });
    const data = `lowerdir=${lowerdir},upperdir=${join(layer, 'upper')},workdir=${join(layer, 'work')}`;
    try {
      // mount(2) from berth-spawnd: mount(8) reads every mount of the host first (15 ms with hundreds)
      await runCommand('@mount', ['overlay', rootfs, 'overlay', '0', data]);
    } catch (e) {
      throw new BerthError(Codes.RuntimeError, `mounting rootfs of ${id}: ${String((e as { stderr?: string }).stderr ?? e).trim()}`);
    }
  }
  meta.lowerdir = lowerdir;
}

export interface BundleOptions {
  cgroupParent?: string;
  /** Host resolv.conf to derive the container's from. */
  hostResolvConf?: string;
  /** The static init run as PID 1, if any. */
  init?: string;
}

/**
 * Writes the container's /etc files and config.json into its bundle (rootfs mounted already) and
 * returns the bundle's path; refuses a command the image does not have, with the reason.
 */
export function writeBundle(dirs: ContainerDirs, spec: ContainerSpec, opts: BundleOptions): string {
  const id = spec.id;
  const bundle = dirs.dir(id, 'bundle');
  const rootfs = join(bundle, 'rootfs');
  const etc = {
    hosts: dirs.dir(id, 'etc', 'hosts'),
    hostname: dirs.dir(id, 'etc', 'hostname'),
    resolvConf: undefined as string | undefined,
  };
  let hostResolv = '';
  try {
    hostResolv = readFileSync(opts.hostResolvConf ?? '/etc/resolv.conf', 'utf8');
  } catch {
    /* no host resolver config: keep the image's */
  }
  const resolv = resolvConfContent(hostResolv);
  writeFileSync(etc.hosts, hostsFileContent(spec.hostname, spec.ip));
  writeFileSync(etc.hostname, `${spec.hostname}\n`);
  if (resolv) {
    etc.resolvConf = dirs.dir(id, 'etc', 'resolv.conf');
    writeFileSync(etc.resolvConf, resolv);
  }
  const oci = buildOciSpec(spec, { rootfs, etcFiles: etc, cgroupParent: opts.cgroupParent, init: opts.init });
  const problem = commandProblem(rootfs, processArgs(spec)[0], oci.process.env, oci.process.cwd, oci.mounts.map((m) => m.destination));
  if (problem) throw new BerthError(Codes.RuntimeError, `creating container ${id}: ${problem}`);
  // it holds the secure environment values: root's alone, also when it was written before with a wider mode
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(oci), { mode: 0o600 });
  chmodSync(join(bundle, 'config.json'), 0o600);
  return bundle;
}
