// Test helper: a real etcd server (Debian's etcd-server, or the binary in $BERTH_ETCD) on free loopback ports, ended by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface TestEtcd {
  /** "127.0.0.1:PORT" (client URL without the scheme) */
  endpoint: string;
  binary: string;
  pid(): number;
  /** kill -9, then start again on the same ports and data: every client connection breaks. */
  restart(): Promise<void>;
  /** kill -9 only (start() brings it back). */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const etcdBinary = () => process.env.BERTH_ETCD || '/usr/bin/etcd';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/**
 * Starts etcd with its data under `parent` (default /dev/shm: tests need a real server, not fsync
 * latency; pass a disk directory to measure that). stop() ends it by PID and removes its data.
 */
export async function startEtcd(opts: { parent?: string } = {}): Promise<TestEtcd> {
  const dir = await mkdtemp(join(opts.parent ?? '/dev/shm', 'berth-etcd-'));
  const binary = etcdBinary();
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'berth-test', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `berth-test=${peer}`, '--initial-cluster-token', `berth-test-${clientPort}`,
  ];
  const logFile = join(dir, 'etcd.log');
  let child: ChildProcess;

  const launch = async () => {
    const log = openSync(logFile, 'a');
    child = spawn(binary, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    const deadline = Date.now() + 30_000;
    while (!(await healthy(clientPort))) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        throw new Error(`etcd (${binary}) did not become healthy on ${client}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const done = exited(child);
    process.kill(child.pid, signal);
    const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  };

  // A test file that fails to stop it (its runner ended it early) still takes its etcd along when it exits.
  const onExit = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGKILL');
  process.once('exit', onExit);
  try {
    await launch();
  } catch (e) {
    process.off('exit', onExit);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    binary,
    pid: () => child.pid!,
    async restart() {
      await kill('SIGKILL');
      await launch();
    },
    kill: () => kill('SIGKILL'),
    start: launch,
    async stop() {
      process.off('exit', onExit);
      await kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
