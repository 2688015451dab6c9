// The wire of an agent's own HTTPS API (logs, follow, exec, a group's usage, cached images, the host's own ports): paths, token claims and frames, shared by its server and its client.
//
// Every request carries `Authorization: Bearer T`, T a token the control plane signed (lib/signed-token)
// naming this host, the operation, and for a container its group and name; it lives a minute.
//   GET  /v1/images                                   -> 200 JSON string[]
//   GET  /v1/ports?unavailable=TCP/80,UDP/53          -> 200 JSON PublishedPort[]: those of them the host keeps
//   GET  /v1/groups/{uid}/containers/{c}/logs?tail=&timestamps=&previous=   -> 200 text
//   GET  /v1/groups/{uid}/containers/{c}/logs?follow=true&…                 -> 200 NDJSON: {"chunk":s}… then {"end":true} or {"error":WireError}
//   GET  /v1/groups/{uid}/containers/{c}/exec?spec=JSON (WebSocket upgrade) -> the process; see Frame
//   GET  /v1/groups/{uid}/usage?since=MS             -> 200 JSON GroupUsage[]: the readings taken at or after MS
// Refusals are `{"error": WireError}` with the error's status (lib/errors: the same BerthError on the other side).
import type { PublishedPort } from './spec.js';
import type { ExecOptions } from './types.js';

export type DataPlaneOp = 'logs' | 'exec' | 'usage' | 'images' | 'ports';

/** What a data-plane token allows: one operation on one host (for usage, of one group; for logs and exec, one container of one group). */
export interface DataPlaneClaims {
  host: string;
  op: DataPlaneOp;
  uid?: string;
  container?: string;
}

/** A data-plane token's lifetime: long enough for a slow start of a call, short enough to be useless when stolen. */
export const DATA_PLANE_TOKEN_TTL_S = 60;

/** What an exec runs, as the `spec` query parameter. */
export interface ExecRequest {
  argv: string[];
  opts: ExecOptions;
}

/** Binary frames start with their channel: the process's input (client to agent), its stdout and stderr (agent to client). */
export const Channel = { stdin: 0, stdout: 1, stderr: 2 } as const;

/** Text frames: control messages, one JSON object each. */
export type ControlFrame =
  | { resize: { rows: number; cols: number } }
  /** End of the process's input. */
  | { eof: true }
  /** The process ended (last frame before the close). */
  | { exit: { exitCode?: number; error?: string } };

export const containerPath = (uid: string, container: string, what: 'logs' | 'exec') =>
  `/v1/groups/${encodeURIComponent(uid)}/containers/${encodeURIComponent(container)}/${what}`;

export const usagePath = (uid: string) => `/v1/groups/${encodeURIComponent(uid)}/usage`;

/** The request a path names, or undefined. */
export function parsePath(path: string): { op: 'images' | 'ports' } | { op: 'usage'; uid: string } | { op: 'logs' | 'exec'; uid: string; container: string } | undefined {
  if (path === '/v1/images') return { op: 'images' };
  if (path === '/v1/ports') return { op: 'ports' };
  try {
    const usage = /^\/v1\/groups\/([^/]+)\/usage$/.exec(path);
    if (usage) return { op: 'usage', uid: decodeURIComponent(usage[1]) };
    const m = /^\/v1\/groups\/([^/]+)\/containers\/([^/]+)\/(logs|exec)$/.exec(path);
    if (!m) return undefined;
    return { op: m[3] as 'logs' | 'exec', uid: decodeURIComponent(m[1]), container: decodeURIComponent(m[2]) };
  } catch {
    return undefined;
  }
}

/** A certificate's SHA-256 fingerprint as berth records it: lower-case hex, no colons. */
export const fingerprintOf = (fingerprint256: string) => fingerprint256.replace(/:/g, '').toLowerCase();

/** Ports as the `unavailable` query parameter carries them: `TCP/80,UDP/53`. */
export const portsQuery = (ports: PublishedPort[]) => ports.map((p) => `${p.protocol}/${p.port}`).join(',');

/** The ports of a `unavailable` query parameter, or undefined when it is not one. */
export function parsePortsQuery(q: string): PublishedPort[] | undefined {
  if (q === '') return [];
  const ports: PublishedPort[] = [];
  for (const item of q.split(',')) {
    const m = /^(TCP|UDP)\/(\d{1,5})$/.exec(item);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return undefined;
    ports.push({ protocol: m[1] as PublishedPort['protocol'], port: Number(m[2]) });
  }
  return ports.length <= 100 ? ports : undefined;
}
