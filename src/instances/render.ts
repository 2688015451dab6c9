// Renders groups and operations as ARM resources, in the shapes of the ACI 2023-05-01 spec.
import type { GroupStatus } from '../agent/types.js';
import { redactSpec } from './model.js';
import { GROUP_TYPE, PROVIDER, type GroupView } from './service.js';

export const groupId = (sub: string, rg: string, name: string) =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/${GROUP_TYPE}/${name}`;

export const operationPath = (sub: string, location: string, id: string) =>
  `/subscriptions/${sub}/providers/${PROVIDER}/locations/${encodeURIComponent(location)}/operations/${id}`;

export interface RenderContext {
  /** Address a client reaches published ports on. */
  advertiseAddress: string;
}

/** `list`: as list results show groups, without the group's instance view (as the spec declares them). */
export function renderGroup(v: GroupView, ctx: RenderContext, list = false) {
  const r = v.record;
  type Rendered = { name: string; properties: Record<string, unknown> }[];
  const props = redactSpec(r.spec) as { containers: Rendered; initContainers?: Rendered } & Record<string, unknown>;
  const st: GroupStatus | undefined = v.status;
  const withView = (list: Rendered | undefined, views: GroupStatus['containers'] | undefined) => {
    for (const c of list ?? []) {
      const cv = views?.[c.name];
      if (cv) c.properties.instanceView = { restartCount: cv.restartCount, currentState: cv.currentState, ...(cv.previousState && { previousState: cv.previousState }), events: cv.events };
    }
  };
  withView(props.containers, st?.containers);
  withView(props.initContainers, st?.initContainers);
  if (r.spec.ipAddress) {
    const ip = r.spec.ipAddress.type === 'Public' ? ctx.advertiseAddress : st?.ip;
    props.ipAddress = { type: r.spec.ipAddress.type, ports: r.spec.ipAddress.ports, ...(ip && { ip }), ...(r.spec.ipAddress.dnsNameLabel && { dnsNameLabel: r.spec.ipAddress.dnsNameLabel }) };
  }
  props.provisioningState = v.provisioningState;
  if (!list) props.instanceView = { state: groupState(v), events: st?.events ?? [] };
  return {
    id: groupId(r.subscriptionId, r.resourceGroup, r.name),
    name: r.name,
    type: GROUP_TYPE,
    location: r.location,
    ...(Object.keys(r.tags).length > 0 && { tags: r.tags }),
    properties: props,
  };
}

function groupState(v: GroupView): string {
  // While a change is applied the last reported state stands: a group being stopped still runs.
  if (v.status) return v.status.state;
  return v.record.state === 'Stopped' ? 'Stopped' : 'Pending';
}
