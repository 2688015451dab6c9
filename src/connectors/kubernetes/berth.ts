// The connector's only way into berth: its ARM HTTP API (groups, logs, exec), as any ACI client would use it.
import WebSocket from 'ws';

export const API_VERSION = '2023-05-01';

export interface BerthEndpoint {
  endpoint: string;
  token: string;
  subscription: string;
  resourceGroup: string;
}

export class BerthApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface ContainerStateView {
  state?: string;
  startTime?: string;
  finishTime?: string;
  exitCode?: number;
  detailStatus?: string;
}

export interface ContainerResource {
  name: string;
  properties: {
    image: string;
    instanceView?: { restartCount: number; currentState?: ContainerStateView; previousState?: ContainerStateView; events?: { name: string; message: string; type: string; lastTimestamp: string }[] };
  };
}

/** A container group as berth renders it (the parts the connector reads). */
export interface GroupResource {
  id: string;
  name: string;
  tags?: Record<string, string>;
  properties: {
    provisioningState?: string;
    containers: ContainerResource[];
    initContainers?: ContainerResource[];
    ipAddress?: { ip?: string };
    instanceView?: { state?: string; events?: unknown[] };
  };
}

export class BerthClient {
  constructor(readonly e: BerthEndpoint) {}

  private groupsPath() {
    return `/subscriptions/${encodeURIComponent(this.e.subscription)}/resourceGroups/${encodeURIComponent(this.e.resourceGroup)}/providers/Microsoft.ContainerInstance/containerGroups`;
  }

  groupPath(name: string) {
    return `${this.groupsPath()}/${encodeURIComponent(name)}`;
  }

  private url(path: string, query: Record<string, string | number | boolean | undefined> = {}) {
    const u = new URL(path.startsWith('http') ? path : this.e.endpoint.replace(/\/$/, '') + path);
    if (!u.searchParams.has('api-version')) u.searchParams.set('api-version', API_VERSION);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  async raw(method: string, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>, signal?: AbortSignal) {
    return fetch(this.url(path, query), {
      method,
      signal,
      headers: { authorization: `Bearer ${this.e.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async call<T = any>(method: string, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>) {
    const res = await this.raw(method, path, body, query);
    const text = await res.text();
    const json = text ? JSON.parse(text) : undefined;
    if (res.status >= 400)
      throw new BerthApiError(res.status, json?.error?.code ?? '', json?.error ? `(${json.error.code}) ${json.error.message}` : `HTTP ${res.status}`);
    return { status: res.status, body: json as T, headers: res.headers };
  }

  /** Every group in the connector's resource group, following nextLink. */
  async listGroups(): Promise<GroupResource[]> {
    const out: GroupResource[] = [];
    let next: string | undefined = this.groupsPath();
    while (next) {
      const r: { body: { value: GroupResource[]; nextLink?: string } } = await this.call('GET', next, undefined, next.startsWith('http') ? {} : { $top: 1000 });
      out.push(...r.body.value);
      next = r.body.nextLink;
    }
    return out;
  }

  /**
   * Follows berth's change stream for the connector's resource group (`?watch=true`, a berth
   * extension): `onChange` fires for each changed group and on each (re)connect (a moment when
   * changes may have been missed). Reconnects until `signal` aborts.
   */
  async watchGroups(onChange: () => void, onError: (e: Error) => void, signal: AbortSignal): Promise<void> {
    let delay = 200;
    while (!signal.aborted) {
      try {
        const res = await this.raw('GET', this.groupsPath(), undefined, { watch: true }, signal);
        if (res.status !== 200 || !res.body) throw new BerthApiError(res.status, '', `watch: HTTP ${res.status}`);
        onChange();
        delay = 200;
        let buf = '';
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if ((JSON.parse(line) as { type: string }).type === 'CHANGED') onChange();
          }
        }
        if (!signal.aborted) throw new Error('watch: berth closed the stream');
      } catch (e) {
        if (signal.aborted) return;
        onError(e as Error);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  async getGroup(name: string): Promise<GroupResource | undefined> {
    try {
      return (await this.call<GroupResource>('GET', this.groupPath(name))).body;
    } catch (e) {
      if (e instanceof BerthApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** PUT without waiting for the long-running operation: pod status follows from the instance view. */
  async putGroup(name: string, body: unknown): Promise<GroupResource> {
    return (await this.call<GroupResource>('PUT', this.groupPath(name), body)).body;
  }

  /** Deletes and waits up to `timeoutMs` for the operation; true once the group is gone. */
  async deleteGroup(name: string, timeoutMs: number): Promise<boolean> {
    const r = await this.call('DELETE', this.groupPath(name));
    if (r.status === 204) return true;
    const op = r.headers.get('azure-asyncoperation');
    const t0 = Date.now();
    while (op && Date.now() - t0 < timeoutMs) {
      const s = await this.call<{ status: string }>('GET', op);
      if (s.body.status !== 'InProgress') return true;
      await new Promise((res) => setTimeout(res, 200));
    }
    return !op;
  }

  /** `previous`: berth's extension for the log of the run before the last restart. */
  async logs(name: string, container: string, q: { tail?: number; timestamps?: boolean; previous?: boolean }): Promise<string> {
    const r = await this.call<{ content: string }>('GET', `${this.groupPath(name)}/containers/${encodeURIComponent(container)}/logs`, undefined, q);
    return r.body.content;
  }

  /** berth's streaming log extension (`follow=true`). */
  async followLogs(name: string, container: string, q: { tail?: number; timestamps?: boolean }, signal: AbortSignal) {
    const res = await this.raw('GET', `${this.groupPath(name)}/containers/${encodeURIComponent(container)}/logs`, undefined, { ...q, follow: true }, signal);
    if (!res.ok || !res.body) {
      const t = await res.text();
      throw new BerthApiError(res.status, '', `HTTP ${res.status}: ${t.slice(0, 200)}`);
    }
    return res.body as unknown as AsyncIterable<Uint8Array>;
  }

  /**
   * Opens an exec session: berth answers a WebSocket URI and a password to send as its first frame.
   * `command` is one string, split by berth as a shell would (quote an argv with quoteCommand);
   * a terminal size makes it a terminal session.
   */
  exec(name: string, container: string, command: string, tty?: { rows: number; cols: number }): Promise<WebSocket> {
    return this.session(name, container, 'exec', { command, ...(tty && { terminalSize: tty }) });
  }

  /** Opens an attach session: the container's output from now on. */
  attach(name: string, container: string): Promise<WebSocket> {
    return this.session(name, container, 'attach');
  }

  private async session(name: string, container: string, kind: 'exec' | 'attach', body?: unknown): Promise<WebSocket> {
    const r = await this.call<{ webSocketUri: string; password: string }>('POST', `${this.groupPath(name)}/containers/${encodeURIComponent(container)}/${kind}`, body);
    const ws = await open(r.body.webSocketUri);
    ws.send(r.body.password);
    return ws;
  }
}

function open(uri: string): Promise<WebSocket> {
  const ws = new WebSocket(uri);
  return new Promise<WebSocket>((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
