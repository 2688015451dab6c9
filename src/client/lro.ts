// Long-running operations as ARM runs them: poll Azure-AsyncOperation (or Location) as Retry-After says, until the operation ends.
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Codes } from '../lib/errors.js';
import { ArmError } from './errors.js';
import type { OperationStatus } from './models.js';
import { retryAfterMs, type Transport } from './transport.js';

/** When no Retry-After says otherwise (what Azure's SDKs wait). */
export const DEFAULT_POLL_INTERVAL_MS = 2000;

export interface WaitOptions {
  signal?: AbortSignal;
  /** Stop waiting (OperationTimedOut) after this long; the operation itself goes on. Default: no limit. */
  timeoutMs?: number;
  /**
   * Poll at this interval instead of the endpoint's Retry-After (e.g. tests against a local berth,
   * whose operations end in milliseconds while Retry-After counts whole seconds).
   */
  pollIntervalMs?: number;
  /** Told of each poll's answer (e.g. to show progress). */
  onPoll?: (status: OperationStatus) => void | Promise<void>;
}

const TERMINAL = new Set(['Succeeded', 'Failed', 'Canceled']);

const header = (h: IncomingHttpHeaders, name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Polls an Azure-AsyncOperation URL until the operation leaves InProgress and returns its last
 * status (Succeeded, Failed or Canceled); it throws only when polling itself fails or the wait ends.
 */
export async function pollOperation(http: Transport, url: string, o: WaitOptions = {}, firstDelayMs?: number): Promise<OperationStatus> {
  const deadline = o.timeoutMs === undefined ? Infinity : Date.now() + o.timeoutMs;
  let delay = firstDelayMs;
  for (;;) {
    if (delay !== undefined) await waitUntilNextPoll(delay, deadline, url, o.signal);
    const r = await http.request<OperationStatus>({ method: 'GET', path: url, apiVersion: null, signal: o.signal });
    const status = r.body;
    if (!status || typeof status.status !== 'string') throw new ArmError(Codes.UnexpectedResponse, `${url}: the answer has no operation status`, 502);
    await o.onPoll?.(status);
    // ARM: Succeeded, Failed and Canceled end an operation; any other status means it runs on.
    if (TERMINAL.has(status.status)) return status;
    delay = o.pollIntervalMs ?? retryAfterMs(r.headers) ?? DEFAULT_POLL_INTERVAL_MS;
  }
}

async function waitUntilNextPoll(delay: number, deadline: number, what: string, signal?: AbortSignal) {
  if (Date.now() + delay > deadline) {
    await sleep(Math.max(0, deadline - Date.now()), undefined, { signal });
    throw new ArmError(Codes.OperationTimedOut, `The operation ${what} was still in progress when the wait ended.`, 504);
  }
  await sleep(delay, undefined, { signal });
}

/** The error a finished operation that did not succeed stands for. */
export function operationError(status: OperationStatus): ArmError {
  if (status.error) return new ArmError(status.error.code, status.error.message, 500, status.error.target);
  if (status.status === 'Canceled') return new ArmError(Codes.OperationCanceled, 'The operation was canceled.', 500);
  return new ArmError(Codes.UnexpectedResponse, `The operation ended ${status.status} without an error.`, 500);
}

/**
 * A started long-running operation: `initial` is what the request that began it answered; wait()
 * polls to the end and gives the result (or throws the operation's error).
 */
export class LongRunningOperation<T> {
  constructor(
    private readonly http: Transport,
    /** The HTTP status of the request that began it (e.g. 204 for a delete of nothing). */
    readonly status: number,
    private readonly headers: IncomingHttpHeaders,
    /** What the request that began it answered (the group as PUT left it, for a create). */
    readonly initial: T | undefined,
    private readonly result: () => Promise<T>,
    private readonly defaults: WaitOptions = {},
  ) {}

  /** The Azure-AsyncOperation URL to poll, when the operation runs on. */
  get operationUrl(): string | undefined {
    return header(this.headers, 'azure-asyncoperation');
  }

  /** ARM's other way: a Location to GET until it answers 200 (resource group deletes). */
  get locationUrl(): string | undefined {
    return header(this.headers, 'location');
  }

  async wait(o: WaitOptions = {}): Promise<T> {
    const opts = { ...this.defaults, ...o };
    const first = opts.pollIntervalMs ?? retryAfterMs(this.headers) ?? DEFAULT_POLL_INTERVAL_MS;
    if (this.operationUrl) {
      const s = await pollOperation(this.http, this.operationUrl, opts, first);
      if (s.status !== 'Succeeded') throw operationError(s);
    } else if (this.locationUrl && this.status === 202) {
      await this.pollLocation(this.locationUrl, opts, first);
    }
    return this.result();
  }

  private async pollLocation(url: string, o: WaitOptions, first: number) {
    const deadline = o.timeoutMs === undefined ? Infinity : Date.now() + o.timeoutMs;
    let delay = first;
    for (;;) {
      await waitUntilNextPoll(delay, deadline, url, o.signal);
      const r = await this.http.request({ method: 'GET', path: url, apiVersion: null, signal: o.signal });
      if (r.status !== 202) return;
      delay = o.pollIntervalMs ?? retryAfterMs(r.headers) ?? DEFAULT_POLL_INTERVAL_MS;
    }
  }
}
