// The container group PUT that makes (or repoints) an NGroup's member: a reference to the profile revision, the
// NGroup's id, where it is placed, and what the NGroup adds to the profile (volume mounts, injected variables).
import { randomUUID } from 'node:crypto';
import type { ContainerGroup, EnvironmentVariable, NGroupResource } from '../client/index.js';
import { FAULT_DOMAIN_TAG, ZONE_TAG, type RevisionRef } from './members.js';
import type { Slot } from './placement.js';

/** NGroup tags that ask for the member's name and the NGroup's id in every container's environment (Microsoft's docs). */
export const INJECT_NAME_TAG = 'metadata.container.environmentVariable.containerGroupName';
export const INJECT_ORCHESTRATOR_TAG = 'metadata.container.environmentVariable.orchestratorId';

const asked = (ng: NGroupResource, tag: string) => Object.entries(ng.tags ?? {}).some(([k, v]) => k.toLowerCase() === tag.toLowerCase() && String(v).toLowerCase() === 'true');

/** A new member's name: the naming policy's prefix and a GUID, as ACI names them. */
export const newMemberName = (ng: NGroupResource) => `${ng.properties?.elasticProfile?.containerGroupNamingPolicy?.guidNamingPolicy?.prefix ?? ''}${randomUUID()}`;

/** What the injected variables need to know: the names of the profile revision's containers. */
export function memberBody(ng: NGroupResource, name: string, target: RevisionRef, slot: Slot, containerNames: string[]): ContainerGroup {
  const stub = ng.properties?.containerGroupProfiles?.[0];
  const env: EnvironmentVariable[] = [
    ...(asked(ng, INJECT_NAME_TAG) ? [{ name: 'ContainerGroupName', value: name }] : []),
    ...(asked(ng, INJECT_ORCHESTRATOR_TAG) ? [{ name: 'OrchestratorId', value: ng.id }] : []),
  ];
  const mounts = new Map((stub?.containerGroupProperties?.containers ?? []).map((c) => [c.name, c.properties?.volumeMounts ?? []]));
  const containers = containerNames
    .map((c) => ({ name: c, env: env.length > 0 ? env : undefined, mounts: mounts.get(c) }))
    .filter((c) => c.env || c.mounts?.length)
    .map((c) => ({ name: c.name, properties: { ...(c.env && { environmentVariables: c.env }), ...(c.mounts?.length && { volumeMounts: c.mounts }) } }));
  return {
    location: ng.location,
    tags: { ...(slot.zone !== undefined && { [ZONE_TAG]: slot.zone }), [FAULT_DOMAIN_TAG]: String(slot.faultDomain) },
    properties: {
      containerGroupProfile: { id: target.profileId, ...(target.revision !== undefined && { revision: target.revision }) },
      orchestratorId: ng.id,
      ...(containers.length > 0 && { containers }),
    } as ContainerGroup['properties'],
  };
}

/** Whether making a member needs the profile's container names (something is added to its containers). */
export const needsContainerNames = (ng: NGroupResource) =>
  asked(ng, INJECT_NAME_TAG) || asked(ng, INJECT_ORCHESTRATOR_TAG) || (ng.properties?.containerGroupProfiles?.[0]?.containerGroupProperties?.containers?.length ?? 0) > 0;
