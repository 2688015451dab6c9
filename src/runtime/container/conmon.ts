// Creates a container under conmon, its monitor: conmon outlives berth, writes the log and records the exit.
import { BerthError, Codes } from '../../lib/errors.js';
import { spawnWithSyncPipe } from '../../lib/spawner.js';
import type { ContainerDirs } from './container-dir.js';
import type { OciRuntimeCli } from './oci-runtime.js';

/**
 * Starts conmon fully detached (own session, no stdio tied to us) so it and the container survive
 * this process; conmon reports the container PID (or runc's error) on the sync pipe once
 * `runc create` is done.
 */
export function spawnConmon(conmon: string, oci: OciRuntimeCli, dirs: ContainerDirs, id: string, bundle: string): Promise<number> {
  const args = [
    '--api-version', '1',
    '-c', id,
    '-u', id,
    '-n', id,
    '-r', oci.path,
    '--runtime-arg', '--root',
    '--runtime-arg', oci.stateRoot,
    '-b', bundle,
    '-p', dirs.dir(id, 'ctr.pid'),
    '--exit-dir', dirs.exitsDir(),
    '-0', dirs.dir(id, 'persist'),
    '-l', `k8s-file:${dirs.logPath(id)}`,
    '--conmon-pidfile', dirs.dir(id, 'conmon.pid'),
    '--socket-dir-path', dirs.dir(id, 'sock'),
    '--log-level', 'error',
    '--no-sync-log',
  ];
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' };
  return spawnWithSyncPipe(conmon, args, { env, cwd: dirs.dir(id) }).then(({ line, error }) => {
    if (error) throw new BerthError(Codes.RuntimeError, `spawning conmon for ${id}: ${error}`);
    if (!line) throw new BerthError(Codes.RuntimeError, `conmon for ${id} exited before reporting the container PID`);
    let msg: { data: number; message?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      throw new BerthError(Codes.RuntimeError, `conmon for ${id}: unparsable report ${JSON.stringify(line.slice(0, 200))}`);
    }
    if (msg.data > 0) return msg.data;
    throw new BerthError(Codes.RuntimeError, `creating container ${id}: ${(msg.message ?? 'runc create failed').trim()}`);
  });
}
