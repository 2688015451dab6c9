// Long-running operations: recorded with the change they follow, and their outcome decided when polled, from the group's record and its host's status.
import { randomUUID } from 'node:crypto';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import type { StoredStatus } from './hosts/gateway.js';
import { groupKey, opKey, statusKey } from './keys.js';
import type { GroupRecord, OperationKind, OperationRecord, OperationView } from './records.js';

export function newOperation(rec: GroupRecord, kind: OperationKind): OperationRecord {
  return {
    id: randomUUID(), subscriptionId: rec.subscriptionId, location: rec.location, kind, uid: rec.uid,
    groupKey: groupKey(rec.subscriptionId, rec.resourceGroup, rec.name), generation: rec.generation, startTime: new Date().toISOString(),
  };
}

/**
 * The operation as ARM's operation-status endpoint shows it; an outcome found now is recorded. On a cluster
 * (`movesRefused`), a host's refusal for a port its own sockets hold is no outcome: the group is moved to another
 * host, and the operation ends with what that host reports.
 */
export async function readOperation(store: Store, sub: string, id: string, movesRefused = false): Promise<OperationView> {
  const kv = await store.get<OperationRecord>(opKey(id));
  if (!kv || kv.value.subscriptionId.toLowerCase() !== sub.toLowerCase())
    throw new BerthError(Codes.NotFound, `The operation '${id}' was not found.`, 404);
  const op = kv.value;
  if (!op.status) {
    const found = await outcome(store, op, movesRefused);
    if (found) {
      Object.assign(op, found, { endTime: new Date().toISOString() });
      await store.txn({ if: [{ key: opKey(id), modRevision: kv.modRevision }], then: [{ put: opKey(id), value: op }] });
    }
  }
  return { id: op.id, name: op.id, status: op.status ?? 'InProgress', startTime: op.startTime, ...(op.endTime && { endTime: op.endTime }), ...(op.error && { error: op.error }) };
}

/** Done once the record is gone (deletes), or the host reported the operation's generation provisioned (or failed). */
async function outcome(store: Store, op: OperationRecord, movesRefused: boolean): Promise<Pick<OperationRecord, 'status' | 'error'> | undefined> {
  if (op.kind === 'deleteResourceGroup') return (await store.get(op.groupKey)) ? undefined : { status: 'Succeeded' };
  const rec = (await store.get<GroupRecord>(op.groupKey))?.value;
  if (op.kind === 'delete') return !rec || rec.uid !== op.uid ? { status: 'Succeeded' } : undefined;
  if (!rec || rec.uid !== op.uid)
    return { status: 'Failed', error: { code: Codes.ResourceNotFound, message: 'The container group was deleted before the operation completed.' } };
  const st = (await store.get<StoredStatus>(statusKey(op.uid)))?.value;
  if (!st || st.generation < op.generation || st.provisioning === 'Creating') return undefined;
  if (st.provisioning === 'Failed' && movesRefused && st.error?.code === Codes.PortAlreadyInUse && st.generation === rec.generation) return undefined;
  if (st.provisioning === 'Failed') return { status: 'Failed', error: st.error ?? { code: Codes.RuntimeError, message: 'The container group failed to provision.' } };
  return { status: 'Succeeded' };
}
