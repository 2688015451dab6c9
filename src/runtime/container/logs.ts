// Container logs as conmon writes them (k8s-file: a record per line, partial lines joined): read up to a point, or followed as they grow.
import { createReadStream, watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { LogOptions } from '../types.js';

/** One k8s-file line: `TIMESTAMP stdout|stderr F|P text`. */
interface LogRecord {
  ts: string;
  stream: string;
  partial: boolean;
  text: string;
}

function parseLogLine(line: string): LogRecord | undefined {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  const c = line.indexOf(' ', b + 1);
  if (a < 0 || b < 0) return undefined;
  const tag = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  return { ts: line.slice(0, a), stream: line.slice(a + 1, b), partial: tag === 'P', text: c < 0 ? '' : line.slice(c + 1) };
}

/** Joins partial records into the lines the process wrote; stdout and stderr are assembled apart. */
class LogAssembler {
  private pending = new Map<string, { ts: string; text: string }>();
  push(rec: LogRecord, out: { ts: string; text: string }[]): void {
    let cur = this.pending.get(rec.stream);
    if (cur) cur.text += rec.text;
    else cur = { ts: rec.ts, text: rec.text };
    if (rec.partial) this.pending.set(rec.stream, cur);
    else {
      this.pending.delete(rec.stream);
      out.push(cur);
    }
  }
  flush(out: { ts: string; text: string }[]): void {
    out.push(...this.pending.values());
    this.pending.clear();
  }
}

const formatLines = (lines: { ts: string; text: string }[], timestamps?: boolean) =>
  lines.map((l) => (timestamps ? `${l.ts} ${l.text}\n` : `${l.text}\n`)).join('');

/**
 * Emits the existing log (honouring tail), then new lines as conmon writes them, until the signal
 * aborts or the container's monitor is gone (`monitorAlive`) and the file is drained.
 */
export async function followLogFile(path: string, opts: LogOptions, onChunk: (text: string) => void, signal: AbortSignal, monitorAlive: () => boolean): Promise<void> {
  let offset = 0;
  try {
    offset = (await stat(path)).size;
  } catch {
    /* not written yet */
  }
  // the initial part is read up to `offset` exactly, so nothing is emitted twice
  const initial = await readLogFile(path, offset, opts);
  if (initial) onChunk(initial);
  if (signal.aborted) return;

  const asm = new LogAssembler();
  let carry = '';
  const drain = async () => {
    let fh;
    try {
      fh = await open(path, 'r');
    } catch {
      return;
    }
    try {
      for (;;) {
        const buf = Buffer.alloc(64 * 1024);
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        carry += buf.subarray(0, bytesRead).toString('utf8');
        const nl = carry.lastIndexOf('\n');
        if (nl < 0) continue;
        const complete = carry.slice(0, nl);
        carry = carry.slice(nl + 1);
        const out: { ts: string; text: string }[] = [];
        for (const raw of complete.split('\n')) {
          const rec = raw ? parseLogLine(raw) : undefined;
          if (rec) asm.push(rec, out);
        }
        if (out.length) onChunk(formatLines(out, opts.timestamps));
      }
    } finally {
      await fh.close();
    }
  };

  await new Promise<void>((resolve) => {
    let watcher: FSWatcher | undefined;
    let busy = false;
    let again = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      watcher?.close();
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const tick = async (checkExit: boolean) => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          await drain();
        } while (again);
        if (checkExit && !monitorAlive()) {
          await drain();
          const out: { ts: string; text: string }[] = [];
          asm.flush(out);
          if (out.length) onChunk(formatLines(out, opts.timestamps));
          finish();
        }
      } finally {
        busy = false;
      }
    };
    try {
      watcher = watch(path, () => void tick(false));
    } catch {
      /* file may not exist yet: the timer covers it */
    }
    // the watcher can miss events (and cannot see the file appear); poll as a backstop
    const timer = setInterval(() => void tick(true), 250);
    signal.addEventListener('abort', finish);
    if (signal.aborted) finish();
  });
}

/** The log's records up to byte `end`, as the lines the process wrote (the last `tail` of them, when asked). */
export async function readLogFile(path: string, end: number, opts: LogOptions): Promise<string> {
  if (end === 0) return '';
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    createReadStream(path, { start: 0, end: end - 1 })
      .on('data', (c) => chunks.push(c as Buffer))
      .on('end', resolve)
      .on('error', reject);
  });
  const lines: { ts: string; text: string }[] = [];
  const asm = new LogAssembler();
  for (const raw of Buffer.concat(chunks).toString('utf8').split('\n')) {
    const rec = raw ? parseLogLine(raw) : undefined;
    if (rec) asm.push(rec, lines);
  }
  asm.flush(lines);
  const selected = opts.tail !== undefined && opts.tail >= 0 ? lines.slice(Math.max(0, lines.length - opts.tail)) : lines;
  return formatLines(selected, opts.timestamps);
}
