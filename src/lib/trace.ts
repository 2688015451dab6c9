// Opt-in timing spans for profiling the create path (BERTH_TRACE=FILE): one line per span, buffered; off by default.
import { appendFile } from 'node:fs/promises';

const file = process.env.BERTH_TRACE;
let buf: string[] = [];
let timer: NodeJS.Timeout | undefined;

function flush() {
  timer = undefined;
  const lines = buf;
  buf = [];
  if (file && lines.length) void appendFile(file, lines.join('')).catch(() => undefined);
}

function record(id: string, what: string, t0: number, ms: number): void {
  buf.push(`${JSON.stringify({ id, what, start: Math.round((performance.timeOrigin + t0) * 10) / 10, ms: Math.round(ms * 100) / 100 })}\n`);
  timer ??= setTimeout(flush, 500);
  timer.unref?.();
}

/** Records that `what` of `id` took from `t0` (performance.now()) until now. */
export function traceSince(id: string, what: string, t0: number): void {
  if (file) record(id, what, t0, performance.now() - t0);
}

/** Records a measured amount (e.g. a command's CPU time) as `what` of `id`, as if it had lasted `ms` from now. */
export function traceValue(id: string, what: string, ms: number): void {
  if (file) record(id, what, performance.now(), ms);
}

/** Runs `fn`, recording its duration as `what` of `id` when tracing is on. */
export async function span<T>(id: string, what: string, fn: () => Promise<T>): Promise<T> {
  if (!file) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    traceSince(id, what, t0);
  }
}

export const tracing = !!file;
