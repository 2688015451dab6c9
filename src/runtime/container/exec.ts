// One exec session: the berth-exec helper running `runc exec --detach` with the container's process settings, seen as streams plus resize and kill.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BerthError, Codes } from '../../lib/errors.js';
import type { ExecHandle, ExecOptions, ExecResult, TerminalSize } from '../types.js';
import type { OciRuntimeCli } from './oci-runtime.js';

/** Where scripts/build-helpers.sh puts berth-exec: dist/libexec, next to dist/src. */
const EXEC_HELPER = fileURLToPath(new URL('../../../libexec/berth-exec', import.meta.url));

/** How long a killed session may take to end before its helper is killed outright. */
const KILL_GRACE_MS = 10_000;

export class ExecProcess implements ExecHandle {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly done: Promise<ExecResult>;
  /** The helper's PID (it owns the session: ending it ends the process). */
  readonly helperPid: number | undefined;
  /** The exec'd process on the host, once it runs. */
  pid?: number;
  private readonly ctl: Duplex;
  private killTimer?: NodeJS.Timeout;
  private ended = false;

  /**
   * `args` are berth-exec's (see berth-exec.c); `cleanup` runs once the helper is gone.
   * stdin, stdout and stderr are the process's; with a tty, stderr carries only the runtime's own messages.
   */
  constructor(helper: string, args: string[], readonly tty: boolean, cleanup: () => Promise<void>) {
    const child = spawn(helper, args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    this.helperPid = child.pid;
    this.stdin = child.stdin!;
    this.stdout = child.stdout!;
    this.stderr = child.stderr!;
    this.ctl = child.stdio[3] as Duplex;
    // Writes after the helper is gone fail with EPIPE; the result says what happened.
    this.stdin.on('error', () => {});
    this.ctl.on('error', () => {});
    let result: ExecResult | undefined;
    let buf = '';
    this.ctl.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [word, ...rest] = line.split(' ');
        if (word === 'pid') this.pid = Number(rest[0]);
        else if (word === 'exit') result = { exitCode: Number(rest[0]) };
        else if (word === 'error') result = { error: runtimeReason(rest.join(' ')) };
      }
    });
    this.done = new Promise((resolve) => {
      let spawnError: Error | undefined;
      child.once('error', (e) => (spawnError = e));
      child.once('close', (code, signal) => {
        this.ended = true;
        clearTimeout(this.killTimer);
        void cleanup().catch(() => {}).then(() =>
          resolve(result ?? { error: spawnError ? `starting ${helper}: ${spawnError.message}` : `exec helper ended (${signal ?? `exit ${code}`}) without a result` }));
      });
    });
  }

  resize(size: TerminalSize): void {
    if (!this.tty || this.ended) return;
    const rows = Math.trunc(size.rows);
    const cols = Math.trunc(size.cols);
    if (rows > 0 && cols > 0 && rows <= 0xffff && cols <= 0xffff) this.ctl.write(`resize ${rows} ${cols}\n`);
  }

  /** Ends the session: the helper kills the process and everything in its session, then exits. */
  kill(): void {
    if (this.ended || this.killTimer) return;
    this.ctl.end();
    this.killTimer = setTimeout(() => {
      try {
        if (!this.ended && this.helperPid) process.kill(this.helperPid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }, KILL_GRACE_MS);
    this.killTimer.unref();
  }
}

/**
 * The reason in the OCI runtime's error output: runc's `time=… level=error msg="exec failed: …"`,
 * crun's `[colour]2024-…Z: executable file `x` not found…`; berth-exec appends the exit status.
 */
function runtimeReason(line: string): string {
  let text = line.replace(/\x1b\[[0-9;]*m/g, '').replace(/ \(exit status -?\d+\)$/, '').trim();
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(text);
  if (m) {
    try {
      text = JSON.parse(`"${m[1]}"`);
    } catch {
      text = m[1].replace(/\\(.)/g, '$1');
    }
  }
  return text
    .replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z: /, '')
    .replace(/^exec failed: /, '')
    .replace(/^unable to start container process: /, '');
}

/**
 * Runs a process in running container `id` whose OCI config is at `configPath`, with the
 * container's process settings (user, env, capabilities, …) and, when asked, a pseudo-terminal.
 * It runs in its own session; berth-exec reaps it, and kill() (or the end of this process) kills
 * the whole session.
 */
export async function startExec(oci: OciRuntimeCli, configPath: string, id: string, argv: string[], opts: ExecOptions = {}): Promise<ExecProcess> {
  if (argv.length === 0) throw new BerthError(Codes.RuntimeError, 'exec needs a command');
  const helper = EXEC_HELPER;
  if (!existsSync(helper)) throw new BerthError(Codes.RuntimeError, `exec helper ${helper} is missing: run scripts/build-helpers.sh`);
  let base: Record<string, unknown> & { env?: string[] };
  try {
    base = JSON.parse(await readFile(configPath, 'utf8')).process;
  } catch {
    throw new BerthError(Codes.ContainerNotFound, `container ${id} not found`, 404);
  }
  const tty = opts.tty;
  const proc: Record<string, unknown> = {
    ...base,
    args: argv,
    terminal: !!tty,
    env: [...(base.env ?? []), ...(opts.env ?? [])],
    ...(opts.cwd && { cwd: opts.cwd }),
  };
  delete proc.consoleSize;
  // The size is set before the process runs, so its first look at the terminal sees it.
  if (tty && tty.rows > 0 && tty.cols > 0) proc.consoleSize = { height: tty.rows, width: tty.cols };
  // A short private path: the console socket's must fit in sun_path.
  const dir = await mkdtemp(join(tmpdir(), 'berth-exec-'));
  const paths = { process: join(dir, 'process.json'), pid: join(dir, 'pid'), console: join(dir, 'console.sock') };
  await writeFile(paths.process, JSON.stringify(proc), { mode: 0o600 });
  const runtimeArgs = oci.args('exec', '--detach', '--pid-file', paths.pid,
    ...(tty ? ['--console-socket', paths.console] : []), '--process', paths.process, id);
  // berth-exec removes the spec (it holds the container's secrets) as soon as the runtime has read it, even if berth dies.
  return new ExecProcess(helper, [...(tty ? ['--console-socket', paths.console] : []), '--pid-file', paths.pid, '--cleanup', paths.process, '--', oci.binFor(id), ...runtimeArgs],
    !!tty, () => rm(dir, { recursive: true, force: true }));
}
