// Requests sent exactly as written: the request target is not parsed, resolved or re-encoded on the way (unlike fetch).
import { Agent, request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Keep-alive connections to one server, for thousands of small requests. */
export const rawAgent = () => new Agent({ keepAlive: true, maxSockets: 8 });

/**
 * Sends `method target` to the server at `base` (http://host:port), with `target` as the request line's
 * target verbatim: percent-escapes, dot segments, doubled slashes and absolute-form stay as given.
 */
export function rawRequest(base: string, method: string, target: string, o: { token?: string; body?: string; headers?: Record<string, string>; agent?: Agent } = {}): Promise<RawResponse> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname, port: u.port, method, path: target, agent: o.agent,
      headers: {
        ...(o.token && { authorization: `Bearer ${o.token}` }),
        ...(o.body !== undefined && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(o.body)) }),
        ...o.headers,
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${target.slice(0, 100)}: no answer in 30 s`)));
    req.end(o.body);
  });
}

/** The ARM error envelope of a response, or undefined when the body is not one. */
export function armError(r: RawResponse): { code: string; message: string } | undefined {
  try {
    const e = (JSON.parse(r.text) as { error?: { code?: unknown; message?: unknown } }).error;
    return e && typeof e.code === 'string' && typeof e.message === 'string' ? { code: e.code, message: e.message } : undefined;
  } catch {
    return undefined;
  }
}
