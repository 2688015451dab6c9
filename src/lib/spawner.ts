// Starts berth's short-lived commands through berth-spawnd, a small C process started once: forking
// the Node.js process itself costs ~4 ms of CPU per command (its page tables are copied), which at
// a few commands per container was the largest share of berth's own CPU under load.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { traceSince, traceValue, tracing } from './trace.js';

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Set when the process could not be started at all (ENOENT, EACCES, …). */
  error?: string;
}

export interface ExecOptions {
  /** Written to the process's stdin, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Working directory (default: berth's). */
  cwd?: string;
}

/** Where scripts/build-helpers.sh puts it: dist/libexec, next to dist/src. */
export const DEFAULT_SPAWN_HELPER = fileURLToPath(new URL('../../libexec/berth-spawnd', import.meta.url));

const F_SYNC3 = 1;
const HEADER = 40; // len id status signal errno pid cpu_us out_len err_len sync_len

interface Answer {
  status: number;
  signal: number;
  errno: number;
  pid: number;
  /** CPU time of the process (and the children it waited for), microseconds. */
  cpuUs: number;
  stdout: Buffer;
  stderr: Buffer;
  sync: Buffer;
}

const signalNames = new Map(Object.entries(constants.signals).map(([k, v]) => [v as number, k]));
const errnoNames = new Map(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

class SpawnHelper {
  private child?: ChildProcess;
  private buf: Buffer = Buffer.alloc(0);
  private seq = 0;
  private readonly pending = new Map<number, (a: Answer | Error) => void>();

  constructor(private readonly path: string) {}

  private start(): ChildProcess {
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.buf = Buffer.alloc(0);
    child.stdout!.on('data', (d: Buffer) => this.onData(d));
    child.stdin!.on('error', () => undefined);
    // a helper that dies answers what it had with an error (never a hang), and is replaced on the next command
    const lost = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      for (const [id, done] of this.pending) {
        this.pending.delete(id);
        done(new Error(`berth-spawnd ${why}`));
      }
    };
    child.on('error', (e) => lost(`failed: ${e.message}`));
    // 'close', not 'exit': every answer it wrote before dying has been read by then
    child.on('close', (code, signal) => lost(`exited with ${signal ?? code}`));
    this.idle(child);
    return child;
  }

  /** Keeps the process alive only while answers are awaited. */
  private idle(child: ChildProcess) {
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
  }

  private onData(d: Buffer) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32LE(0);
      if (this.buf.length < 4 + len) break;
      const b = this.buf;
      const [id, status, signal, errno, pid, cpuUs, outLen, errLen, syncLen] = [4, 8, 12, 16, 20, 24, 28, 32, 36].map((o, i) => (i === 1 ? b.readInt32LE(o) : b.readUInt32LE(o)));
      let o = HEADER;
      const take = (n: number) => b.subarray(o, (o += n));
      const a: Answer = { status, signal, errno, pid, cpuUs, stdout: take(outLen), stderr: take(errLen), sync: take(syncLen) };
      this.buf = b.subarray(4 + len);
      const done = this.pending.get(id);
      this.pending.delete(id);
      done?.(a);
      if (this.pending.size === 0 && this.child) this.idle(this.child);
    }
  }

  run(file: string, args: string[], opts: ExecOptions, flags = 0): Promise<Answer> {
    const child = this.child ?? this.start();
    const id = (this.seq = (this.seq + 1) >>> 0);
    const env = Object.entries(opts.env ?? process.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    const all = [opts.cwd ?? '', file, ...args, ...env];
    // strings travel NUL-terminated (as execve takes them): one with a NUL inside cannot be passed
    if (all.some((x) => x.includes('\0'))) return Promise.reject(new Error(`a command line or environment of ${file} contains a NUL byte`));
    const strings = Buffer.from(all.map((x) => `${x}\0`).join(''));
    const input = Buffer.from(opts.input ?? '');
    const head = Buffer.alloc(28);
    [strings.length + input.length + 24, id, flags, Math.max(0, Math.round(opts.timeoutMs ?? 30_000)), 1 + args.length, env.length, input.length]
      .forEach((v, i) => head.writeUInt32LE(v, i * 4));
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, (a) => (a instanceof Error ? reject(a) : resolve(a)));
      child.ref();
      (child.stdout as unknown as { ref?: () => void }).ref?.();
      child.stdin!.write(Buffer.concat([head, strings, input]));
    });
  }
}

