// Microsoft.ContainerInstance operations: container groups (LROs, paged lists, berth's watch) and their containers (logs, exec, attach).
import { call, deleted, providerPath, operationOf, pagedList, type CallOptions, type ClientContext } from './context.js';
import { isNotFound } from './errors.js';
import type { LongRunningOperation, WaitOptions } from './lro.js';
import type { ContainerGroup, ContainerGroupResource, LogOptions, StreamEndpoint, TerminalSize } from './models.js';
import type { Paged } from './paging.js';
import { StreamSession } from './sessions.js';
import type { StreamResponse } from './transport.js';

export const PROVIDER = 'Microsoft.ContainerInstance';

export interface ListOptions extends CallOptions {
  /** Page size (`$top`). */
  top?: number;
}

const enc = encodeURIComponent;

export class ContainerGroups {
  constructor(private readonly c: ClientContext) {}

  /** Of a resource group, or of the whole subscription without one. */
  path(resourceGroup?: string, name?: string): string {
    return providerPath(this.c, 'containerGroups', resourceGroup, name);
  }

  list(o: ListOptions = {}): Paged<ContainerGroupResource> {
    return pagedList(this.c, this.path(), { ...o, query: { $top: o.top } });
  }

  listByResourceGroup(resourceGroup: string, o: ListOptions = {}): Paged<ContainerGroupResource> {
    return pagedList(this.c, this.path(resourceGroup), { ...o, query: { $top: o.top } });
  }

  async get(resourceGroup: string, name: string, o: CallOptions = {}): Promise<ContainerGroupResource> {
    return (await call<ContainerGroupResource>(this.c, 'GET', this.path(resourceGroup, name), o)).body;
  }

  /** The group, or undefined when there is none (every other failure still throws). */
  async find(resourceGroup: string, name: string, o: CallOptions = {}): Promise<ContainerGroupResource | undefined> {
    return this.get(resourceGroup, name, o).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)));
  }

  /** PUT: starts the create (or update); `initial` is the group as the PUT answered it. */
  async beginCreateOrUpdate(resourceGroup: string, name: string, group: ContainerGroup, o: CallOptions = {}): Promise<LongRunningOperation<ContainerGroupResource>> {
    const path = this.path(resourceGroup, name);
    const r = await call<ContainerGroupResource>(this.c, 'PUT', path, o, group);
    return operationOf(this.c, r, () => this.get(resourceGroup, name, o), r.body);
  }

  /** PUT and wait: the group once provisioning succeeded (its error when it failed). */
  async createOrUpdate(resourceGroup: string, name: string, group: ContainerGroup, o: CallOptions & WaitOptions = {}): Promise<ContainerGroupResource> {
    return (await this.beginCreateOrUpdate(resourceGroup, name, group, o)).wait(o);
  }

  /** PATCH: replaces the group's tags. */
  async updateTags(resourceGroup: string, name: string, tags: Record<string, string>, o: CallOptions = {}): Promise<ContainerGroupResource> {
    return (await call<ContainerGroupResource>(this.c, 'PATCH', this.path(resourceGroup, name), o, { tags })).body;
  }

  /** DELETE: starts the delete; `status` 204 means there was nothing to delete. */
  async beginDelete(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    const r = await call(this.c, 'DELETE', this.path(resourceGroup, name), o);
    return operationOf(this.c, r);
  }

  /** DELETE and wait; false when there was no such group. */
  async delete(resourceGroup: string, name: string, o: CallOptions & WaitOptions = {}): Promise<boolean> {
    return deleted(await this.beginDelete(resourceGroup, name, o), o);
  }

  async beginStart(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    return this.action('start', resourceGroup, name, o);
  }

  async start(resourceGroup: string, name: string, o: CallOptions & WaitOptions = {}): Promise<void> {
    await (await this.beginStart(resourceGroup, name, o)).wait(o);
  }

  async beginRestart(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    return this.action('restart', resourceGroup, name, o);
  }

  async restart(resourceGroup: string, name: string, o: CallOptions & WaitOptions = {}): Promise<void> {
    await (await this.beginRestart(resourceGroup, name, o)).wait(o);
  }

  /** Not an LRO in ACI: the group is stopped when this returns. */
  async stop(resourceGroup: string, name: string, o: CallOptions = {}): Promise<void> {
    await call(this.c, 'POST', `${this.path(resourceGroup, name)}/stop`, o);
  }

  async outboundNetworkDependenciesEndpoints(resourceGroup: string, name: string, o: CallOptions = {}): Promise<string[]> {
    return (await call<string[]>(this.c, 'GET', `${this.path(resourceGroup, name)}/outboundNetworkDependenciesEndpoints`, o)).body ?? [];
  }

  /**
   * berth's change stream over a list (`?watch=true`): newline-delimited JSON, a
   * `{"type":"CHANGED","resourceGroup","name"}` line per changed group and heartbeats. undefined
   * when the endpoint has no such extension (it answers the plain list instead).
   */
  async watch(resourceGroup: string | undefined, o: CallOptions = {}): Promise<StreamResponse | undefined> {
    const s = await this.c.http.stream({ method: 'GET', path: this.path(resourceGroup), query: { watch: true }, apiVersion: o.apiVersion ?? this.c.apiVersion, signal: o.signal });
    if (String(s.headers['content-type']).startsWith('application/x-ndjson')) return s;
    s.close();
    return undefined;
  }

  private action(action: 'start' | 'restart', resourceGroup: string, name: string, o: CallOptions) {
    return call(this.c, 'POST', `${this.path(resourceGroup, name)}/${action}`, o).then((r) => operationOf(this.c, r));
  }

}

