// Exec and attach WebSocket sessions: ACI's wire protocol (plus berth's documented extensions) over the service.
//
// Both: the client proves itself with the session's password, as the first text frame (what az and
// ACI's exec clients send) or as the upgrade request's Authorization header (ACI's attach).
// exec, client -> berth: binary frames are the process's input (az sends keystrokes so; a text
//   frame is input too: az on Windows sends Ctrl-C as one); an empty frame is end of input.
//   Extension: a text frame holding exactly {"resize":{"rows":R,"cols":C}} resizes the terminal.
// exec, berth -> client: binary frames of output (with a terminal, everything it shows; without,
//   stdout and stderr interleaved); then close 1000 "exit N" with the exit code, or 4000 and the
//   reason when the process could not start.
// attach, berth -> client: the container's output from now on, as it is written; close 1000
//   "container exited" when it ends.
import type { WebSocket } from 'ws';
import type { ExecHandle, TerminalSize } from '../agent/types.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { GroupRef } from './actions.js';
import type { InstancesService } from './service.js';

export interface StreamSession {
  kind: 'exec' | 'attach';
  password: string;
  ref: GroupRef;
  container: string;
  argv: string[];
  /** exec: run under a terminal of this size (0 x 0: unknown). */
  tty?: TerminalSize;
  expires: number;
}

/** A close reason must fit in 123 bytes of UTF-8. */
const closeReason = (s: string) => {
  let r = s;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
};

/** Sends a stream's chunks as binary frames, pausing it while the socket has too much queued. */
function pipeToSocket(stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, ws: WebSocket) {
  stream.on('data', (b: Buffer) => {
    ws.send(b, () => {
      if (ws.bufferedAmount < 256 << 10) stream.resume();
    });
    if (ws.bufferedAmount >= 1 << 20) stream.pause();
  });
}

/** Calls start() once the password is right; frames that arrive meanwhile are kept for onFrame. */
function afterPassword(ws: WebSocket, s: StreamSession, preauthorized: boolean, start: () => Promise<void>, onFrame: (b: Buffer, isBinary: boolean) => void) {
  let stage: 'auth' | 'starting' | 'running' = preauthorized ? 'starting' : 'auth';
  const early: [Buffer, boolean][] = [];
  const begin = async () => {
    stage = 'starting';
    try {
      await start();
    } catch (e) {
      return ws.close(4000, closeReason((e as Error).message));
    }
    for (const [b, bin] of early) onFrame(b, bin);
    stage = 'running';
  };
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    if (stage === 'running') return onFrame(buf, isBinary);
    if (stage === 'starting') return void early.push([buf, isBinary]);
    if (isBinary || buf.toString() !== s.password) return ws.close(4001, 'invalid password');
    void begin();
  });
  if (preauthorized) void begin();
}

/** A resize message of berth's extension, or undefined for anything else (then it is input). */
function resizeMessage(b: Buffer): TerminalSize | undefined {
  if (b.length > 200 || b[0] !== 0x7b) return undefined; // '{'
  try {
    const m = JSON.parse(b.toString()) as { resize?: { rows?: unknown; cols?: unknown } };
    const r = m && typeof m === 'object' && Object.keys(m).length === 1 ? m.resize : undefined;
    if (r && Number.isInteger(r.rows) && Number.isInteger(r.cols)) return { rows: r.rows as number, cols: r.cols as number };
  } catch {
    /* not JSON: input */
  }
  return undefined;
}

export function runExec(ws: WebSocket, s: StreamSession, service: InstancesService, preauthorized: boolean) {
  let proc: ExecHandle | undefined;
  let closed = false;
  ws.on('close', () => {
    closed = true;
    proc?.kill(); // the client is gone: so is everything it started
  });
  afterPassword(ws, s, preauthorized, async () => {
    proc = await service.exec(s.ref, s.container, s.argv, s.tty ? { tty: s.tty } : {});
    if (closed) return proc.kill();
    pipeToSocket(proc.stdout, ws);
    pipeToSocket(proc.stderr, ws);
    void proc.done.then((r) => {
      if (r.error !== undefined) ws.close(4000, closeReason(`exec failed: ${r.error}`));
      else ws.close(1000, `exit ${r.exitCode}`);
    });
  }, (b, isBinary) => {
    if (!proc) return;
    if (b.length === 0) return void proc.stdin.end();
    const size = isBinary ? undefined : resizeMessage(b);
    if (size) proc.resize(size);
    else if (proc.stdin.writable) proc.stdin.write(b);
  });
}

export function runAttach(ws: WebSocket, s: StreamSession, service: InstancesService, preauthorized: boolean) {
  const ac = new AbortController();
  ws.on('close', () => ac.abort());
  afterPassword(ws, s, preauthorized, async () => {
    void service.followLogs(s.ref, s.container, { tail: 0 }, (text) => ws.send(Buffer.from(text)), ac.signal)
      .then(() => ws.close(1000, 'container exited'), (e: Error) => ws.close(4000, closeReason(e.message)));
  }, () => {});
}
