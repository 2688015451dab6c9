// What the instances service keeps in the store (group and operation records) and what it answers with (views).
import type { Event } from '../lib/events.js';
import type { GroupSpec } from './group-spec.js';
import type { StoredStatus } from './hosts/gateway.js';

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
  /** Bumped by every change the host must act on: spec update, start, stop, restart. */
  generation: number;
  state: 'Running' | 'Stopped';
  deleting: boolean;
  /**
   * The host the group is placed on: the embedded default's own host from the start; in a cluster '' (UNPLACED)
   * until the leader's placement chooses one.
   */
  host: string;
  /** The zone of that host, as it registered when the group was placed there. */
  zone?: string;
  /** Records written before `host`: the host's name under its old field. */
  node?: string;
  createdAt: string;
  /** `ipAddress.fqdn`: held in berth's zone while the group exists (see dns-names.ts). */
  fqdn?: string;
  /** The container group profile (and its revision) the spec was made from (`properties.containerGroupProfile`). */
  profile?: ProfileReference;
  /** The resource id of the NGroup the group belongs to (ACI's `orchestratorId`). */
  orchestratorId?: string;
  /** Its subscription's cluster-wide network segment tag (segment-tags.ts), on a cluster with an overlay. */
  segmentTag?: number;
}

/** A container group profile's revision, by the profile's resource id. */
export interface ProfileReference {
  id: string;
  revision: number;
}

/** The `host` of a group no host has been chosen for yet. */
export const UNPLACED = '';

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
  /** The host's latest report; of an older generation while a change is being applied. */
  status?: StoredStatus;
  provisioningState: 'Pending' | 'Creating' | 'Succeeded' | 'Failed' | 'Deleting';
  /** What the control plane told of the group (group-events.ts), shown with its host's events. */
  events?: Event[];
}

/** ARM's comparison of location names: case and spaces do not count ('West Europe' is 'westeurope'). */
export const locationKey = (l: string) => l.toLowerCase().replace(/\s+/g, '');
