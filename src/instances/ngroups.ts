// NGroups in the store: their records and the status the orchestrator reports back (their shapes: ngroup-view.ts), their
// long-running operations, and the actions on their members (start, stop, restart) that ACI takes itself.
import { randomBytes, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { GROUPS_PREFIX, NGROUP_STATUS_PREFIX, ngroupKey as ngroupKeyOf, ngroupOpKey, ngroupPrefix, ngroupStatusKey } from './keys.js';
import { checkResourceGroupName, checkSubscriptionId } from './model.js';
import { ACTIVE_ROLLING_UPDATE, checkStatus, type NGroupRecord, type NGroupStatus, type NGroupView, type RollingUpdateStatus } from './ngroup-view.js';
import { NGROUP_TYPE, applyUpdateRules, ngroupId, parseNGroupBody, patchedBody, type NGroupPut } from './ngroup-model.js';
import { checkResourceName, parseResourceId, PROFILE_TYPE, type ResourceRef } from './profile-model.js';
import type { ProfileHost, ProfileService } from './profiles.js';
import type { InstancesService } from './service.js';

export type NGroupOperationKind = 'create' | 'update' | 'delete' | 'start' | 'restart';

interface NGroupOperation {
  id: string;
  subscriptionId: string;
  location: string;
  kind: NGroupOperationKind;
  uid: string;
  key: string;
  generation: number;
  startTime: string;
  endTime?: string;
  status?: 'Succeeded' | 'Failed';
  error?: { code: string; message: string };
  /** start and restart: the members' own operations. */
  children?: { subscriptionId: string; id: string }[];
}

const lower = (s: string) => s.toLowerCase();
const ngroupKey = (r: ResourceRef) => ngroupKeyOf(r.subscriptionId, r.resourceGroup, r.name);
const etagOf = (modRevision: number) => `"${modRevision}"`;

const notFound = (name: string) => new BerthError(Codes.ResourceNotFound, `The Resource '${NGROUP_TYPE}/${name}' under resource group was not found.`, 404);
const busy = (name: string) => new BerthError(Codes.Conflict, `The NGroup '${name}' is being changed by another request; try again.`, 409, name);

export class NGroupService {
  private unwatch?: () => void;

  constructor(
    private readonly store: Store,
    private readonly instances: InstancesService,
    private readonly profiles: ProfileService,
    private readonly host: ProfileHost,
  ) {
    profiles.inUse = (id) => this.userOf(id);
  }

  /** Finishes deletes: an NGroup being deleted goes once its last member has (and at start, for deletes a crash interrupted). */
  async start() {
    this.unwatch = this.store.watch(GROUPS_PREFIX, (e) => {
      if (e.type === 'delete') void this.finishDeletes(e.key.split('/')[2]).catch(() => undefined);
    });
    for (const kv of await this.store.list<NGroupRecord>(ngroupPrefix())) if (kv.value.deleting) await this.finishDeletes(lower(kv.value.subscriptionId));
  }

  stop() {
    this.unwatch?.();
  }

  private check(ref: ResourceRef) {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    checkResourceName(ref.name, 'NGroup', 'ngroupsName');
  }

  /** PUT: creates or updates; the operation ends when the orchestrator has brought the members to this generation. */
  async put(ref: ResourceRef, body: unknown): Promise<{ created: boolean; view: NGroupView; operation: NGroupOperation }> {
    this.check(ref);
    return this.write(ref, () => parseNGroupBody(body, ref.subscriptionId));
  }

  /** PATCH (NGroupPatch): a JSON merge patch of the NGroup as it is, validated as a PUT of the result. */
  async patch(ref: ResourceRef, body: unknown): Promise<{ view: NGroupView; operation: NGroupOperation }> {
    this.check(ref);
    return this.write(ref, (old) => {
      if (!old) throw notFound(ref.name);
      return parseNGroupBody(patchedBody({ ...old, location: old.location }, body), ref.subscriptionId);
    }, true);
  }

  private async write(ref: ResourceRef, parse: (old?: NGroupRecord) => NGroupPut, mustExist = false) {
    const key = ngroupKey(ref);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<NGroupRecord>(key);
      const old = cur?.value;
      if (mustExist && !old) throw notFound(ref.name);
      if (old?.deleting) throw new BerthError(Codes.Conflict, `The NGroup '${ref.name}' is being deleted.`, 409, ref.name);
      const given = parse(old);
      const put = old ? applyUpdateRules(old, given) : given;
      const location = put.location === undefined ? old?.location ?? this.host.location : this.host.servedLocation(put.location);
      if (old && lower(location) !== lower(old.location))
        throw new BerthError(Codes.InvalidRequestContent, `The location of NGroup '${ref.name}' cannot be changed from '${old.location}' to '${location}'.`, 400, 'location');
      // the profile (and revision) it names must be there, as ACI requires of an NGroup's profile
      for (const [i, stub] of put.properties.containerGroupProfiles.entries()) {
        const profileRef = parseResourceId(stub.resource.id, PROFILE_TYPE)!;
        await this.profiles.resolve({ ref: profileRef, ...(stub.revision !== undefined && { revision: stub.revision }) }).catch((e: BerthError) => {
          throw new BerthError(e.code, e.message, e.status, `properties.containerGroupProfiles[${i}].${e.code === Codes.ContainerGroupProfileRevisionNotFound ? 'revision' : 'resource.id'}`);
        });
      }
      if (!old) await this.host.ensureResourceGroup(ref.subscriptionId, ref.resourceGroup, location);
      const changed = !old || !isDeepStrictEqual(old.properties, put.properties) || !isDeepStrictEqual(old.zones, put.zones);
      const rec: NGroupRecord = old
        ? { ...old, properties: put.properties, zones: put.zones, tags: put.tags, generation: old.generation + (changed ? 1 : 0) }
        : {
            uid: randomBytes(6).toString('hex'), subscriptionId: ref.subscriptionId, resourceGroup: ref.resourceGroup, name: ref.name, location,
            tags: put.tags, zones: put.zones, properties: put.properties, generation: 1, state: 'Running', deleting: false, createdAt: new Date().toISOString(),
          };
      const op = this.newOp(rec, old ? 'update' : 'create');
      // a change the orchestrator has nothing to do for (tags) is done at once
      if (!changed) Object.assign(op, { status: 'Succeeded', endTime: op.startTime });
      if ((await this.store.txn({ if: [{ key, modRevision: cur?.modRevision ?? 0 }], then: [{ put: key, value: rec }, { put: ngroupOpKey(op.id), value: op }] })).succeeded)
        return { created: !old, view: await this.view(rec), operation: op };
    }
    throw busy(ref.name);
  }

  async get(ref: ResourceRef): Promise<NGroupView> {
    return this.view(await this.mustGet(ref));
  }

  /** NGroups of a subscription, or of one resource group; `subscriptions` lists them across the subscriptions a caller may use. */
  async list(sub: string, rg?: string, page?: { startAfter?: string; limit?: number }): Promise<{ views: NGroupView[]; next?: string }> {
    checkSubscriptionId(sub);
    if (rg !== undefined) checkResourceGroupName(rg);
    return this.listUnder(ngroupPrefix(sub, rg), page);
  }

  /** berth: the NGroups of every subscription the caller may use (what an orchestrator watches). */
  async listAcross(subscriptions: string[] | '*', page?: { startAfter?: string; limit?: number }): Promise<{ views: NGroupView[]; next?: string }> {
    if (subscriptions === '*') return this.listUnder(ngroupPrefix(), page);
    const allowed = new Set(subscriptions.map(lower));
    const all = await this.listUnder(ngroupPrefix(), { startAfter: page?.startAfter, limit: 100_000 });
    const views = all.views.filter((v) => allowed.has(lower(v.record.subscriptionId)));
    const limit = page?.limit ?? 100;
    const shown = views.slice(0, limit);
    return { views: shown, next: views.length > limit ? ngroupKey(shown[shown.length - 1].record) : undefined };
  }

  private async listUnder(prefix: string, page?: { startAfter?: string; limit?: number }) {
    const limit = page?.limit ?? 100;
    const kvs = await this.store.list<NGroupRecord>(prefix, { startAfter: page?.startAfter, limit: limit + 1 });
    const shown = kvs.slice(0, limit);
    return { views: await Promise.all(shown.map((kv) => this.view(kv.value))), next: kvs.length > limit ? shown[shown.length - 1].key : undefined };
  }

  /**
   * berth extension: calls `onChange(subscriptionId, resourceGroup, name)` whenever an NGroup in scope
   * changes (its record or its status): a signal to read it again.
   */
  watch(scope: { subscriptionId?: string; resourceGroup?: string; subscriptions?: string[] | '*' }, onChange: (sub: string, rg: string, name: string) => void): () => void {
    const allowed = scope.subscriptions && scope.subscriptions !== '*' ? new Set(scope.subscriptions.map(lower)) : undefined;
    const prefix = ngroupPrefix(scope.subscriptionId, scope.resourceGroup);
    const byUid = new Map<string, NGroupRecord>();
    const tell = (r: NGroupRecord) => {
      if (!ngroupKey(r).startsWith(prefix) || (allowed && !allowed.has(lower(r.subscriptionId)))) return;
      onChange(r.subscriptionId, r.resourceGroup, r.name);
    };
    void this.store.list<NGroupRecord>(ngroupPrefix()).then((kvs) => kvs.forEach((kv) => byUid.set(kv.value.uid, kv.value)));
    const stopRecords = this.store.watch(ngroupPrefix(), (e) => {
      if (e.type === 'put') {
        const r = e.value as NGroupRecord;
        byUid.set(r.uid, r);
        tell(r);
      } else {
        const [, , sub, rg, name] = e.key.split('/');
        const gone = [...byUid.values()].find((r) => ngroupKey(r) === e.key);
        if (gone) byUid.delete(gone.uid);
        if (e.key.startsWith(prefix) && (!allowed || allowed.has(sub))) onChange(gone?.subscriptionId ?? sub, gone?.resourceGroup ?? rg, gone?.name ?? name);
      }
    });
    const stopStatus = this.store.watch(NGROUP_STATUS_PREFIX, (e) => {
      const r = byUid.get(e.key.slice(NGROUP_STATUS_PREFIX.length));
      if (r) tell(r);
    });
    return () => {
      stopRecords();
      stopStatus();
    };
  }

  /** DELETE: the members go (the orchestrator deletes them), then the NGroup; undefined when there was none. */
  async delete(ref: ResourceRef): Promise<NGroupOperation | undefined> {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    const key = ngroupKey(ref);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<NGroupRecord>(key);
      if (!cur) return undefined;
      const rec = { ...cur.value, deleting: true };
      const op = this.newOp(rec, 'delete');
      if ((await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ put: key, value: rec }, { put: ngroupOpKey(op.id), value: op }] })).succeeded) {
        await this.finishDeletes(lower(ref.subscriptionId));
        return op;
      }
    }
    throw busy(ref.name);
  }

  /** Marks every NGroup of a resource group deleted (the resource group is being deleted, and its groups with it). */
  async deleteAllIn(sub: string, rg: string): Promise<void> {
    for (const kv of await this.store.list<NGroupRecord>(ngroupPrefix(sub, rg))) await this.delete(kv.value);
  }

  private async finishDeletes(sub: string) {
    for (const kv of await this.store.list<NGroupRecord>(ngroupPrefix(sub))) {
      if (!kv.value.deleting) continue;
      if ((await this.instances.listByOrchestrator(kv.value.subscriptionId, ngroupId(kv.value))).length > 0) continue;
      await this.store.txn({ if: [{ key: kv.key, modRevision: kv.modRevision }], then: [{ delete: kv.key }, { delete: ngroupStatusKey(kv.value.uid) }] });
    }
  }

  /**
   * start, stop and restart act on every member at once, as ACI's do. Stop is synchronous (as a
   * group's): it returns once the members have stopped. A stopped NGroup's members are neither
   * replaced nor scaled until it is started again.
   */
  async runAction(ref: ResourceRef, action: 'start' | 'stop' | 'restart'): Promise<NGroupOperation> {
    const key = ngroupKey(ref);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<NGroupRecord>(key);
      if (!cur) throw notFound(ref.name);
      if (cur.value.deleting) throw new BerthError(Codes.Conflict, `The NGroup '${ref.name}' is being deleted.`, 409, ref.name);
      const rec: NGroupRecord = { ...cur.value, state: action === 'stop' ? 'Stopped' : 'Running' };
      if (!(await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ put: key, value: rec }] })).succeeded) continue;
      const members = (await this.instances.listByOrchestrator(rec.subscriptionId, ngroupId(rec))).filter((m) => !m.deleting);
      const results = await Promise.all(members.map((m) => {
        const member = { subscriptionId: m.subscriptionId, resourceGroup: m.resourceGroup, name: m.name };
        // a member that is stopped already is restarted by being started
        const run = action === 'restart' && m.state === 'Stopped' ? 'start' : action;
        return this.instances.setRunState(member, run).then((op) => ({ subscriptionId: m.subscriptionId, id: op.id }), (e: BerthError) => {
          if (e.status === 404) return undefined; // deleted meanwhile
          throw e;
        });
      }));
      const op = this.newOp(rec, action === 'restart' ? 'restart' : 'start');
      op.children = results.filter((x) => x !== undefined);
      await this.store.put(ngroupOpKey(op.id), op);
      return op;
    }
    throw busy(ref.name);
  }

  /** berth: the status document with the NGroup's generation and the ETag to write it back with. */
  async getStatus(ref: ResourceRef): Promise<{ generation: number; etag: string; status: NGroupStatus }> {
    const rec = await this.mustGet(ref);
    const kv = await this.store.get<NGroupStatus>(ngroupStatusKey(rec.uid));
    return { generation: rec.generation, etag: etagOf(kv?.modRevision ?? 0), status: kv?.value ?? {} };
  }

  /** berth: replaces the status document; with `ifMatch`, only if it is still the one of that ETag. */
  async putStatus(ref: ResourceRef, status: NGroupStatus, ifMatch?: string): Promise<{ etag: string }> {
    const rec = await this.mustGet(ref);
    checkStatus(status);
    const key = ngroupStatusKey(rec.uid);
    const cur = await this.store.get(key);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== etagOf(cur?.modRevision ?? 0))
      throw new BerthError(Codes.PreconditionFailed, `The status of NGroup '${ref.name}' has changed since it was read (ETag ${etagOf(cur?.modRevision ?? 0)}).`, 412);
    const r = await this.store.txn({ if: [{ key: ngroupKey(rec), exists: true }, { key, modRevision: cur?.modRevision ?? 0 }], then: [{ put: key, value: status }] });
    if (!r.succeeded) throw new BerthError(Codes.PreconditionFailed, `The status of NGroup '${ref.name}' changed while it was written.`, 412);
    return { etag: etagOf(r.revision) };
  }

  /** The NGroup's latest rolling update, as Microsoft's docs describe `latestRollingUpdate`. */
  async latestRollingUpdate(ref: ResourceRef): Promise<RollingUpdateStatus> {
    const rec = await this.mustGet(ref);
    const update = (await this.store.get<NGroupStatus>(ngroupStatusKey(rec.uid)))?.value.rollingUpdate;
    if (!update) throw new BerthError(Codes.RollingUpdateNotFound, `The NGroup '${ref.name}' has had no rolling update.`, 404);
    return update;
  }

  /** cancelRollingUpdate: the update stops where it is (members stay on the revision they have) and cannot be resumed. */
  async cancelRollingUpdate(ref: ResourceRef): Promise<RollingUpdateStatus> {
    const rec = await this.mustGet(ref);
    const key = ngroupStatusKey(rec.uid);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<NGroupStatus>(key);
      const update = cur?.value.rollingUpdate;
      if (!cur || !update || !ACTIVE_ROLLING_UPDATE.includes(update.state))
        throw new BerthError(Codes.RollingUpdateNotInProgress, `The NGroup '${ref.name}' has no rolling update in progress${update ? ` (the latest is ${update.state})` : ''}.`, 409);
      const now = new Date().toISOString();
      const cancelled: RollingUpdateStatus = { ...update, state: 'Cancelled', lastAction: 'Cancel', lastActionTime: now, finishTime: now };
      if ((await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ put: key, value: { ...cur.value, rollingUpdate: cancelled } }] })).succeeded) return cancelled;
    }
    throw busy(ref.name);
  }

  async operation(sub: string, id: string) {
    const kv = await this.store.get<NGroupOperation>(ngroupOpKey(id));
    if (!kv || lower(kv.value.subscriptionId) !== lower(sub)) throw new BerthError(Codes.NotFound, `The operation '${id}' was not found.`, 404);
    const op = kv.value;
    if (!op.status) {
      const outcome = await this.outcome(op);
      if (outcome) {
        Object.assign(op, outcome, { endTime: new Date().toISOString() });
        await this.store.txn({ if: [{ key: kv.key, modRevision: kv.modRevision }], then: [{ put: kv.key, value: op }] });
      }
    }
    return { id: op.id, name: op.id, status: op.status ?? 'InProgress', startTime: op.startTime, ...(op.endTime && { endTime: op.endTime }), ...(op.error && { error: op.error }) };
  }

  private async outcome(op: NGroupOperation): Promise<Pick<NGroupOperation, 'status' | 'error'> | undefined> {
    const rec = (await this.store.get<NGroupRecord>(op.key))?.value;
    if (op.kind === 'delete') return !rec || rec.uid !== op.uid ? { status: 'Succeeded' } : undefined;
    if (!rec || rec.uid !== op.uid) return { status: 'Failed', error: { code: Codes.ResourceNotFound, message: 'The NGroup was deleted before the operation completed.' } };
    if (op.kind === 'start' || op.kind === 'restart') {
      const children = await Promise.all((op.children ?? []).map((c) => this.instances.operation(c.subscriptionId, c.id).catch(() => ({ status: 'Succeeded' as const, error: undefined }))));
      const failed = children.find((c) => c.status === 'Failed');
      if (failed) return { status: 'Failed', error: failed.error ?? { code: Codes.RuntimeError, message: 'A member failed to start.' } };
      return children.every((c) => c.status === 'Succeeded') ? { status: 'Succeeded' } : undefined;
    }
    const p = (await this.store.get<NGroupStatus>(ngroupStatusKey(rec.uid)))?.value.provisioning;
    if (!p || p.generation < op.generation) return undefined;
    return p.state === 'Failed' ? { status: 'Failed', error: p.error ?? { code: Codes.RuntimeError, message: 'The NGroup failed to provision.' } } : { status: 'Succeeded' };
  }

  /** The NGroup (not being deleted) that references a profile, by the profile's id in lower case. */
  private async userOf(profileId: string): Promise<string | undefined> {
    const [, , sub] = profileId.split('/');
    for (const kv of await this.store.list<NGroupRecord>(ngroupPrefix(sub)))
      if (!kv.value.deleting && kv.value.properties.containerGroupProfiles.some((s) => lower(s.resource.id) === profileId)) return kv.value.name;
    return undefined;
  }

  private newOp(rec: NGroupRecord, kind: NGroupOperationKind): NGroupOperation {
    return { id: randomUUID(), subscriptionId: rec.subscriptionId, location: rec.location, kind, uid: rec.uid, key: ngroupKey(rec), generation: rec.generation, startTime: new Date().toISOString() };
  }

  private async mustGet(ref: ResourceRef): Promise<NGroupRecord> {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    const kv = await this.store.get<NGroupRecord>(ngroupKey(ref));
    if (!kv) throw notFound(ref.name);
    return kv.value;
  }

  private async view(rec: NGroupRecord): Promise<NGroupView> {
    const status = (await this.store.get<NGroupStatus>(ngroupStatusKey(rec.uid)))?.value ?? {};
    const p = status.provisioning;
    const provisioningState = rec.deleting ? 'Deleting'
      : p && p.generation >= rec.generation ? p.state
        : rec.generation === 1 && !p ? 'Creating' : 'Updating';
    return { record: rec, status, provisioningState };
  }
}
