// Runs short-lived commands from worker threads: starting a process blocks its thread for ~3 ms (fork + exec), which must not be the event loop's.
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

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
}

interface Request {
  id: number;
  file: string;
  args: string[];
  opts: ExecOptions;
}

// The worker's code: execFile per request, answers with the outcome. Kept as a string so the
// module works from the TypeScript output and from tests alike.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { execFile } = require('node:child_process');
parentPort.on('message', (r) => {
  const child = execFile(r.file, r.args, { env: r.opts.env, timeout: r.opts.timeoutMs ?? 30000, maxBuffer: 64 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
    const start = err && typeof err.code === 'string' ? err.message : undefined;
    parentPort.postMessage({ id: r.id, code: err ? (typeof err.code === 'number' ? err.code : null) : 0, signal: err?.signal ?? null, stdout: String(stdout), stderr: String(stderr), error: start });
  });
  child.stdin?.on('error', () => undefined);
  if (r.opts.input !== undefined) child.stdin.end(r.opts.input);
  else child.stdin?.end();
});
`;

class Spawner {
  private workers: Worker[] = [];
  private next = 0;
  private seq = 0;
  private pending = new Map<number, { worker: Worker; done: (r: ExecResult) => void }>();
  private busy = new Map<Worker, number>();

  private pick(): Worker {
    if (this.workers.length < Math.min(2, availableParallelism())) {
      const w = new Worker(WORKER, { eval: true });
      w.unref();
      w.on('message', (m: ExecResult & { id: number }) => {
        this.busy.set(w, (this.busy.get(w) ?? 1) - 1);
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.done(m);
      });
      // a worker that dies answers what it had with an error (never a hang), and is replaced
      const lost = (why: string) => {
        this.workers = this.workers.filter((x) => x !== w);
        this.busy.delete(w);
        for (const [id, p] of this.pending) {
          if (p.worker !== w) continue;
          this.pending.delete(id);
          p.done({ code: null, signal: null, stdout: '', stderr: '', error: `spawner worker: ${why}` });
        }
      };
      w.on('error', (e) => {
        console.error(`spawner: worker failed: ${e.message}`);
        lost(e.message);
      });
      w.on('exit', (code) => lost(`exited with ${code}`));
      this.workers.push(w);
      this.busy.set(w, 0);
      return w;
    }
    // the least busy worker (round robin among equals)
    let best = this.workers[this.next++ % this.workers.length];
    for (const w of this.workers) if ((this.busy.get(w) ?? 0) < (this.busy.get(best) ?? 0)) best = w;
    return best;
  }

  run(file: string, args: string[], opts: ExecOptions): Promise<ExecResult> {
    const id = ++this.seq;
    const w = this.pick();
    this.busy.set(w, (this.busy.get(w) ?? 0) + 1);
    return new Promise((resolve) => {
      this.pending.set(id, { worker: w, done: resolve });
      // while a message is pending the worker must keep the process alive
      w.ref();
      const req: Request = { id, file, args, opts: { ...opts, env: opts.env ?? process.env } };
      w.postMessage(req);
    }).finally(() => {
      if ((this.busy.get(w) ?? 0) === 0) w.unref();
    }) as Promise<ExecResult>;
  }
}

let spawner: Spawner | undefined;

/**
 * execFile's contract off the event loop: resolves with stdout and stderr when the command exits
 * 0, else rejects with an Error carrying `stderr`, `code` and `signal`.
 */
export async function runOffThread(file: string, args: string[], opts: ExecOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await execOffThread(file, args, opts);
  if (r.code === 0 && !r.error) return { stdout: r.stdout, stderr: r.stderr };
  const why = r.error ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.code}`);
  throw Object.assign(new Error(`Command failed: ${file} ${args.join(' ')}: ${why}\n${r.stderr}`), { stderr: r.stderr, code: r.code, signal: r.signal });
}

/**
 * Runs `file args` to completion off the event loop and resolves with its outcome (it never
 * rejects: callers look at `code`, `error`). BERTH_SPAWN_INLINE=1 runs it on the calling thread.
 */
export function execOffThread(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (process.env.BERTH_SPAWN_INLINE === '1') {
    return new Promise((resolve) => {
      const child = execFile(file, args, { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr), error: e && typeof e.code === 'string' ? e.message : undefined });
      });
      child.stdin?.on('error', () => undefined);
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      else child.stdin?.end();
    });
  }
  spawner ??= new Spawner();
  return spawner.run(file, args, opts);
}
