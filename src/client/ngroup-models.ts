// The wire models of container group profiles and NGroups (2025-09-01), with berth's additions (autoscaling, automatic
// rollback, the orchestrator's status document).
import type { ContainerGroupProperties, Event, TrackedResource, VolumeMount } from './models.js';

/** A container group profile: a group's properties as a template, in numbered revisions. */
export interface ContainerGroupProfile extends Omit<TrackedResource, 'identity'> {
  properties: Omit<ContainerGroupProperties, 'provisioningState' | 'instanceView' | 'containerGroupProfile' | 'orchestratorId'> & {
    /** Read-only: the revision shown, and every revision there is. */
    revision?: number;
    registeredRevisions?: number[];
  };
}

export type ContainerGroupProfileResource = ContainerGroupProfile & { id: string; name: string };

export interface ContainerGroupProfileStub {
  resource: { id: string };
  /** None: the profile's latest revision. */
  revision?: number;
  containerGroupProperties?: { containers?: { name: string; properties?: { volumeMounts?: VolumeMount[] } }[] };
}

export interface RollingUpdateProfile {
  maxBatchPercent?: number;
  maxUnhealthyPercent?: number;
  maxUnhealthyUpdatedPercent?: number;
  pauseTimeBetweenBatches?: string;
  inPlaceUpdate?: boolean;
  /** berth: roll back to the previous revision when the update fails (default true). */
  autoRollback?: boolean;
  /** berth: how long a batch has to become healthy (default PT10M). */
  healthyDeadline?: string;
}

/** berth: autoscaling on the members' CPU use, as Kubernetes' HPA does it. */
export interface AutoscaleProfile {
  minCount: number;
  maxCount: number;
  targetCpuUtilizationPercent: number;
  tolerance?: number;
  syncPeriod?: string;
  metricWindow?: string;
  scaleUpStabilizationWindow?: string;
  scaleDownStabilizationWindow?: string;
}

/** An NGroup's events have a container group's event shape. */
export type NGroupEvent = Event;

export interface NGroupProperties {
  elasticProfile?: {
    desiredCount?: number;
    maintainDesiredCount?: boolean;
    containerGroupNamingPolicy?: { guidNamingPolicy?: { prefix?: string } };
    autoscale?: AutoscaleProfile;
  };
  placementProfile?: { faultDomainCount?: number };
  containerGroupProfiles?: ContainerGroupProfileStub[];
  updateProfile?: { updateMode?: 'Manual' | 'Rolling'; rollingUpdateProfile?: RollingUpdateProfile };
  provisioningState?: string;
  /** berth (read-only): the NGroup's state, its members and its events. */
  instanceView?: {
    state?: 'Running' | 'Stopped';
    currentCount?: number;
    readyCount?: number;
    revisions?: { revision: number; count: number }[];
    rollingUpdate?: { state: string; error?: { code: string; message: string } };
    autoscale?: Record<string, unknown>;
    events?: NGroupEvent[];
  };
}

export interface NGroup extends TrackedResource {
  properties?: NGroupProperties;
}

export type NGroupResource = NGroup & { id: string; name: string };

/** An NGroup's rolling update, as Microsoft's docs describe `latestRollingUpdate`. */
export interface RollingUpdateStatus {
  state: 'RollingForward' | 'RollingBack' | 'Completed' | 'Cancelled' | 'Faulted' | 'RolledBack' | string;
  startTime: string;
  finishTime?: string;
  lastAction: 'Start' | 'Cancel' | string;
  lastActionTime: string;
  error?: { code: string; message: string };
  progress?: { containerGroupsUpdateSummary: { succeededCount: number; failedCount: number; pendingCount: number } };
  /** berth: the revisions it goes from and to, and why it ended as it did. */
  fromRevision?: number;
  toRevision?: number;
  reason?: string;
  [more: string]: unknown;
}

/** berth: what an orchestrator reports of an NGroup (read and written with an ETag). */
export interface NGroupStatus {
  observedGeneration?: number;
  provisioning?: { generation: number; state: 'Succeeded' | 'Failed'; error?: { code: string; message: string } };
  currentCount?: number;
  readyCount?: number;
  revisions?: { revision: number; count: number }[];
  rollingUpdate?: RollingUpdateStatus;
  autoscale?: Record<string, unknown>;
  events?: NGroupEvent[];
  [more: string]: unknown;
}