let helper: SpawnHelper | undefined;

/** The helper, started on first use; without it (not built) berth can run no command at all. */
function theHelper(): SpawnHelper {
  if (helper) return helper;
  if (!existsSync(DEFAULT_SPAWN_HELPER)) throw new Error(`${DEFAULT_SPAWN_HELPER} is missing: run scripts/build-helpers.sh (npm run build does)`);
  return (helper = new SpawnHelper(DEFAULT_SPAWN_HELPER));
}

/** A command's name in traces: the program (or built-in), with the subcommand for ip and the OCI runtimes, and the command of CNI plugins. */
function commandName(file: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const prog = basename(file);
  if (env?.CNI_COMMAND) return `${prog}.${env.CNI_COMMAND}`;
  if (prog === 'runc' || prog === 'crun') return `${prog}.${args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '--root') ?? ''}`;
  if (prog === 'ip') return `${prog}.${args[0] ?? ''}`;
  return prog;
}

function toResult(file: string, a: Answer): ExecResult {
  return {
    code: a.errno || a.signal ? null : a.status,
    signal: a.signal ? (signalNames.get(a.signal) ?? String(a.signal)) : null,
    stdout: a.stdout.toString(),
    stderr: a.stderr.toString(),
    error: a.errno ? `spawn ${file} ${errnoNames.get(a.errno) ?? `errno ${a.errno}`}` : undefined,
  };
}

/**
 * execFile's contract: resolves with stdout and stderr when the command exits 0, else rejects with
 * an Error carrying `stderr`, `code` and `signal`.
 */
export async function runCommand(file: string, args: string[], opts: ExecOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await execCommand(file, args, opts);
  if (r.code === 0 && !r.error) return { stdout: r.stdout, stderr: r.stderr };
  const why = r.error ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
  throw Object.assign(new Error(`Command failed: ${file} ${args.join(' ')}: ${why}\n${r.stderr}`), { stderr: r.stderr, code: r.code, signal: r.signal });
}

/**
 * Runs `file args` through berth-spawnd to completion and resolves with its outcome (it never
 * rejects: callers look at `code`, `error`). A timeout kills it with SIGKILL. berth-spawnd's
 * built-ins (`@mount`, `@umount`, `@loop-mount`, `@netns-add`, `@netns-del`) are run the same way.
 */
export async function execCommand(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  try {
    const t0 = performance.now();
    const a = await theHelper().run(file, args, opts);
    // BERTH_TRACE: each command's wall time (cmd.) and CPU time (cpu.), by program
    if (tracing) {
      const name = commandName(file, args, opts.env);
      traceSince(String(a.pid), `cmd.${name}`, t0);
      traceValue(String(a.pid), `cpu.${name}`, a.cpuUs / 1000);
    }
    return toResult(file, a);
  } catch (e) {
    return { code: null, signal: null, stdout: '', stderr: '', error: (e as Error).message };
  }
}

/**
 * Starts a process that outlives the call (conmon) in its own session with its stdio on /dev/null
 * and a pipe as fd 3; resolves with the first line it writes there (or all it wrote before closing
 * it). The process is never waited for.
 */
export async function spawnWithSyncPipe(file: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd: string }): Promise<{ line: string; error?: string }> {
  try {
    const a = await theHelper().run(file, args, { env: opts.env, cwd: opts.cwd, timeoutMs: 0 }, F_SYNC3);
    if (a.errno) return { line: '', error: toResult(file, a).error };
    return { line: a.sync.toString().split('\n')[0] };
  } catch (e) {
    return { line: '', error: (e as Error).message };
  }
}
