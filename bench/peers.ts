// Peers measured beside berth: podman and docker with bridge networking and a published port, each on private state dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findProcesses, linkExists, meanPssMiB, run, sleep, unmountAll, version, waitTcp } from './lib.js';

export interface Peer {
  name: 'podman' | 'docker';
  version: string;
  /** What the engine runs containers with. */
  runtime: string;
  /** `run -d` with a published port until 127.0.0.1:port accepts, in ms; the container is removed afterwards (untimed). */
  sample(i: number, hostPort: number): Promise<number>;
  /** Starts `n` containers, returns the mean PSS (MiB) of their monitor processes, removes them. */
  monitorPss(n: number, firstPort: number): Promise<{ monitor: string; count: number; meanPssMiB: number }>;
  close(): Promise<void>;
}

const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];

/** podman with its own storage, run root and network config; CONTAINERS_CONF keeps the host's config untouched. */
export async function startPodman(dir: string, image: string): Promise<Peer | undefined> {
  if (!existsSync('/usr/bin/podman')) return undefined;
  await mkdir(join(dir, 'networks'), { recursive: true });
  const conf = join(dir, 'containers.conf');
  const crunOk = await crunRuns();
  await writeFile(conf, [
    '[containers]',
    // podman lowers RLIMIT_NPROC at start; without CAP_SYS_RESOURCE that fails unless no ulimits are set
    'default_ulimits = []',
    '[network]',
    `network_config_dir = "${join(dir, 'networks')}"`,
    'default_subnet = "10.213.88.0/24"',
    '[engine]',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${join(dir, 'events.log')}"`,
    // crun is podman's default; it only runs here once the v1 hugetlb hierarchy is mounted
    `runtime = "${crunOk ? 'crun' : 'runc'}"`,
    '',
  ].join('\n'));
  const env = { ...process.env, CONTAINERS_CONF: conf };
  // podman's bridge: podman0 with netavark, cni-podman0 with CNI (Debian's podman 4 here); both outlive its containers
  const bridges = ['podman0', 'cni-podman0'].filter((b) => !linkExists(b));
  const base = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp')];
  const podman = (...args: string[]) => run('/usr/bin/podman', [...base, ...args], { env });
  await podman('pull', '-q', '--tls-verify=false', image);
  const rmAll = () => podman('rm', '-f', '-a', '-t', '0').catch((e) => console.error(`bench: podman rm: ${(e as Error).message}`));
  return {
    name: 'podman',
    version: await version('/usr/bin/podman'),
    runtime: crunOk ? 'crun' : 'runc',
    async sample(i, hostPort) {
      const t0 = performance.now();
      await podman('run', '-d', '--name', `pb-${i}`, '-p', `${hostPort}:80`, image, ...HTTPD);
      await waitTcp('127.0.0.1', hostPort);
      const ms = performance.now() - t0;
      await podman('rm', '-f', '-t', '0', `pb-${i}`);
      return ms;
    },
    async monitorPss(n, firstPort) {
      for (let i = 0; i < n; i++) await podman('run', '-d', '--name', `pd-${i}`, '-p', `${firstPort + i}:80`, image, ...HTTPD);
      const pids = findProcesses('conmon', join(dir, 'run'));
      const r = { monitor: 'conmon', count: pids.length, meanPssMiB: meanPssMiB(pids) };
      await rmAll();
      return r;
    },
    async close() {
      await rmAll();
      await podman('network', 'prune', '-f').catch(() => undefined);
      for (const pid of findProcesses('conmon', join(dir, 'run'))) process.kill(pid, 'SIGKILL');
      await unmountAll(dir);
      for (const b of bridges) if (linkExists(b)) await run('ip', ['link', 'delete', b]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** crun refuses to start in cgroup-v1 hybrid mode until the v1 hugetlb hierarchy exists. */
async function crunRuns(): Promise<boolean> {
  if (!existsSync('/usr/bin/crun')) return false;
  try {
    const { readFileSync } = await import('node:fs');
    return readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim() === '';
  } catch {
    return true; // pure cgroup v2, or no unified hierarchy at all
  }
}

/** A dockerd of our own (own data root, exec root and socket), stopped by PID in close(). */
export async function startDocker(dir: string, image: string): Promise<Peer | undefined> {
  if (!existsSync('/usr/sbin/dockerd') || !existsSync('/usr/bin/docker')) return undefined;
  await mkdir(dir, { recursive: true });
  const sock = join(dir, 'docker.sock');
  const hadDocker0 = linkExists('docker0');
  // an empty config file: the host's /etc/docker/daemon.json, if any, must not apply
  await writeFile(join(dir, 'daemon.json'), '{}\n');
  const log = openSync(join(dir, 'dockerd.log'), 'a');
  const daemon: ChildProcess = spawn('/usr/sbin/dockerd', [
    '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${sock}`,
    '--pidfile', join(dir, 'docker.pid'), '--config-file', join(dir, 'daemon.json'),
    '--bip', '10.213.92.1/24', '--log-level', 'warn',
  ], { stdio: ['ignore', log, log] });
  const docker = (...args: string[]) => run('/usr/bin/docker', ['-H', `unix://${sock}`, ...args]);
  const stopDaemon = async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) return;
    const exited = new Promise((r) => daemon.once('exit', r));
    process.kill(daemon.pid!, 'SIGTERM');
    const t = setTimeout(() => daemon.pid && daemon.exitCode === null && process.kill(daemon.pid, 'SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };
  const cleanup = async () => {
    await stopDaemon();
    // dockerd's own containerd and any shim must be gone with it; end stragglers by PID
    for (const comm of ['containerd-shim', 'containerd']) for (const pid of findProcesses(comm, dir)) process.kill(pid, 'SIGKILL');
    await unmountAll(dir);
    if (!hadDocker0 && linkExists('docker0')) await run('ip', ['link', 'delete', 'docker0']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; ; i++) {
      if (daemon.exitCode !== null) throw new Error(`dockerd exited with ${daemon.exitCode}`);
      if (await docker('version').then(() => true, () => false)) break;
      if (i > 300) throw new Error('dockerd did not answer within 30 s');
      await sleep(100);
    }
    // 127.0.0.0/8 counts as an insecure registry by default: no daemon config needed for the loopback registry
    await docker('pull', '-q', image);
  } catch (e) {
    console.error(`bench: docker unavailable: ${(e as Error).message}`);
    await cleanup();
    return undefined;
  }
  const rmAll = async () => {
    const ids = (await docker('ps', '-aq').catch(() => '')).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids).catch((e) => console.error(`bench: docker rm: ${(e as Error).message}`));
  };
  return {
    name: 'docker',
    version: await version('/usr/bin/docker'),
    runtime: 'runc',
    async sample(i, hostPort) {
      const t0 = performance.now();
      await docker('run', '-d', '--name', `db-${i}`, '-p', `${hostPort}:80`, image, ...HTTPD);
      await waitTcp('127.0.0.1', hostPort);
      const ms = performance.now() - t0;
      await docker('rm', '-f', `db-${i}`);
      return ms;
    },
    async monitorPss(n, firstPort) {
      for (let i = 0; i < n; i++) await docker('run', '-d', '--name', `dd-${i}`, '-p', `${firstPort + i}:80`, image, ...HTTPD);
      const pids = findProcesses('containerd-shim', dir);
      const r = { monitor: 'containerd-shim-runc-v2', count: pids.length, meanPssMiB: meanPssMiB(pids) };
      await rmAll();
      return r;
    },
    async close() {
      await rmAll();
      await cleanup();
    },
  };
}
