// The container instances core: typed actions on container groups, LROs, and the bridge to the agent.
import { randomBytes, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { AgentHandle, DesiredGroup, GroupStatus, LogOptions } from '../agent/types.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { type GroupSpec, type Limits, checkGroupName, checkResourceGroupName, checkSubscriptionId, defaultLimits, parseGroupSpec } from './model.js';

export const PROVIDER = 'Microsoft.ContainerInstance';
export const GROUP_TYPE = `${PROVIDER}/containerGroups`;

export interface GroupRecord {
  uid: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  spec: GroupSpec;
  /** Bumped by every change the agent must act on: spec update, start, stop, restart. */
  generation: number;
  state: 'Running' | 'Stopped';
  deleting: boolean;
  node: string;
  createdAt: string;
}

export type OperationKind = 'create' | 'update' | 'delete' | 'start' | 'stop' | 'restart' | 'deleteResourceGroup';

export interface OperationRecord {
  id: string;
  subscriptionId: string;
  location: string;
  kind: OperationKind;
  uid: string;
  groupKey: string;
  generation: number;
  startTime: string;
  endTime?: string;
  status?: 'Succeeded' | 'Failed';
  error?: { code: string; message: string };
}

export interface OperationView {
  id: string;
  name: string;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  startTime: string;
  endTime?: string;
  error?: { code: string; message: string };
}

export interface GroupView {
  record: GroupRecord;
  /** The agent's latest report; of an older generation while a change is being applied. */
  status?: GroupStatus;
  provisioningState: 'Pending' | 'Creating' | 'Succeeded' | 'Failed' | 'Deleting';
}

export interface ResourceGroupRecord {
  subscriptionId: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  deleting: boolean;
  createdAt: string;
}

export interface Quotas {
  containerGroups: number;
  /** Sum of CPU requests of a subscription's groups in one location. */
  standardCores: number;
}

export interface ServiceOptions {
  limits?: Limits;
  location?: string;
  quotas?: Quotas;
}

const groupKey = (sub: string, rg: string, name: string) => `/groups/${sub.toLowerCase()}/${rg.toLowerCase()}/${name}`;
const statusKey = (uid: string) => `/status/${uid}`;
const opKey = (id: string) => `/ops/${id}`;
const rgKey = (sub: string, rg: string) => `/rgs/${sub.toLowerCase()}/${rg.toLowerCase()}`;
const coresOf = (spec: GroupSpec) => spec.containers.reduce((n, c) => n + c.requests.cpu, 0);

export class InstancesService {
  private limits: Limits;
  readonly location: string;
  readonly quotas: Quotas;
  /** uid -> store key of every group record known to exist. */
  private live = new Map<string, string>();
  private pendingStatus = new Map<string, GroupStatus>();
  private flushTimer?: NodeJS.Timeout;
  private unwatch?: () => void;

  constructor(
    private store: Store,
    private agent: AgentHandle,
    opts: ServiceOptions = {},
  ) {
    this.limits = opts.limits ?? defaultLimits;
    this.location = opts.location ?? 'local';
    this.quotas = opts.quotas ?? { containerGroups: 1000, standardCores: 1000 };
  }

  /** Hands the agent the whole desired state (it re-adopts what runs and cleans the rest), then follows changes. */
  async start() {
    this.agent.onStatus((s) => {
      if (!this.live.has(s.uid)) return;
      this.pendingStatus.set(s.uid, s);
      this.flushTimer ??= setTimeout(() => void this.flushStatus(), 50);
    });
    this.agent.onRemoved((uid) => void this.forget(uid));
    this.unwatch = this.store.watch('/groups/', (e) => {
      if (e.type === 'put') this.dispatch(e.value as GroupRecord);
    });
    const records = (await this.store.list<GroupRecord>('/groups/')).map((kv) => kv.value);
    const all = [];
    for (const r of records) {
      this.live.set(r.uid, groupKey(r.subscriptionId, r.resourceGroup, r.name));
      if (r.deleting) continue;
      all.push({ desired: this.desired(r), lastStatus: (await this.store.get<GroupStatus>(statusKey(r.uid)))?.value });
    }
    await this.agent.sync(all);
    for (const r of records) if (r.deleting) this.agent.remove(r.uid);
  }

  async stop() {
    this.unwatch?.();
    clearTimeout(this.flushTimer);
    await this.flushStatus();
  }

  private dispatch(r: GroupRecord) {
    this.live.set(r.uid, groupKey(r.subscriptionId, r.resourceGroup, r.name));
    if (r.deleting) this.agent.remove(r.uid);
    else this.agent.apply(this.desired(r));
  }

  private desired(r: GroupRecord): DesiredGroup {
    return { uid: r.uid, hostname: r.name, generation: r.generation, spec: r.spec, state: r.state };
  }

  private async flushStatus() {
    this.flushTimer = undefined;
    const batch = [...this.pendingStatus.values()];
    this.pendingStatus.clear();
    if (batch.length === 0) return;
    await this.store.txn([], batch.filter((s) => this.live.has(s.uid)).map((s) => ({ put: statusKey(s.uid), value: s })));
  }

  private async forget(uid: string) {
    const key = this.live.get(uid);
    this.live.delete(uid);
    this.pendingStatus.delete(uid);
    const rec = key ? await this.store.get<GroupRecord>(key) : undefined;
    // Only the deleting record of this uid goes: a group re-created under the same name stays.
    const ops = rec && rec.value.uid === uid && rec.value.deleting ? [{ delete: rec.key }] : [];
    await this.store.txn([], [...ops, { delete: statusKey(uid) }]);
    if (rec) await this.finishResourceGroupDelete(rec.value.subscriptionId, rec.value.resourceGroup);
  }

  // --- actions ---

  async createOrUpdate(sub: string, rg: string, name: string, body: unknown): Promise<{ created: boolean; view: GroupView; operation: OperationRecord }> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    checkGroupName(name);
    const { spec, location, tags } = parseGroupSpec(body, this.limits);
    const key = groupKey(sub, rg, name);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<GroupRecord>(key);
      const old = cur?.value;
      if (old?.deleting) throw new BerthError(Codes.Conflict, `The container group '${name}' is being deleted.`, 409, name);
      if (old && location && location.toLowerCase() !== old.location.toLowerCase())
        throw new BerthError(Codes.InvalidRequestContent, `The location of container group '${name}' cannot be changed from '${old.location}' to '${location}'.`, 400, 'location');
      if (old && isDeepStrictEqual(old.spec, spec) && isDeepStrictEqual(old.tags, tags)) {
        // An identical PUT is a no-op that still answers as an LRO.
        const op = this.newOp(old, 'update');
        op.status = 'Succeeded';
        op.endTime = op.startTime;
        await this.store.put(opKey(op.id), op);
        return { created: false, view: await this.view(old), operation: op };
      }
      await this.checkHostPorts(key, spec);
      const rgKv = await this.store.get<ResourceGroupRecord>(rgKey(sub, rg));
      if (rgKv?.value.deleting) throw new BerthError(Codes.Conflict, `The resource group '${rg}' is being deleted.`, 409, 'resourceGroupName');
      const rec: GroupRecord = old
        ? { ...old, spec, tags, generation: old.generation + (isDeepStrictEqual(old.spec, spec) ? 0 : 1) }
        : {
            uid: randomBytes(6).toString('hex'), subscriptionId: sub, resourceGroup: rg, name, location: location ?? this.location,
            tags, spec, generation: 1, state: 'Running', deleting: false, node: this.agent.name, createdAt: new Date().toISOString(),
          };
      await this.checkQuota(rec, old);
      const op = this.newOp(rec, old ? 'update' : 'create');
      // A group's resource group comes into being with it, as when `az group create` had been run.
      const rgOps = rgKv ? [] : [{ put: rgKey(sub, rg), value: this.newRg(sub, rg, rec.location, {}) }];
      // The record and its operation land together or not at all: a crash here leaves no half-created group.
      if (await this.store.txn(
        [{ key, modRevision: cur?.modRevision ?? 0 }, { key: rgKey(sub, rg), modRevision: rgKv?.modRevision ?? 0 }],
        [{ put: key, value: rec }, { put: opKey(op.id), value: op }, ...rgOps],
      ))
        return { created: !old, view: await this.view(rec), operation: op };
    }
    throw new BerthError(Codes.Conflict, `The container group '${name}' is being changed by another request; try again.`, 409, name);
  }

  /** PATCH: tags only, as ACI allows. */
  async updateTags(sub: string, rg: string, name: string, body: unknown): Promise<GroupView> {
    const tags = parseTags(body);
    const key = groupKey(sub, rg, name);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<GroupRecord>(key);
      if (!cur) throw notFound(name);
      const rec = { ...cur.value, tags };
      if (await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: rec }])) return this.view(rec);
    }
    throw new BerthError(Codes.Conflict, `The container group '${name}' is being changed by another request; try again.`, 409, name);
  }

  async putResourceGroup(sub: string, rg: string, body: unknown): Promise<{ created: boolean; rg: ResourceGroupRecord }> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    if (typeof b.location !== 'string' || b.location === '')
      throw new BerthError('LocationRequired', 'The location property is required for this definition.', 400, 'location');
    const tags = b.tags === undefined ? {} : parseTags({ tags: b.tags });
    const key = rgKey(sub, rg);
    const cur = await this.store.get<ResourceGroupRecord>(key);
    if (cur?.value.deleting) throw new BerthError('ResourceGroupBeingDeleted', `The resource group '${rg}' is in deprovisioning state and cannot perform this operation.`, 409);
    if (cur && cur.value.location.toLowerCase() !== b.location.toLowerCase())
      throw new BerthError('InvalidResourceGroupLocation', `Invalid resource group location '${b.location}'. The Resource group already exists in location '${cur.value.location}'.`, 409);
    const rec = cur ? { ...cur.value, tags } : this.newRg(sub, rg, b.location, tags);
    if (!(await this.store.txn([{ key, modRevision: cur?.modRevision ?? 0 }], [{ put: key, value: rec }])))
      throw new BerthError(Codes.Conflict, `The resource group '${rg}' is being changed by another request; try again.`, 409);
    return { created: !cur, rg: rec };
  }

  async getResourceGroup(sub: string, rg: string): Promise<ResourceGroupRecord> {
    checkSubscriptionId(sub);
    const kv = await this.store.get<ResourceGroupRecord>(rgKey(sub, rg));
    if (!kv) throw new BerthError(Codes.ResourceGroupNotFound, `Resource group '${rg}' could not be found.`, 404);
    return kv.value;
  }

  async listResourceGroups(sub: string): Promise<ResourceGroupRecord[]> {
    checkSubscriptionId(sub);
    return (await this.store.list<ResourceGroupRecord>(`/rgs/${sub.toLowerCase()}/`)).map((kv) => kv.value);
  }

  /** Deletes the resource group and every container group in it; an operation to poll. */
  async deleteResourceGroup(sub: string, rg: string): Promise<OperationRecord | undefined> {
    const key = rgKey(sub, rg);
    const cur = await this.store.get<ResourceGroupRecord>(key);
    if (!cur) return undefined;
    const op: OperationRecord = {
      id: randomUUID(), subscriptionId: sub, location: cur.value.location, kind: 'deleteResourceGroup', uid: '', groupKey: key, generation: 0, startTime: new Date().toISOString(),
    };
    await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: { ...cur.value, deleting: true } }, { put: opKey(op.id), value: op }]);
    for (const kv of await this.store.list<GroupRecord>(`/groups/${sub.toLowerCase()}/${rg.toLowerCase()}/`))
      if (!kv.value.deleting) await this.delete(sub, kv.value.resourceGroup, kv.value.name);
    await this.finishResourceGroupDelete(sub, rg);
    return op;
  }

  private async finishResourceGroupDelete(sub: string, rg: string) {
    const kv = await this.store.get<ResourceGroupRecord>(rgKey(sub, rg));
    if (!kv?.value.deleting) return;
    if ((await this.store.list(`/groups/${sub.toLowerCase()}/${rg.toLowerCase()}/`, { limit: 1 })).length > 0) return;
    await this.store.txn([{ key: kv.key, modRevision: kv.modRevision }], [{ delete: kv.key }]);
  }

  limitsInForce(): Limits {
    return this.limits;
  }

  cachedImages(): Promise<string[]> {
    return this.agent.cachedImages();
  }

  async usage(sub: string, location: string) {
    checkSubscriptionId(sub);
    const groups = (await this.store.list<GroupRecord>(`/groups/${sub.toLowerCase()}/`)).map((kv) => kv.value)
      .filter((g) => g.location.toLowerCase() === location.toLowerCase());
    return {
      containerGroups: { current: groups.length, limit: this.quotas.containerGroups },
      standardCores: { current: groups.reduce((n, g) => n + coresOf(g.spec), 0), limit: this.quotas.standardCores },
    };
  }

  async get(sub: string, rg: string, name: string): Promise<GroupView> {
    return this.view(await this.mustGet(sub, rg, name));
  }

  async list(sub: string, rg?: string, page?: { startAfter?: string; limit?: number }): Promise<{ views: GroupView[]; next?: string }> {
    checkSubscriptionId(sub);
    const prefix = rg ? `/groups/${sub.toLowerCase()}/${rg.toLowerCase()}/` : `/groups/${sub.toLowerCase()}/`;
    const limit = page?.limit ?? 100;
    const kvs = await this.store.list<GroupRecord>(prefix, { startAfter: page?.startAfter, limit: limit + 1 });
    const more = kvs.length > limit;
    const shown = kvs.slice(0, limit);
    return { views: await Promise.all(shown.map((kv) => this.view(kv.value))), next: more ? shown[shown.length - 1].key : undefined };
  }

  async delete(sub: string, rg: string, name: string): Promise<{ view: GroupView; operation: OperationRecord } | undefined> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const key = groupKey(sub, rg, name);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<GroupRecord>(key);
      if (!cur) return undefined;
      const rec: GroupRecord = { ...cur.value, deleting: true };
      const op = this.newOp(rec, 'delete');
      if (await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: rec }, { put: opKey(op.id), value: op }]))
        return { view: await this.view(rec), operation: op };
    }
    throw new BerthError(Codes.Conflict, `The container group '${name}' is being changed by another request; try again.`, 409, name);
  }

  /** start, stop and restart: each bumps the generation so the agent rebuilds or stops the group. */
  async setRunState(sub: string, rg: string, name: string, kind: 'start' | 'stop' | 'restart'): Promise<OperationRecord> {
    const key = groupKey(sub, rg, name);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<GroupRecord>(key);
      if (!cur) throw notFound(name);
      if (cur.value.deleting) throw new BerthError(Codes.Conflict, `The container group '${name}' is being deleted.`, 409, name);
      if (kind === 'restart' && cur.value.state === 'Stopped')
        throw new BerthError(Codes.ContainerGroupNotRunning, `The container group '${name}' is stopped; start it instead.`, 409, name);
      const rec: GroupRecord = { ...cur.value, state: kind === 'stop' ? 'Stopped' : 'Running', generation: cur.value.generation + 1 };
      const op = this.newOp(rec, kind);
      if (await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: rec }, { put: opKey(op.id), value: op }]))
        return op;
    }
    throw new BerthError(Codes.Conflict, `The container group '${name}' is being changed by another request; try again.`, 409, name);
  }

  async logs(sub: string, rg: string, name: string, container: string, opts: LogOptions): Promise<string> {
    const rec = await this.mustGet(sub, rg, name);
    this.mustHaveContainer(rec, container);
    return this.agent.logs(rec.uid, container, opts);
  }

  async followLogs(sub: string, rg: string, name: string, container: string, opts: LogOptions, onChunk: (s: string) => void, signal: AbortSignal) {
    const rec = await this.mustGet(sub, rg, name);
    this.mustHaveContainer(rec, container);
    return this.agent.followLogs(rec.uid, container, opts, onChunk, signal);
  }

  async exec(sub: string, rg: string, name: string, container: string, argv: string[]) {
    const rec = await this.mustGet(sub, rg, name);
    this.mustHaveContainer(rec, container);
    return this.agent.exec(rec.uid, container, argv);
  }

  async operation(sub: string, id: string): Promise<OperationView> {
    const kv = await this.store.get<OperationRecord>(opKey(id));
    if (!kv || kv.value.subscriptionId.toLowerCase() !== sub.toLowerCase())
      throw new BerthError(Codes.NotFound, `The operation '${id}' was not found.`, 404);
    const op = kv.value;
    if (!op.status) {
      const outcome = await this.outcome(op);
      if (outcome) {
        Object.assign(op, outcome, { endTime: new Date().toISOString() });
        await this.store.txn([{ key: opKey(id), modRevision: kv.modRevision }], [{ put: opKey(id), value: op }]);
      }
    }
    return { id: op.id, name: op.id, status: op.status ?? 'InProgress', startTime: op.startTime, ...(op.endTime && { endTime: op.endTime }), ...(op.error && { error: op.error }) };
  }

  // --- helpers ---

  private async outcome(op: OperationRecord): Promise<Pick<OperationRecord, 'status' | 'error'> | undefined> {
    if (op.kind === 'deleteResourceGroup') return (await this.store.get(op.groupKey)) ? undefined : { status: 'Succeeded' };
    const rec = (await this.store.get<GroupRecord>(op.groupKey))?.value;
    if (op.kind === 'delete') return !rec || rec.uid !== op.uid ? { status: 'Succeeded' } : undefined;
    if (!rec || rec.uid !== op.uid)
      return { status: 'Failed', error: { code: Codes.ResourceNotFound, message: 'The container group was deleted before the operation completed.' } };
    const st = (await this.store.get<GroupStatus>(statusKey(op.uid)))?.value;
    if (!st || st.generation < op.generation || st.provisioning === 'Creating') return undefined;
    if (st.provisioning === 'Failed') return { status: 'Failed', error: st.error ?? { code: Codes.RuntimeError, message: 'The container group failed to provision.' } };
    return { status: 'Succeeded' };
  }

  private newRg(sub: string, rg: string, location: string, tags: Record<string, string>): ResourceGroupRecord {
    return { subscriptionId: sub, name: rg, location, tags, deleting: false, createdAt: new Date().toISOString() };
  }

  /** ACI's per-subscription, per-location quotas, answered with ACI's codes. */
  private async checkQuota(rec: GroupRecord, old: GroupRecord | undefined) {
    const u = await this.usage(rec.subscriptionId, rec.location);
    if (!old && u.containerGroups.current + 1 > u.containerGroups.limit)
      throw new BerthError(Codes.ContainerGroupQuotaReached, `Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' exceeded in region '${rec.location}'. Limit: '${u.containerGroups.limit}', Usage: '${u.containerGroups.current}' Requested: '1'.`, 409);
    const extra = coresOf(rec.spec) - (old ? coresOf(old.spec) : 0);
    if (extra > 0 && u.standardCores.current + extra > u.standardCores.limit)
      throw new BerthError('StandardCoresQuotaReached', `Resource type 'Microsoft.ContainerInstance/containerGroups' cores quota 'StandardCores' exceeded in region '${rec.location}'. Limit: '${u.standardCores.limit}', Usage: '${u.standardCores.current}' Requested: '${extra}'.`, 409);
  }

  private newOp(rec: GroupRecord, kind: OperationKind): OperationRecord {
    return {
      id: randomUUID(), subscriptionId: rec.subscriptionId, location: rec.location, kind, uid: rec.uid,
      groupKey: groupKey(rec.subscriptionId, rec.resourceGroup, rec.name), generation: rec.generation, startTime: new Date().toISOString(),
    };
  }

  private async mustGet(sub: string, rg: string, name: string): Promise<GroupRecord> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const kv = await this.store.get<GroupRecord>(groupKey(sub, rg, name));
    if (!kv) throw notFound(name);
    return kv.value;
  }

  private mustHaveContainer(rec: GroupRecord, container: string) {
    // Init containers' logs can be read too (their names share the containers' namespace).
    if (!rec.spec.containers.some((c) => c.name === container) && !rec.spec.initContainers?.some((c) => c.name === container))
      throw new BerthError(Codes.ContainerNotFound, `The container '${container}' was not found in container group '${rec.name}'.`, 404, 'containerName');
  }

  /** Public ports are published on the host, so two groups on one host cannot share one. */
  private async checkHostPorts(key: string, spec: GroupSpec) {
    if (spec.ipAddress?.type !== 'Public') return;
    const mine = new Set(spec.ipAddress.ports.map((p) => `${p.port}/${p.protocol}`));
    for (const kv of await this.store.list<GroupRecord>('/groups/')) {
      if (kv.key === key || kv.value.spec.ipAddress?.type !== 'Public') continue;
      const clash = kv.value.spec.ipAddress.ports.find((p) => mine.has(`${p.port}/${p.protocol}`));
      if (clash)
        throw new BerthError(Codes.PortAlreadyInUse, `The port ${clash.port}/${clash.protocol} is already published by container group '${kv.value.name}' on this host.`, 409, 'properties.ipAddress.ports');
    }
  }

  private async view(rec: GroupRecord): Promise<GroupView> {
    const status = (await this.store.get<GroupStatus>(statusKey(rec.uid)))?.value;
    let provisioningState: GroupView['provisioningState'];
    if (rec.deleting) provisioningState = 'Deleting';
    else if (!status || status.generation < rec.generation) provisioningState = 'Pending';
    else provisioningState = status.provisioning;
    return { record: rec, status, provisioningState };
  }
}

function parseTags(body: unknown): Record<string, string> {
  const t = (body as { tags?: unknown } | undefined)?.tags ?? {};
  if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new BerthError(Codes.InvalidRequestContent, "'tags' must be an object of strings.", 400, 'tags');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'string') throw new BerthError(Codes.InvalidRequestContent, `The tag '${k}' must have a string value.`, 400, `tags.${k}`);
    if (k.length > 512 || v.length > 256) throw new BerthError('InvalidTag', `The tag '${k}' is too long (names up to 512, values up to 256 characters).`, 400, `tags.${k}`);
    out[k] = v;
  }
  if (Object.keys(out).length > 50) throw new BerthError('InvalidTag', 'A resource may have at most 50 tags.', 400, 'tags');
  return out;
}

const notFound = (name: string) =>
  new BerthError(Codes.ResourceNotFound, `The Resource '${GROUP_TYPE}/${name}' under resource group was not found.`, 404);
