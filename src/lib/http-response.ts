// Reading a peer's HTTP answers on berth's own wires (the agent API, an agent's own API): whole bodies, refusals as the BerthError the peer sent, NDJSON streams line by line.
import type { IncomingMessage } from 'node:http';
import { errorFromWire, type BerthError } from './errors.js';

export function readAll(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}

/** The BerthError a refusal's body carries (`{error: WireError}`); `what` names the peer when it carries none. */
export function refusalOf(status: number, body: Buffer, what: string): BerthError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    parsed = undefined;
  }
  return errorFromWire(parsed, status, what);
}

/** Calls `onLine` with each JSON line of an NDJSON stream as it arrives (a line split across chunks is joined first). */
export function onJsonLines(res: IncomingMessage, onLine: (message: unknown) => void) {
  let rest = '';
  res.setEncoding('utf8');
  res.on('data', (s: string) => {
    const lines = (rest + s).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line) onLine(JSON.parse(line));
  });
}
