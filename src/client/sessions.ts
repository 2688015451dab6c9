// Exec and attach sessions: ACI's WebSocket protocol (and berth's documented extensions) behind one typed object.
//
// The client proves itself with the session's password: as the first text frame (what az sends for
// exec) or as the upgrade's Authorization header (what ACI documents for attach). Binary frames to
// the endpoint are the process's input, an empty one is its end; a text frame
// {"resize":{"rows","cols"}} resizes its terminal (berth's extension). Frames from the endpoint are
// output; the close says how it ended: 1000 "exit N" (berth: the exit code), 1000 otherwise (ACI,
// and attach's "container exited"), or another code with the reason it failed (4000: the process
// could not start).
import type WebSocket from 'ws';
import { Codes } from '../lib/errors.js';
import { ArmError, unreachable } from './errors.js';
import type { StreamEndpoint, TerminalSize } from './models.js';
import type { Transport } from './transport.js';

export interface SessionEnd {
  /** The command's exit code, when the endpoint says it (berth does; 128 + signal for a signal). */
  exitCode?: number;
  /** The close reason as sent. */
  reason: string;
}

export interface SessionOptions {
  /** Output as it arrives (with a terminal, everything it shows; without, stdout and stderr interleaved). */
  onOutput: (data: Buffer) => void;
  /** How the password travels: ACI's exec clients send it as the first frame, its attach as a header. */
  passwordIn: 'frame' | 'header';
}

export class StreamSession {
  /** Resolves when the endpoint ends the session normally; rejects (SessionFailed, ServiceUnreachable) otherwise. */
  readonly ended: Promise<SessionEnd>;

  private constructor(private readonly ws: WebSocket, onOutput: (data: Buffer) => void) {
    let error: Error | undefined;
    ws.on('message', (d) => onOutput(Buffer.isBuffer(d) ? d : Buffer.from(d as ArrayBuffer)));
    ws.on('error', (e) => (error ??= e));
    this.ended = new Promise<SessionEnd>((resolve, reject) => {
      ws.once('close', (code, reasonBuf) => {
        const reason = reasonBuf.toString();
        const exit = /^exit (-?\d+)$/.exec(reason);
        if (code === 1000 || code === 1005) return resolve({ reason, ...(exit && { exitCode: Number(exit[1]) }) });
        if (error && code === 1006) return reject(unreachable(ws.url, error));
        reject(new ArmError(Codes.SessionFailed, reason || `the session closed with code ${code}`, code === 4000 ? 400 : 502));
      });
    });
    // A caller that never asks how it ended must not see an unhandled rejection.
    this.ended.catch(() => undefined);
  }

  /** Opens the session's WebSocket and proves it; resolves once input can be sent. */
  static open(http: Transport, endpoint: StreamEndpoint, o: SessionOptions): Promise<StreamSession> {
    const ws = http.webSocket(endpoint.webSocketUri, o.passwordIn === 'header' ? { authorization: endpoint.password } : {});
    return new Promise<StreamSession>((resolve, reject) => {
      const failed = (e: Error) => reject(unreachable(endpoint.webSocketUri, e));
      ws.once('error', failed);
      ws.once('open', () => {
        ws.off('error', failed);
        if (o.passwordIn === 'frame') ws.send(endpoint.password);
        resolve(new StreamSession(ws, o.onOutput));
      });
    });
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Input for the process (binary frames, as az sends keystrokes). */
  write(data: Buffer | Uint8Array | string) {
    if (this.open) this.ws.send(typeof data === 'string' ? Buffer.from(data) : data, { binary: true });
  }

  /** The end of input (with a terminal: the terminal's EOF character, once). */
  endInput() {
    if (this.open) this.ws.send(Buffer.alloc(0), { binary: true });
  }

  /** berth's resize extension; other endpoints ignore or refuse it. */
  resize(size: TerminalSize) {
    if (this.open) this.ws.send(JSON.stringify({ resize: { rows: size.rows, cols: size.cols } }));
  }

  /** Goes away: berth then kills the process and everything its session started. */
  close() {
    this.ws.close(1000);
  }
}
