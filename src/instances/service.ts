// The container instances service: what the routes call (typed actions on groups, resource groups and operations), over the store and the hosts' data planes.
import type { HostDataPlane } from '../agent/link.js';
import type { ExecOptions, GroupUsage, LogOptions } from '../agent/types.js';
import type { ResourceGroupPut, ResourceGroupRecord, ResourceGroups } from '../arm/resources.js';
import type { Tags } from '../arm/tags.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { Compare, Store } from '../store/store.js';
import type { GroupRef } from './actions.js';
import { Admission, type Quotas } from './admission.js';
import type { DnsNameRecord } from './dns-names.js';
import { GroupWriter, groupNotFound, type Caller, type GroupPut } from './group-writer.js';
import type { OverlaySettings } from './hosts/cluster-overlay.js';
import { HostGateway } from './hosts/gateway.js';
import type { HostsView } from './hosts/hosts-view.js';
import { dnsNameKey, groupKey, groupPrefix } from './keys.js';
import { type Limits, checkResourceGroupName, checkSubscriptionId, defaultLimits } from './model.js';
import { readOperation } from './operations.js';
import { Placer } from './placement/placer.js';
import { Rescheduler } from './placement/rescheduler.js';
import { GROUP_TYPE, locationKey, UNPLACED, type GroupRecord, type GroupView, type OperationRecord, type OperationView } from './records.js';
import { ResourceGroupRecords } from './resource-groups.js';
import { upgradeLayout } from './upgrade.js';
import { groupView, watchGroupChanges } from './views.js';

export { GROUP_TYPE, PROVIDER, UNPLACED } from './records.js';
export type { GroupRecord, GroupView, OperationRecord, OperationView, ProfileReference } from './records.js';
export type { Quotas } from './admission.js';
export type { Caller, GroupPut } from './group-writer.js';

export interface ServiceOptions {
  limits?: Limits;
  location?: string;
  quotas?: Quotas;
  /** The DNS zone group fqdns are made in: `<label>.<location>.<zone>`. */
  dnsZone?: string;
  /** How long a stop waits for the host to report the group stopped before it answers anyway (the record says Stopped already). Default 120 s. */
  stopWaitMs?: number;
  /**
   * The host new groups are placed on. Default 'local' (the embedded default's only host); UNPLACED ('') leaves
   * them on no host until a placement reconciler (`placer`) chooses one.
   */
  placeOn?: string;
  /** A host is NotReady this long after its last heartbeat (fractional allowed). Default 4 s (DEFAULT_HOST_LEASE_SECONDS). */
  hostLeaseSeconds?: number;
  /** Who this process is among the control plane's replicas (recorded with the host leases it keeps). */
  replica?: string;
  /** A cluster's zones that have a Ready host now (what the provider's registration lists as the location's zones). */
  readyZones?: () => string[];
  /**
   * A cluster's overlay: hosts get subnets of it as they register, and each subscription a cluster-wide segment tag
   * with its first group (segment-tags.ts). Absent: neither (the embedded default).
   */
  overlay?: OverlaySettings;
}

/** How the service reaches a host's agent for what does not go through the store: logs, exec, its images. */
export type DataPlanes = (host: string) => HostDataPlane;

export class InstancesService implements ResourceGroups {
  readonly location: string;
  readonly quotas: Quotas;
  readonly dnsZone: string;
  /** The control plane's side of the hosts' links (the in-process link and an agent API build on it). */
  readonly gateway: HostGateway;
  private readonly limits: Limits;
  private readonly placeOn: string;
  private readonly readyZones: () => string[];
  private readonly admission: Admission;
  private readonly rgs: ResourceGroupRecords;
  private readonly writer: GroupWriter;
  /** The placer this process runs while it leads (its decisions need its cache: stopped, it decides nothing). */
  private placing?: Placer;

  constructor(
    private readonly store: Store,
    private readonly dataPlanes: DataPlanes,
    opts: ServiceOptions = {},
  ) {
    this.limits = opts.limits ?? defaultLimits;
    this.location = opts.location ?? 'local';
    this.quotas = opts.quotas ?? { containerGroups: 1000, standardCores: 1000 };
    this.dnsZone = (opts.dnsZone ?? 'berth.internal').toLowerCase().replace(/\.$/, '');
    this.placeOn = opts.placeOn ?? 'local';
    this.readyZones = opts.readyZones ?? (() => []);
    this.admission = new Admission(store, this.quotas);
    this.rgs = new ResourceGroupRecords(store, (l) => this.servedLocation(l, 'resourceGroup'), (sub, resourceGroup, name) => this.delete({ subscriptionId: sub, resourceGroup, name }));
    this.writer = new GroupWriter(store, this.admission, this.rgs, {
      dnsZone: this.dnsZone, location: this.location, servedLocation: (l) => this.servedLocation(l, 'group'), placeOn: this.placeOn, stopWaitMs: opts.stopWaitMs ?? 120_000,
      hostKeeps: (host, ports) => this.dataPlanes(host).unavailablePorts(ports), segmentTags: opts.overlay !== undefined,
      placeAtAdmission: (key, rec) => this.placing?.placeAtAdmission(key, rec),
    });
    this.gateway = new HostGateway(store, {
      onRemoved: (host, uid) => this.writer.finishRemoval(host, uid), leaseTtlSeconds: opts.hostLeaseSeconds, holder: opts.replica, overlay: opts.overlay,
    });
  }

