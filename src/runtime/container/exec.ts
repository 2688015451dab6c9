// One exec session: the berth-exec helper running `runc exec --detach`, seen as streams plus resize and kill.
import { spawn } from 'node:child_process';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { ExecHandle, ExecResult, TerminalSize } from '../types.js';

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
