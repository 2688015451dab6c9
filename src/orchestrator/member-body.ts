// The container group PUT that makes (or repoints) an NGroup's member: a reference to the profile revision, the
// NGroup's id, where it is placed, and what the NGroup adds to the profile (volume mounts, injected variables).
import { randomUUID } from 'node:crypto';
import type { AffinityTerm, ContainerGroup, EnvironmentVariable, NGroupResource } from '../client/index.js';
import { FAULT_DOMAIN_TAG, NGROUP_TAG, ngroupTagOf, ZONE_TAG, type RevisionRef } from './members.js';
import type { Slot } from './placement.js';

/** NGroup tags that ask for the member's name and the NGroup's id in every container's environment (Microsoft's docs). */
export const INJECT_NAME_TAG = 'metadata.container.environmentVariable.containerGroupName';
export const INJECT_ORCHESTRATOR_TAG = 'metadata.container.environmentVariable.orchestratorId';

const asked = (ng: NGroupResource, tag: string) => Object.entries(ng.tags ?? {}).some(([k, v]) => k.toLowerCase() === tag.toLowerCase() && String(v).toLowerCase() === 'true');

/** A new member's name: the naming policy's prefix and a GUID, as ACI names them. */
export const newMemberName = (ng: NGroupResource) => `${ng.properties?.elasticProfile?.containerGroupNamingPolicy?.guidNamingPolicy?.prefix ?? ''}${randomUUID()}`;

/**
 * Where a member may run on an endpoint that places groups on hosts (a berth cluster): its slot's zone as ACI's
 * `zones`, and away from the hosts of the NGroup's other fault domains (berth's placement extension; preferred, as a
 * zone may have fewer hosts than fault domains).
 */
function placementOf(ng: NGroupResource, slot: Slot): Pick<ContainerGroup, 'zones'> & { placement?: { antiAffinity: AffinityTerm[] } } {
  const count = ng.properties?.placementProfile?.faultDomainCount ?? 1;
  const others = Array.from({ length: count }, (_, fd) => fd).filter((fd) => fd !== slot.faultDomain);
  const antiAffinity = others.map((fd): AffinityTerm => ({
    selector: { tags: { [NGROUP_TAG]: ngroupTagOf(ng.id), [FAULT_DOMAIN_TAG]: String(fd) } }, scope: 'Host', required: false, weight: 100,
  }));
  return { ...(slot.zone !== undefined && { zones: [slot.zone] }), ...(antiAffinity.length > 0 && { placement: { antiAffinity } }) };
}

/**
 * What the injected variables need to know: the names of the profile revision's containers. `placed`: the endpoint
 * places groups on hosts (zones and placement rules are honoured); elsewhere the slot is only the member's tags.
 */
export function memberBody(ng: NGroupResource, name: string, target: RevisionRef, slot: Slot, containerNames: string[], placed = false): ContainerGroup {
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
  const { zones, placement } = placed ? placementOf(ng, slot) : {};
  return {
    location: ng.location,
    tags: { ...(slot.zone !== undefined && { [ZONE_TAG]: slot.zone }), [FAULT_DOMAIN_TAG]: String(slot.faultDomain), [NGROUP_TAG]: ngroupTagOf(ng.id) },
    ...(zones && { zones }),
    properties: {
      containerGroupProfile: { id: target.profileId, ...(target.revision !== undefined && { revision: target.revision }) },
      orchestratorId: ng.id,
      ...(containers.length > 0 && { containers }),
      ...(placement && { placement }),
    } as ContainerGroup['properties'],
  };
}

/** Whether making a member needs the profile's container names (something is added to its containers). */
export const needsContainerNames = (ng: NGroupResource) =>
  asked(ng, INJECT_NAME_TAG) || asked(ng, INJECT_ORCHESTRATOR_TAG) || (ng.properties?.containerGroupProfiles?.[0]?.containerGroupProperties?.containers?.length ?? 0) > 0;