  /** Brings what is stored up to the current layout (hosts' specs, quota counters, host ports) once. */
  async start() {
    await upgradeLayout(this.store, this.placeOn);
  }

  async stop() {
    this.gateway.close();
  }

  /**
   * Places the groups that are on no host yet (UNPLACED), and new groups this process admits while it runs (in their admission's
   * transaction): the scheduler over `hosts` (and the ports they keep), each placement written with
   * the group's host spec and host ports, under `fence` (the leadership of whoever runs it). Call start() on it.
   */
  placer(hosts: HostsView, fence: Compare, o: { retryMs?: number; log?: (message: string) => void } = {}): Placer {
    // new groups this process admits are placed as they are admitted, by this placer while it runs
    return (this.placing = new Placer(this.store, hosts, fence, o));
  }

  /**
   * Moves the groups of hosts that turn NotReady off them, for the placer to place again, under `fence`. Call
   * start() on it, and hostsChanged() whenever `hosts` changes.
   */
  rescheduler(hosts: HostsView, fence: Compare, o: { startGraceMs?: number; log?: (message: string) => void } = {}): Rescheduler {
    return new Rescheduler(this.store, hosts, fence, { startGraceMs: o.startGraceMs ?? this.gateway.leaseTtlMs, log: o.log });
  }

  /**
   * berth extension: calls `onChange(resourceGroup, name)` whenever a group of this subscription (or of one
   * resource group) changes: its record (create, update, delete) or its status. A signal to read again, not the
   * change itself, so a client never acts on a stale copy.
   */
  watchGroups(sub: string, rg: string | undefined, onChange: (resourceGroup: string, name: string) => void): () => void {
    checkSubscriptionId(sub);
    if (rg !== undefined) checkResourceGroupName(rg);
    return watchGroupChanges(this.store, groupPrefix(sub, rg), onChange);
  }

  // --- container groups ---

  createOrUpdate(ref: GroupRef, put: GroupPut, caller: Caller = {}) {
    return this.writer.createOrUpdate(ref, put, caller);
  }

  updateTags(ref: GroupRef, tags: Tags): Promise<GroupView> {
    return this.writer.updateTags(ref, tags);
  }

  delete(ref: GroupRef) {
    return this.writer.delete(ref);
  }

  setRunState(ref: GroupRef, kind: 'start' | 'stop' | 'restart'): Promise<OperationRecord> {
    return this.writer.setRunState(ref, kind);
  }

  async get(ref: GroupRef): Promise<GroupView> {
    return groupView(this.store, await this.mustGet(ref));
  }

  async list(sub: string, rg?: string, page?: { startAfter?: string; limit?: number }): Promise<{ views: GroupView[]; next?: string }> {
    checkSubscriptionId(sub);
    const limit = page?.limit ?? 100;
    const kvs = await this.store.list<GroupRecord>(groupPrefix(sub, rg), { startAfter: page?.startAfter, limit: limit + 1 });
    const more = kvs.length > limit;
    const shown = kvs.slice(0, limit);
    return { views: await Promise.all(shown.map((kv) => groupView(this.store, kv.value))), next: more ? shown[shown.length - 1].key : undefined };
  }

  /** The groups of a subscription that belong to an NGroup (their `orchestratorId`, matched as ARM ids are: without regard to case). */
  async listByOrchestrator(sub: string, orchestratorId: string): Promise<GroupRecord[]> {
    const id = orchestratorId.toLowerCase();
    return (await this.store.list<GroupRecord>(groupPrefix(sub))).map((kv) => kv.value).filter((r) => r.orchestratorId?.toLowerCase() === id);
  }

  /** The group that holds `fqdn` (lower-case, in berth's zone), or undefined. */
  async groupByFqdn(fqdn: string): Promise<GroupView | undefined> {
    const held = await this.store.get<DnsNameRecord>(dnsNameKey(fqdn));
    if (!held) return undefined;
    const rec = (await this.store.get<GroupRecord>(held.value.groupKey))?.value;
    if (!rec || rec.uid !== held.value.uid || rec.deleting) return undefined;
    return groupView(this.store, rec);
  }

