// Resource groups as the instances service keeps them: created with their first container group, deleted with all of theirs (an operation to poll).
import { randomUUID } from 'node:crypto';
import type { ResourceGroupPut, ResourceGroupRecord } from '../arm/resources.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { groupPrefix, opKey, rgKey } from './keys.js';
import { checkResourceGroupName, checkSubscriptionId } from './model.js';
import { locationKey, type GroupRecord, type OperationRecord } from './records.js';

export const newResourceGroup = (sub: string, rg: string, location: string, tags: Record<string, string>): ResourceGroupRecord =>
  ({ subscriptionId: sub, name: rg, location, tags, deleting: false, createdAt: new Date().toISOString() });

export class ResourceGroupRecords {
  constructor(
    private readonly store: Store,
    /** The location berth stores for one a request names (refused with ARM's error when berth does not serve it). */
    private readonly servedLocation: (given: string) => string,
    /** Starts the deletion of one container group. */
    private readonly deleteGroup: (sub: string, rg: string, name: string) => Promise<unknown>,
  ) {}

  async put(sub: string, rg: string, b: ResourceGroupPut): Promise<{ created: boolean; rg: ResourceGroupRecord }> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const { tags } = b;
    const key = rgKey(sub, rg);
    const cur = await this.store.get<ResourceGroupRecord>(key);
    if (cur?.value.deleting) throw new BerthError('ResourceGroupBeingDeleted', `The resource group '${rg}' is in deprovisioning state and cannot perform this operation.`, 409);
    if (cur && locationKey(cur.value.location) !== locationKey(b.location))
      throw new BerthError('InvalidResourceGroupLocation', `Invalid resource group location '${b.location.slice(0, 100)}'. The Resource group already exists in location '${cur.value.location}'.`, 409);
    const rec = cur ? { ...cur.value, tags } : newResourceGroup(sub, rg, this.servedLocation(b.location), tags);
    if (!(await this.store.txn({ if: [{ key, modRevision: cur?.modRevision ?? 0 }], then: [{ put: key, value: rec }] })).succeeded)
      throw new BerthError(Codes.Conflict, `The resource group '${rg}' is being changed by another request; try again.`, 409);
    return { created: !cur, rg: rec };
  }

  async get(sub: string, rg: string): Promise<ResourceGroupRecord> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const kv = await this.store.get<ResourceGroupRecord>(rgKey(sub, rg));
    if (!kv) throw new BerthError(Codes.ResourceGroupNotFound, `Resource group '${rg}' could not be found.`, 404);
    return kv.value;
  }

  async list(sub: string): Promise<ResourceGroupRecord[]> {
    checkSubscriptionId(sub);
    return (await this.store.list<ResourceGroupRecord>(`/rgs/${sub.toLowerCase()}/`)).map((kv) => kv.value);
  }

  /** Deletes the resource group and every container group in it; an operation to poll. */
  async delete(sub: string, rg: string): Promise<OperationRecord | undefined> {
    checkSubscriptionId(sub);
    checkResourceGroupName(rg);
    const key = rgKey(sub, rg);
    const cur = await this.store.get<ResourceGroupRecord>(key);
    if (!cur) return undefined;
    const op: OperationRecord = {
      id: randomUUID(), subscriptionId: sub, location: cur.value.location, kind: 'deleteResourceGroup', uid: '', groupKey: key, generation: 0, startTime: new Date().toISOString(),
    };
    await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ put: key, value: { ...cur.value, deleting: true } }, { put: opKey(op.id), value: op }] });
    for (const kv of await this.store.list<GroupRecord>(groupPrefix(sub, rg)))
      if (!kv.value.deleting) await this.deleteGroup(sub, kv.value.resourceGroup, kv.value.name);
    await this.finishDelete(sub, rg);
    return op;
  }

  /** A resource group being deleted goes once its last container group has. */
  async finishDelete(sub: string, rg: string) {
    const kv = await this.store.get<ResourceGroupRecord>(rgKey(sub, rg));
    if (!kv?.value.deleting) return;
    if ((await this.store.list(groupPrefix(sub, rg), { limit: 1 })).length > 0) return;
    await this.store.txn({ if: [{ key: kv.key, modRevision: kv.modRevision }], then: [{ delete: kv.key }] });
  }
}
