// The one typed ARM client for berth and any other ACI endpoint, shaped like the Azure SDK's ContainerInstanceManagementClient.
import { ContainerGroups, Containers, PROVIDER } from './container-groups.js';
import { call, operationOf, pagedList, type CallOptions, type ClientContext } from './context.js';
import { ContainerGroupInformer, type InformerOptions } from './informer.js';
import { pollOperation, type LongRunningOperation, type WaitOptions } from './lro.js';
import type { CachedImage, Capabilities, OperationStatus, ProviderOperation, ResourceGroup, Usage } from './models.js';
import type { Paged } from './paging.js';
import { Transport, type TransportOptions } from './transport.js';

/** The api-version of every Microsoft.ContainerInstance call unless the client or the call names another (the SDK's). */
export const API_VERSION = '2023-05-01';
/** The api-version of resource group calls (Microsoft.Resources). */
export const RESOURCES_API_VERSION = '2022-09-01';

export interface ClientOptions extends TransportOptions {
  subscriptionId: string;
  apiVersion?: string;
  resourcesApiVersion?: string;
  /** Poll every LRO at this interval instead of its Retry-After (see WaitOptions). */
  pollIntervalMs?: number;
}

const enc = encodeURIComponent;

export class ContainerInstanceClient {
  readonly subscriptionId: string;
  readonly containerGroups: ContainerGroups;
  readonly containers: Containers;
  readonly location: Location;
  readonly resourceGroups: ResourceGroups;
  readonly operations: ProviderOperations;
  private readonly http: Transport;

  constructor(o: ClientOptions) {
    this.http = new Transport(o);
    this.subscriptionId = o.subscriptionId;
    const ctx: ClientContext = {
      http: this.http, subscriptionId: o.subscriptionId, apiVersion: o.apiVersion ?? API_VERSION,
      wait: o.pollIntervalMs === undefined ? {} : { pollIntervalMs: o.pollIntervalMs },
    };
    this.containerGroups = new ContainerGroups(ctx);
    this.containers = new Containers(ctx, this.containerGroups);
    this.location = new Location(ctx);
    this.resourceGroups = new ResourceGroups({ ...ctx, apiVersion: o.resourcesApiVersion ?? RESOURCES_API_VERSION });
    this.operations = new ProviderOperations(ctx);
  }

  get endpoint(): string {
    return this.http.endpoint;
  }

  /** A list-watch cache of container groups (call start(), then await synced()). */
  informer(o: InformerOptions = {}): ContainerGroupInformer {
    return new ContainerGroupInformer(this.containerGroups, o);
  }

  /** One read of an operation's status (an Azure-AsyncOperation URL). */
  async operationStatus(url: string, o: CallOptions = {}): Promise<OperationStatus> {
    return (await this.http.request<OperationStatus>({ method: 'GET', path: url, apiVersion: null, signal: o.signal })).body;
  }

  /** Polls an operation until it ends; its last status, whether it succeeded or not. */
  waitForOperation(url: string, o: WaitOptions = {}): Promise<OperationStatus> {
    return pollOperation(this.http, url, o);
  }

  /** berth's liveness (`/healthz`, no token): true when the server answers. Other endpoints have none. */
  async healthy(): Promise<boolean> {
    return this.http.request({ method: 'GET', path: '/healthz', apiVersion: null, anonymous: true, idempotent: false }).then(() => true, () => false);
  }

  close() {
    this.http.close();
  }
}

/** Per-location reads: usage against quotas, capabilities, images cached for fast starts. */
export class Location {
  constructor(private readonly c: ClientContext) {}

  private path(location: string, what: string) {
    return `/subscriptions/${enc(this.c.subscriptionId)}/providers/${PROVIDER}/locations/${enc(location)}/${what}`;
  }

  listUsage(location: string, o: CallOptions = {}): Paged<Usage> {
    return pagedList(this.c, this.path(location, 'usages'), o);
  }

  listCapabilities(location: string, o: CallOptions = {}): Paged<Capabilities> {
    return pagedList(this.c, this.path(location, 'capabilities'), o);
  }

  listCachedImages(location: string, o: CallOptions = {}): Paged<CachedImage> {
    return pagedList(this.c, this.path(location, 'cachedImages'), o);
  }
}

/** The provider's operation catalogue (what RBAC roles name). */
export class ProviderOperations {
  constructor(private readonly c: ClientContext) {}

  list(o: CallOptions = {}): Paged<ProviderOperation> {
    return pagedList(this.c, `/providers/${PROVIDER}/operations`, o);
  }
}

/** Microsoft.Resources resource groups, as `az group` manages them. */
export class ResourceGroups {
  constructor(private readonly c: ClientContext) {}

  private path(name?: string) {
    const base = `/subscriptions/${enc(this.c.subscriptionId)}/resourcegroups`;
    return name === undefined ? base : `${base}/${enc(name)}`;
  }

  async createOrUpdate(name: string, group: ResourceGroup, o: CallOptions = {}): Promise<ResourceGroup> {
    return (await call<ResourceGroup>(this.c, 'PUT', this.path(name), o, group)).body;
  }

  async get(name: string, o: CallOptions = {}): Promise<ResourceGroup> {
    return (await call<ResourceGroup>(this.c, 'GET', this.path(name), o)).body;
  }

  list(o: CallOptions = {}): Paged<ResourceGroup> {
    return pagedList(this.c, this.path(), o);
  }

  /** Deletes the resource group and everything in it; ARM reports progress through Location. */
  async beginDelete(name: string, o: CallOptions = {}): Promise<LongRunningOperation<void>> {
    const r = await call(this.c, 'DELETE', this.path(name), o);
    return operationOf(this.c, r);
  }

  async delete(name: string, o: CallOptions & WaitOptions = {}): Promise<void> {
    await (await this.beginDelete(name, o)).wait(o);
  }
}