  // --- containers, on the group's host ---

  /** 404s for a group or container that is not there (before a stream session is handed out). */
  async checkContainer(ref: GroupRef, container: string): Promise<void> {
    mustHaveContainer(await this.mustGet(ref), container);
  }

  async logs(ref: GroupRef, container: string, opts: LogOptions): Promise<string> {
    const rec = await this.mustGet(ref);
    mustHaveContainer(rec, container);
    return this.dataPlanes(rec.host).logs(rec.uid, container, opts);
  }

  async followLogs(ref: GroupRef, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal) {
    const rec = await this.mustGet(ref);
    mustHaveContainer(rec, container);
    return this.dataPlanes(rec.host).followLogs(rec.uid, container, opts, onChunk, signal);
  }

  async exec(ref: GroupRef, container: string, argv: string[], opts: ExecOptions = {}) {
    const rec = await this.mustGet(ref);
    mustHaveContainer(rec, container);
    return this.dataPlanes(rec.host).exec(rec.uid, container, argv, opts);
  }

  /** A group's record and the readings of its usage its host took at or after `since` (none while it is on no host). */
  async groupUsage(ref: GroupRef, since: number): Promise<{ record: GroupRecord; readings: GroupUsage[] }> {
    const rec = await this.mustGet(ref);
    return { record: rec, readings: rec.host ? await this.dataPlanes(rec.host).usage(rec.uid, since) : [] };
  }

  /** The images of the host new groups go to. */
  cachedImages(): Promise<string[]> {
    return this.dataPlanes(this.placeOn).cachedImages();
  }

  // --- operations, resource groups, locations ---

  operation(sub: string, id: string): Promise<OperationView> {
    // on a cluster a group refused for a held port is moved (the rescheduler): its operation follows it
    return readOperation(this.store, sub, id, this.placeOn === UNPLACED);
  }

  putResourceGroup(sub: string, rg: string, b: ResourceGroupPut): Promise<{ created: boolean; rg: ResourceGroupRecord }> {
    return this.rgs.put(sub, rg, b);
  }

  getResourceGroup(sub: string, rg: string): Promise<ResourceGroupRecord> {
    return this.rgs.get(sub, rg);
  }

  listResourceGroups(sub: string): Promise<ResourceGroupRecord[]> {
    return this.rgs.list(sub);
  }

  deleteResourceGroup(sub: string, rg: string): Promise<OperationRecord | undefined> {
    return this.rgs.delete(sub, rg);
  }

  /**
   * The zones groups may ask for (`zones`), those with a Ready host now; undefined when this berth places every
   * group on its one host itself and honours no zones (nor placement rules).
   */
  zonesInForce(): string[] | undefined {
    return this.placeOn === UNPLACED ? [...new Set(this.readyZones())].sort() : undefined;
  }

  limitsInForce(): Limits {
    return this.limits;
  }

  /**
   * The location as berth stores it, for a location a request names: berth serves one (`location`, default
   * 'local'), matched as ARM matches names; any other is ARM's LocationNotAvailable… error.
   */
  servedLocation(given: string, kind: 'group' | 'resourceGroup' = 'group'): string {
    if (locationKey(given) === locationKey(this.location)) return this.location;
    const shown = given.length > 100 ? `${given.slice(0, 100)}…` : given;
    if (kind === 'resourceGroup')
      throw new BerthError(Codes.LocationNotAvailableForResourceGroup, `The provided location '${shown}' is not available for resource group. List of available regions is '${this.location}'.`, 400, 'location');
    throw new BerthError(Codes.LocationNotAvailableForResourceType, `The provided location '${shown}' is not available for resource type '${GROUP_TYPE}'. List of available regions for the resource type is '${this.location}'.`, 400, 'location');
  }

  /** Usage of a location berth serves (others are refused as ARM refuses them). */
  async usage(sub: string, location: string) {
    checkSubscriptionId(sub);
    return this.admission.usage(sub, this.servedLocation(location));
  }

  private async mustGet({ subscriptionId: sub, resourceGroup: rg, name }: GroupRef): Promise<GroupRecord> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const kv = await this.store.get<GroupRecord>(groupKey(sub, rg, name));
    if (!kv) throw groupNotFound(name);
    return kv.value;
  }
}

function mustHaveContainer(rec: GroupRecord, container: string) {
  // Init containers' logs can be read too (their names share the containers' namespace).
  if (!rec.spec.containers.some((c) => c.name === container) && !rec.spec.initContainers?.some((c) => c.name === container))
    throw new BerthError(Codes.ContainerNotFound, `The container '${container}' was not found in container group '${rec.name}'.`, 404, 'containerName');
}
