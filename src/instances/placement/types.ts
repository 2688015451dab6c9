// What the scheduler reasons about: hosts, the groups placed on them, and what a group asks of its host.

export interface HostInfo {
  name: string;
  zone?: string;
  labels: Record<string, string>;
  /** What groups may use; `addresses`: how many groups its subnet has addresses for (absent: no limit known). */
  allocatable: { cpu: number; memoryGB: number; addresses?: number };
  /** Its lease is alive: it takes new groups. */
  ready: boolean;
}

/** A rule about other groups of the same subscription: run near them or away from them. */
export interface AffinityTerm {
  /** The groups it is about: those carrying every one of these tags, or named so (in the same subscription). */
  selector: { tags?: Record<string, string>; names?: string[] };
  /** Near/away on the same host, or in the same zone. */
  scope: 'Host' | 'Zone';
  /** Required terms filter hosts; preferred ones weigh in the score (weight 1 to 100). */
  required: boolean;
  weight?: number;
}

/** berth's placement extension (`properties.placement` of a container group). */
export interface PlacementRules {
  /** Overrides the cluster's scoring strategy for this group. */
  strategy?: 'BinPack' | 'Spread';
  /** Labels a host must carry. */
  hostLabels?: Record<string, string>;
  affinity?: AffinityTerm[];
  antiAffinity?: AffinityTerm[];
}

/** A group to place, or one that is placed (then `host` says where). */
export interface GroupDemand {
  uid: string;
  subscriptionId: string;
  name: string;
  tags: Record<string, string>;
  cpu: number;
  memoryGB: number;
  /** Host ports it publishes, as `TCP/80`. */
  ports: string[];
  /** ACI's `zones`: the zones it may run in (empty: any). */
  zones: string[];
  rules?: PlacementRules;
}

export type Decision = { host: string; zone?: string } | { unschedulable: string };
