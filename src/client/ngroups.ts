// Microsoft.ContainerInstance/ngroups: sets of container groups made from a profile (LROs, paged lists), their
// rolling updates, and berth's status document and change stream that an orchestrator uses.
import { PROVIDER } from './container-groups.js';
import { call, deleted, providerId, providerPath, operationOf, pagedList, type CallOptions, type ClientContext } from './context.js';
import { isNotFound } from './errors.js';
import type { LongRunningOperation, WaitOptions } from './lro.js';
import type { NGroup, NGroupResource, NGroupStatus, RollingUpdateStatus } from './ngroup-models.js';
import type { Paged } from './paging.js';
import type { StreamResponse } from './transport.js';


export class NGroups {
  constructor(private readonly c: ClientContext) {}

  /** Of a resource group, or of the whole subscription without one. */
  path(resourceGroup?: string, name?: string): string {
    return providerPath(this.c, 'ngroups', resourceGroup, name);
  }

  /** The resource id of an NGroup of this subscription (what its members carry as orchestratorId). */
  id(resourceGroup: string, name: string): string {
    return providerId(this.c, 'ngroups', resourceGroup, name);
  }

  async beginCreateOrUpdate(resourceGroup: string, name: string, ngroup: NGroup, o: CallOptions = {}): Promise<LongRunningOperation<NGroupResource>> {
    const r = await call<NGroupResource>(this.c, 'PUT', this.path(resourceGroup, name), o, ngroup);
    return operationOf(this.c, r, () => this.get(resourceGroup, name, o), r.body);
  }

  /** PUT and wait until the members are made (or the NGroup failed). */
  async createOrUpdate(resourceGroup: string, name: string, ngroup: NGroup, o: CallOptions & WaitOptions = {}): Promise<NGroupResource> {
    return (await this.beginCreateOrUpdate(resourceGroup, name, ngroup, o)).wait(o);
  }

  /** PATCH: a merge patch (tags, `properties`, zones). */
  async beginUpdate(resourceGroup: string, name: string, patch: NGroup, o: CallOptions = {}): Promise<LongRunningOperation<NGroupResource>> {
    const r = await call<NGroupResource>(this.c, 'PATCH', this.path(resourceGroup, name), o, patch);
    return operationOf(this.c, r, () => this.get(resourceGroup, name, o), r.body);
  }

  async update(resourceGroup: string, name: string, patch: NGroup, o: CallOptions & WaitOptions = {}): Promise<NGroupResource> {
    return (await this.beginUpdate(resourceGroup, name, patch, o)).wait(o);
  }

  async get(resourceGroup: string, name: string, o: CallOptions = {}): Promise<NGroupResource> {
    return (await call<NGroupResource>(this.c, 'GET', this.path(resourceGroup, name), o)).body;
  }

  async find(resourceGroup: string, name: string, o: CallOptions = {}): Promise<NGroupResource | undefined> {
    return this.get(resourceGroup, name, o).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)));
  }

  list(o: CallOptions = {}): Paged<NGroupResource> {
    return pagedList(this.c, this.path(), o);
  }

  listByResourceGroup(resourceGroup: string, o: CallOptions = {}): Paged<NGroupResource> {
    return pagedList(this.c, this.path(resourceGroup), o);
  }

  /** berth: the NGroups of every subscription the credential may use. */
  listAcrossSubscriptions(o: CallOptions = {}): Paged<NGroupResource> {
    return pagedList(this.c, `/providers/${PROVIDER}/ngroups`, o);
  }

  async beginDelete(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    return operationOf(this.c, await call(this.c, 'DELETE', this.path(resourceGroup, name), o));
  }

  /** DELETE and wait until the NGroup and its members are gone; false when there was none. */
  async delete(resourceGroup: string, name: string, o: CallOptions & WaitOptions = {}): Promise<boolean> {
    return deleted(await this.beginDelete(resourceGroup, name, o), o);
  }

  async beginStart(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    return operationOf(this.c, await call(this.c, 'POST', `${this.path(resourceGroup, name)}/start`, o));
  }

  async beginRestart(resourceGroup: string, name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    return operationOf(this.c, await call(this.c, 'POST', `${this.path(resourceGroup, name)}/restart`, o));
  }

  /** Not an LRO: the members are stopped when this returns. */
  async stop(resourceGroup: string, name: string, o: CallOptions = {}): Promise<void> {
    await call(this.c, 'POST', `${this.path(resourceGroup, name)}/stop`, o);
  }

  async latestRollingUpdate(resourceGroup: string, name: string, o: CallOptions = {}): Promise<RollingUpdateStatus | undefined> {
    return call<RollingUpdateStatus>(this.c, 'GET', `${this.path(resourceGroup, name)}/latestRollingUpdate`, o)
      .then((r) => r.body, (e) => (isNotFound(e) ? undefined : Promise.reject(e)));
  }

  async cancelRollingUpdate(resourceGroup: string, name: string, o: CallOptions = {}): Promise<RollingUpdateStatus> {
    return (await call<RollingUpdateStatus>(this.c, 'POST', `${this.path(resourceGroup, name)}/cancelRollingUpdate`, o)).body;
  }

  /** berth: the orchestrator's status of an NGroup, the NGroup's generation, and the ETag to write it back with. */
  async getStatus(resourceGroup: string, name: string, o: CallOptions = {}): Promise<{ generation: number; etag: string; status: NGroupStatus }> {
    const r = await call<NGroupStatus & { generation: number }>(this.c, 'GET', `${this.path(resourceGroup, name)}/status`, o);
    const { generation, ...status } = r.body;
    return { generation, etag: String(r.headers.etag ?? ''), status };
  }

  /** berth: replaces the status; with `ifMatch`, only if nobody changed it since (else a 412 PreconditionFailed). The new ETag. */
  async putStatus(resourceGroup: string, name: string, status: NGroupStatus, o: CallOptions & { ifMatch?: string } = {}): Promise<string> {
    const r = await this.c.http.request({
      method: 'PUT', path: `${this.path(resourceGroup, name)}/status`, body: status, apiVersion: o.apiVersion ?? this.c.apiVersion, signal: o.signal,
      ...(o.ifMatch && { headers: { 'if-match': o.ifMatch } }),
    });
    return String(r.headers.etag ?? '');
  }

  /** berth's change stream of the NGroups of every subscription the credential may use (undefined: the endpoint has none). */
  async watchAcrossSubscriptions(o: CallOptions = {}): Promise<StreamResponse | undefined> {
    const s = await this.c.http.stream({ method: 'GET', path: `/providers/${PROVIDER}/ngroups`, query: { watch: true }, apiVersion: o.apiVersion ?? this.c.apiVersion, signal: o.signal });
    if (String(s.headers['content-type']).startsWith('application/x-ndjson')) return s;
    s.close();
    return undefined;
  }
}