export interface ExecOptions extends CallOptions {
  /** One string, split by the endpoint as a shell would split it (nothing expanded). */
  command: string;
  /** Run under a terminal of this size (0 x 0: unknown); without one, with pipes. */
  terminalSize?: TerminalSize;
}

export class Containers {
  constructor(private readonly c: ClientContext, private readonly groups: ContainerGroups) {}

  private path(resourceGroup: string, name: string, container: string, what: string) {
    return `${this.groups.path(resourceGroup, name)}/containers/${enc(container)}/${what}`;
  }

  /** The container's log; `previous` (berth) gives the run before its last restart. */
  async logs(resourceGroup: string, name: string, container: string, o: CallOptions & LogOptions & { previous?: boolean } = {}): Promise<string> {
    const query = { tail: o.tail, timestamps: o.timestamps || undefined, previous: o.previous || undefined };
    const r = await call<{ content?: string }>(this.c, 'GET', this.path(resourceGroup, name, container, 'logs'), { ...o, query });
    return r.body?.content ?? '';
  }

  /** berth's `follow=true`: the log as it grows, until the container ends or `signal` aborts. */
  async followLogs(resourceGroup: string, name: string, container: string, o: CallOptions & LogOptions = {}): Promise<AsyncIterable<Buffer>> {
    const query = { tail: o.tail, timestamps: o.timestamps || undefined, follow: true };
    const s = await this.c.http.stream({ method: 'GET', path: this.path(resourceGroup, name, container, 'logs'), query, apiVersion: o.apiVersion ?? this.c.apiVersion, signal: o.signal });
    return s.body;
  }

  /** POST exec: a WebSocket URI and its one-time password. */
  async executeCommand(resourceGroup: string, name: string, container: string, o: ExecOptions): Promise<StreamEndpoint> {
    const body = { command: o.command, ...(o.terminalSize && { terminalSize: o.terminalSize }) };
    const r = await call<StreamEndpoint>(this.c, 'POST', this.path(resourceGroup, name, container, 'exec'), o, body);
    return r.body;
  }

  /** POST attach: a WebSocket URI and its one-time password. */
  async attach(resourceGroup: string, name: string, container: string, o: CallOptions = {}): Promise<StreamEndpoint> {
    const r = await call<StreamEndpoint>(this.c, 'POST', this.path(resourceGroup, name, container, 'attach'), o);
    return r.body;
  }

  /** Runs a command in the container: the session is open (and proven) when this resolves. */
  async openExec(resourceGroup: string, name: string, container: string, o: ExecOptions & { onOutput: (data: Buffer) => void }): Promise<StreamSession> {
    return StreamSession.open(this.c.http, await this.executeCommand(resourceGroup, name, container, o), { onOutput: o.onOutput, passwordIn: 'frame' });
  }

  /** The container's output from now on, until it ends. */
  async openAttach(resourceGroup: string, name: string, container: string, o: CallOptions & { onOutput: (data: Buffer) => void }): Promise<StreamSession> {
    return StreamSession.open(this.c.http, await this.attach(resourceGroup, name, container, o), { onOutput: o.onOutput, passwordIn: 'header' });
  }
}
