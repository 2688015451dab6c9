// The host-spec writer: a group record translated into what its host runs (the agent's spec, no ACI concepts), and the store ops that place it on its host or take it off.
import { createHash } from 'node:crypto';
import type { HostContainer, HostInitContainer, PlacedHostSpec, ProbeSpec } from '../agent/spec.js';
import type { Op } from '../store/store.js';
import type { ContainerDef, EnvVar, InitContainerDef, ProbeDef } from './group-spec.js';
import { groupKey, hostSpecKey, removingKey } from './keys.js';
import type { GroupRecord } from './records.js';

const GiB = 1024 ** 3;

/**
 * The network segment of a subscription's groups (their containers reach each other, and other subscriptions'
 * only through Public ports): opaque to the host, and the same on every host.
 */
export const segmentOf = (subscriptionId: string) => createHash('sha256').update(subscriptionId.toLowerCase()).digest('hex').slice(0, 16);

/** ACI's default provisioningTimeoutInSeconds. */
export const DEFAULT_PROVISIONING_TIMEOUT_S = 1800;

/** What a host holds for a group taken off it until it reports the group gone. */
export interface RemovingRecord {
  groupKey: string;
}

const envOf = (vars: EnvVar[]) => vars.map((e) => ({ name: e.name, value: e.secureValue ?? e.value ?? '' }));

const probeOf = (p: ProbeDef | undefined): ProbeSpec | undefined => p && {
  ...(p.exec && { exec: { command: [...p.exec.command] } }),
  ...(p.httpGet && { httpGet: { path: p.httpGet.path, port: p.httpGet.port, scheme: p.httpGet.scheme, headers: p.httpGet.httpHeaders.map((h) => ({ ...h })) } }),
  initialDelaySeconds: p.initialDelaySeconds,
  periodSeconds: p.periodSeconds,
  timeoutSeconds: p.timeoutSeconds,
  failureThreshold: p.failureThreshold,
  successThreshold: p.successThreshold,
};

const processOf = (c: ContainerDef | InitContainerDef, cpu: number, memoryInGB: number): HostInitContainer => ({
  name: c.name,
  image: c.image,
  command: [...c.command],
  env: envOf(c.environmentVariables),
  cpu,
  memoryBytes: Math.round(memoryInGB * GiB),
  volumeMounts: c.volumeMounts.map((m) => ({ name: m.name, mountPath: m.mountPath, readOnly: m.readOnly })),
});

/** The host spec of a group record: its containers' limits (ACI's limits, or its requests), ports published only for a Public address. */
export function hostSpecOf(rec: GroupRecord): PlacedHostSpec {
  const { spec } = rec;
  // Init containers have no resources of their own in ACI: each may use what the group's containers request.
  const groupCpu = spec.containers.reduce((n, c) => n + c.requests.cpu, 0);
  const groupMemory = spec.containers.reduce((n, c) => n + c.requests.memoryInGB, 0);
  const containers = spec.containers.map((c): HostContainer => {
    const livenessProbe = probeOf(c.livenessProbe);
    const readinessProbe = probeOf(c.readinessProbe);
    return {
      ...processOf(c, c.limits?.cpu ?? c.requests.cpu, c.limits?.memoryInGB ?? c.requests.memoryInGB),
      ...(livenessProbe && { livenessProbe }),
      ...(readinessProbe && { readinessProbe }),
    };
  });
  return {
    uid: rec.uid,
    generation: rec.generation,
    spec: {
      hostname: rec.name,
      state: rec.state,
      restartPolicy: spec.restartPolicy,
      initContainers: (spec.initContainers ?? []).map((c) => processOf(c, groupCpu, groupMemory)),
      containers,
      volumes: spec.volumes.map((v) => ({
        name: v.name,
        ...(v.emptyDir && { emptyDir: {} }),
        ...(v.secret && { secret: { ...v.secret } }),
        ...(v.gitRepo && { gitRepo: { ...v.gitRepo } }),
      })),
      ports: spec.ipAddress?.type === 'Public' ? spec.ipAddress.ports.map((p) => ({ port: p.port, protocol: p.protocol })) : [],
      network: { key: segmentOf(rec.subscriptionId), ...(rec.segmentTag !== undefined && { tag: rec.segmentTag }) },
      registryCredentials: spec.imageRegistryCredentials.map((r) => ({ server: r.server, username: r.username, password: r.password })),
      provisioningTimeoutSeconds: spec.provisioningTimeoutInSeconds ?? DEFAULT_PROVISIONING_TIMEOUT_S,
    },
  };
}

/** Places (or replaces) the group's spec on its host. */
export const placeOps = (rec: GroupRecord): Op[] => [{ put: hostSpecKey(rec.host, rec.uid), value: hostSpecOf(rec) }];

/** Takes the group off its host, remembering that its removal is awaited (and where its record is). */
export const unplaceOps = (rec: GroupRecord): Op[] => [
  { delete: hostSpecKey(rec.host, rec.uid) },
  { put: removingKey(rec.host, rec.uid), value: { groupKey: groupKey(rec.subscriptionId, rec.resourceGroup, rec.name) } satisfies RemovingRecord },
];
