// The raw runtime floor: `runc run -d` / `crun run -d` of the same image and OCI config berth builds, in a ready network namespace.
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildOciSpec } from '../src/runtime/container/spec.js';
import type { PulledImage } from '../src/runtime/types.js';
import { run, runDetached, waitTcp } from './lib.js';

export interface Floor {
  /** Runtimes that passed a trial run (runc always; crun when the host allows it). */
  runtimes: string[];
  /** One create-to-accepting sample with `runtime`, in ms. */
  sample(runtime: string, i: number): Promise<number>;
  close(): Promise<void>;
}

const NETNS = 'btbench-floor';
const HOST_VETH = 'btbfloor0';
// outside the berth bench subnet (10.213.80.0/22) and the peers' ones
const HOST_IP = '10.213.84.1';
const NS_IP = '10.213.84.2';
const CGROUP_PARENT = '/berth-bench-floor';

export async function startFloor(dir: string, image: PulledImage): Promise<Floor> {
  await mkdir(dir, { recursive: true });
  // runc creates missing mount points in the rootfs: give it a copy, never the store's shared layer
  const rootfs = join(dir, 'rootfs');
  await cp(image.layerDirs[0], rootfs, { recursive: true, verbatimSymlinks: true });
  const etc = { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname') };
  await writeFile(etc.hosts, `127.0.0.1 localhost\n${NS_IP} floor\n`);
  await writeFile(etc.hostname, 'floor\n');

  // The floor gets its network for free (made once here): it measures the runtime alone.
  await run('ip', ['netns', 'add', NETNS]);
  await run('ip', ['link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
  await run('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', HOST_VETH]);
  await run('ip', ['link', 'set', HOST_VETH, 'up']);
  await run('ip', ['-n', NETNS, 'addr', 'add', `${NS_IP}/30`, 'dev', 'eth0']);
  await run('ip', ['-n', NETNS, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);

  const bundle = join(dir, 'bundle');
  await mkdir(bundle, { recursive: true });
  const spec = buildOciSpec(
    {
      id: 'floor', image, env: {}, cpuLimit: 0.5, memoryLimitBytes: 256 << 20, netnsPath: `/run/netns/${NETNS}`, hostname: 'floor', mounts: [], ip: NS_IP,
    },
    { rootfs, etcFiles: etc, cgroupParent: CGROUP_PARENT },
  );
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));

  const bins: Record<string, string> = { runc: '/usr/sbin/runc', crun: '/usr/bin/crun' };
  const stateRoot = (rt: string) => join(dir, `${rt}-state`);
  const remove = async (rt: string, id: string) => {
    await run(bins[rt], ['--root', stateRoot(rt), 'kill', id, 'KILL']).catch(() => undefined);
    await run(bins[rt], ['--root', stateRoot(rt), 'delete', '--force', id]).catch(() => undefined);
  };
  const once = async (rt: string, id: string) => {
    const t0 = performance.now();
    const code = await runDetached(bins[rt], ['--root', stateRoot(rt), 'run', '-d', '--bundle', bundle, id]);
    if (code !== 0) throw new Error(`${rt} run -d exited with ${code}`);
    await waitTcp(NS_IP, 80, 10_000);
    const ms = performance.now() - t0;
    await remove(rt, id);
    return ms;
  };

  const runtimes: string[] = [];
  for (const rt of ['runc', 'crun']) {
    if (!existsSync(bins[rt])) continue;
    try {
      await once(rt, `trial-${rt}`);
      runtimes.push(rt);
    } catch (e) {
      console.error(`bench: floor: ${rt} does not run here (${(e as Error).message})`);
      await remove(rt, `trial-${rt}`);
    }
  }

  return {
    runtimes,
    sample: (rt, i) => once(rt, `floor-${rt}-${i}`),
    async close() {
      for (const rt of Object.keys(bins)) {
        const ids = (await run(bins[rt], ['--root', stateRoot(rt), 'list', '-q']).catch(() => '')).split('\n').filter(Boolean);
        for (const id of ids) await remove(rt, id);
      }
      await run('ip', ['netns', 'delete', NETNS]).catch(() => undefined);
      await run('ip', ['link', 'delete', HOST_VETH]).catch(() => undefined);
      for (const ctl of readdirSync('/sys/fs/cgroup')) {
        const p = join('/sys/fs/cgroup', ctl, CGROUP_PARENT);
        if (existsSync(p)) {
          try {
            rmdirSync(p);
          } catch {
            /* a controller mounted twice (cpu,cpuacct) shows the same dir under both names */
          }
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
