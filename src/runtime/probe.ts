// Health probes of one container: an exec probe runs a command inside it, an httpGet probe asks its address.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ExecHandle } from './types.js';

export interface ProbeResult {
  ok: boolean;
  /** Why it failed (or what it said), short enough for an event message. */
  message: string;
}

const MAX_OUTPUT = 1024;

/**
 * Runs `start()` (a process in the container) and succeeds when it exits 0 within the timeout. On
 * timeout the exec session is killed (the process and everything it started), not left behind.
 */
export async function execProbe(start: () => Promise<ExecHandle>, timeoutMs: number): Promise<ProbeResult> {
  let proc: ExecHandle;
  try {
    proc = await start();
  } catch (e) {
    return { ok: false, message: (e as Error).message };
  }
  let out = '';
  const take = (d: Buffer) => {
    if (out.length < MAX_OUTPUT) out += d.toString('utf8');
  };
  proc.stdout.on('data', take);
  proc.stderr.on('data', take);
  proc.stdin.end();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill();
  }, timeoutMs);
  const r = await proc.done;
  clearTimeout(timer);
  const said = out.trim().slice(0, MAX_OUTPUT);
  if (timedOut) return { ok: false, message: `command timed out after ${timeoutMs / 1000}s` };
  if (r.error !== undefined) return { ok: false, message: r.error };
  if (r.exitCode === 0) return { ok: true, message: said };
  return { ok: false, message: `command exited with ${r.exitCode}${said ? `: ${said}` : ''}` };
}

export interface HttpProbeTarget {
  host: string;
  port: number;
  path: string;
  scheme: 'http' | 'https';
  headers: { name: string; value: string }[];
  timeoutMs: number;
}

/** As Kubernetes' httpGet probe: 200-399 is healthy, redirects are not followed, certificates are not checked. */
export function httpProbe(t: HttpProbeTarget): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'berth-probe/1', accept: '*/*' };
    for (const h of t.headers) headers[h.name.toLowerCase()] = h.value;
    const opts = { host: t.host, port: t.port, path: t.path, method: 'GET', headers, timeout: t.timeoutMs, agent: false };
    const req = t.scheme === 'https' ? httpsRequest({ ...opts, rejectUnauthorized: false }) : httpRequest(opts);
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      req.destroy();
      resolve(r);
    };
    req.on('response', (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      finish(code >= 200 && code < 400 ? { ok: true, message: `HTTP ${code}` } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
    });
    req.on('timeout', () => finish({ ok: false, message: `Get "${t.scheme}://${t.host}:${t.port}${t.path}": timed out after ${t.timeoutMs / 1000}s` }));
    req.on('error', (e) => finish({ ok: false, message: `Get "${t.scheme}://${t.host}:${t.port}${t.path}": ${e.message}` }));
    req.end();
  });
}
