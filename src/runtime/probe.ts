// Health probes of one container: an exec probe runs a command inside it, an httpGet probe asks its address.
import type { ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ProbeResult {
  ok: boolean;
  /** Why it failed (or what it said), short enough for an event message. */
  message: string;
}

const MAX_OUTPUT = 1024;

/**
 * Runs `start()` (a process in the container) and succeeds when it exits 0 within the timeout. On
 * timeout the process is killed through `kill` (by the PID the runtime recorded), not left behind.
 */
export function execProbe(start: () => ChildProcess, kill: () => void, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = start();
    } catch (e) {
      resolve({ ok: false, message: (e as Error).message });
      return;
    }
    let out = '';
    const take = (d: Buffer) => {
      if (out.length < MAX_OUTPUT) out += d.toString('utf8');
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.stdin?.end();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
      // runc exec exits once its process is gone; if it does not, it is ended too.
      setTimeout(() => child.kill('SIGKILL'), 1000).unref();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, message: e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const said = out.trim().slice(0, MAX_OUTPUT);
      if (timedOut) resolve({ ok: false, message: `command timed out after ${timeoutMs / 1000}s` });
      else if (code === 0) resolve({ ok: true, message: said });
      else resolve({ ok: false, message: `command exited with ${code ?? signal}${said ? `: ${said}` : ''}` });
    });
  });
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
