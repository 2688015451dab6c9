// The one typed ARM client for berth and any other ACI endpoint, shaped like the Azure SDK's ContainerInstanceManagementClient.
import { ContainerGroups, Containers, PROVIDER } from './container-groups.js';
import { call, operationOf, pagedList, type CallOptions, type ClientContext } from './context.js';
import { ContainerGroupInformer, Informer, type ChangedLine, type InformerOptions } from './informer.js';
import { Metrics } from './metrics.js';
import { NGroups } from './ngroups.js';
import { ContainerGroupProfiles } from './profiles.js';
import { pollOperation, type LongRunningOperation, type WaitOptions } from './lro.js';
import type { CachedImage, Capabilities, OperationStatus, ProviderOperation, ProviderRegistration, ResourceGroup, Usage } from './models.js';
import type { NGroupResource } from './ngroup-models.js';
import type { Paged } from './paging.js';
import { Transport, type TransportOptions } from './transport.js';

/** The api-version of every Microsoft.ContainerInstance call unless the client or the call names another (the SDK's). */
export const API_VERSION = '2023-05-01';
/** The api-version of resource group calls (Microsoft.Resources). */
export const RESOURCES_API_VERSION = '2022-09-01';
/** The api-version of NGroup and container group profile calls (the first stable one that has them). */
export const NGROUPS_API_VERSION = '2025-09-01';

export interface ClientOptions extends TransportOptions {
  subscriptionId: string;
  apiVersion?: string;
  resourcesApiVersion?: string;
  /** Of NGroup and profile calls (they have no 2023-05-01). */
  ngroupsApiVersion?: string;
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
  readonly provider: Provider;
  readonly containerGroupProfiles: ContainerGroupProfiles;
  readonly ngroups: NGroups;
  readonly metrics: Metrics;
  private readonly http: Transport;

  /** `transport`: one to share with another client of the same endpoint (see forSubscription). */
  constructor(private readonly o: ClientOptions, transport?: Transport) {
    this.http = transport ?? new Transport(o);
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
    this.provider = new Provider({ ...ctx, apiVersion: o.resourcesApiVersion ?? RESOURCES_API_VERSION });
    const ngroupsCtx = { ...ctx, apiVersion: o.ngroupsApiVersion ?? NGROUPS_API_VERSION };
    this.containerGroupProfiles = new ContainerGroupProfiles(ngroupsCtx);
    this.ngroups = new NGroups(ngroupsCtx);
    this.metrics = new Metrics(ctx);
  }

  get endpoint(): string {
    return this.http.endpoint;
  }

  /** A client of another subscription of the same endpoint and credential, on the same connections. */
  forSubscription(subscriptionId: string): ContainerInstanceClient {
    return new ContainerInstanceClient({ ...this.o, subscriptionId }, this.http);
  }

  /**
   * berth: a list-watch cache of the NGroups of every subscription the credential may use, keyed by
   * their resource ids in lower case (what an orchestrator follows).
   */
  ngroupInformer(o: InformerOptions<NGroupResource> = {}): Informer<NGroupResource> {
    const idOf = (line: ChangedLine) => `/subscriptions/${line.subscriptionId}/resourceGroups/${line.resourceGroup}/providers/${PROVIDER}/ngroups/${line.name}`;
    return new Informer<NGroupResource>({
      list: () => this.ngroups.listAcrossSubscriptions().toArray(),
      read: (line) => this.forSubscription(line.subscriptionId!).ngroups.find(line.resourceGroup!, line.name!),
      watch: (signal) => this.ngroups.watchAcrossSubscriptions({ signal }),
      keyOf: (n) => n.id.toLowerCase(),
      keyOfLine: (line) => (line.subscriptionId && line.resourceGroup && line.name ? idOf(line).toLowerCase() : undefined),
      sameAsListed: (cached, listed) => JSON.stringify(cached) === JSON.stringify(listed),
    }, o);
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

/** The provider's registration in the subscription (ARM's Providers_Get). */
export class Provider {
  constructor(private readonly c: ClientContext) {}

  async get(o: CallOptions = {}): Promise<ProviderRegistration> {
    return (await call<ProviderRegistration>(this.c, 'GET', `/subscriptions/${enc(this.c.subscriptionId)}/providers/${PROVIDER}`, o)).body;
  }

  /**
   * The zones a group in `location` may ask for; undefined when the endpoint maps none for it (a single-host berth,
   * an Azure region without zones).
   */
  async zones(location: string, o: CallOptions = {}): Promise<string[] | undefined> {
    const r = await this.get(o);
    const key = (l: string) => l.replace(/\s+/g, '').toLowerCase();
    const groups = r.resourceTypes.find((t) => t.resourceType.toLowerCase() === 'containergroups');
    return groups?.zoneMappings?.find((m) => key(m.location) === key(location))?.zones;
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
