// What each container-group route asks of the instances core, as typed actions parsed from the request:
// the core never sees a request body, a query string or a path.
import { parseTags, type Tags } from '../arm/tags.js';
import { splitCommand } from '../lib/argv.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { TerminalSize } from '../agent/types.js';
import { checkGroupName, checkResourceGroupName, checkSubscriptionId, parseGroupSpec, type GroupSpec, type Limits } from './model.js';
import { NGROUP_TYPE } from './ngroup-model.js';
import { parseResourceId, resourceId } from './profile-model.js';
import type { ProfileReference } from './records.js';

/** The parts of a request a parser reads (what Fastify hands a route: decoded path parameters, query, JSON body). */
export interface RequestParts {
  params: Record<string, string | undefined>;
  query: Record<string, unknown>;
  body?: unknown;
}

export interface GroupRef {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export type RunAction = 'start' | 'stop' | 'restart';

export type GroupAction =
  | { kind: 'group.put'; ref: GroupRef; spec: GroupSpec; location?: string; tags: Tags; profile?: ProfileReference; orchestratorId?: string | null }
  | { kind: 'group.get'; ref: GroupRef }
  | { kind: 'group.patch'; ref: GroupRef; tags: Tags }
  | { kind: 'group.delete'; ref: GroupRef }
  | { kind: 'group.run'; ref: GroupRef; run: RunAction }
  | { kind: 'group.list'; subscriptionId: string; resourceGroup?: string; top?: number; startAfter?: string; watch: boolean }
  | { kind: 'container.logs'; ref: GroupRef; container: string; tail?: number; timestamps: boolean; previous: boolean; follow: boolean }
  | { kind: 'container.exec'; ref: GroupRef; container: string; argv: string[]; tty?: TerminalSize }
  | { kind: 'container.attach'; ref: GroupRef; container: string };

const param = (p: RequestParts, name: string): string => {
  const v = p.params[name];
  if (v === undefined) throw new BerthError(Codes.InternalServerError, `The route has no '${name}' parameter.`, 500);
  return v;
};
const flag = (v: unknown) => v === 'true';

/** A subscription + resource group + container group name from the path, each checked as ARM names are. */
export function groupRef(p: RequestParts): GroupRef {
  const ref = { subscriptionId: param(p, 'sub'), resourceGroup: param(p, 'rg'), name: param(p, 'name') };
  checkSubscriptionId(ref.subscriptionId);
  checkResourceGroupName(ref.resourceGroup);
  checkGroupName(ref.name);
  return ref;
}

/** The group of a read or delete: its name is looked up as given (a name that cannot exist is simply not found). */
function existingGroupRef(p: RequestParts): GroupRef {
  const ref = { subscriptionId: param(p, 'sub'), resourceGroup: param(p, 'rg'), name: param(p, 'name') };
  checkSubscriptionId(ref.subscriptionId);
  checkResourceGroupName(ref.resourceGroup);
  return ref;
}

/** A group PUT: its spec (a profile's already expanded into the body, see profiles.ts, which names `profile`), and the NGroup it joins. */
export function parseGroupPut(p: RequestParts, limits: Limits, profile?: ProfileReference): GroupAction & { kind: 'group.put' } {
  const ref = groupRef(p);
  const { spec, location, tags } = parseGroupSpec(p.body, limits);
  const orchestratorId = parseOrchestratorId(p.body, ref.subscriptionId);
  return {
    kind: 'group.put', ref, spec, ...(location !== undefined && { location }), tags, ...(profile && { profile }),
    ...(orchestratorId !== undefined && { orchestratorId }),
  };
}

/**
 * `properties.orchestratorId`: the NGroup a group belongs to. ACI sets it on the groups an NGroup
 * makes; berth takes it from the PUT, which is how its orchestrator (a client of this API like any
 * other) makes them. Absent: the group keeps what it had; null or '': it leaves its NGroup.
 */
function parseOrchestratorId(body: unknown, subscriptionId: string): string | null | undefined {
  const props = (body as { properties?: { orchestratorId?: unknown } } | undefined)?.properties;
  const v = props?.orchestratorId;
  if (v === undefined) return undefined;
  if (v === null || v === '') return null;
  const target = 'properties.orchestratorId';
  const ref = typeof v === 'string' ? parseResourceId(v, NGROUP_TYPE) : undefined;
  if (!ref) throw new BerthError(Codes.InvalidRequestContent, `'${target}' must be the resource id of an NGroup.`, 400, target);
  if (ref.subscriptionId.toLowerCase() !== subscriptionId.toLowerCase())
    throw new BerthError(Codes.InvalidRequestContent, 'A container group cannot belong to an NGroup of another subscription.', 400, target);
  return resourceId(NGROUP_TYPE, ref);
}

export const parseGroupGet = (p: RequestParts): GroupAction & { kind: 'group.get' } => ({ kind: 'group.get', ref: existingGroupRef(p) });

/** PATCH: tags only, as ACI allows. */
export function parseGroupPatch(p: RequestParts): GroupAction & { kind: 'group.patch' } {
  const body = p.body;
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
    throw new BerthError(Codes.InvalidRequestContent, 'The request body must be a JSON object.', 400);
  return { kind: 'group.patch', ref: existingGroupRef(p), tags: parseTags((body as { tags?: unknown } | undefined)?.tags) };
}

export const parseGroupDelete = (p: RequestParts): GroupAction & { kind: 'group.delete' } => ({ kind: 'group.delete', ref: existingGroupRef(p) });

export const parseGroupRun = (p: RequestParts, run: RunAction): GroupAction & { kind: 'group.run' } => ({ kind: 'group.run', ref: existingGroupRef(p), run });

/** A list by subscription (no `rg` parameter) or by resource group; `$top`/`$skiptoken` page it; `watch=true` streams changes. */
export function parseListPage(p: RequestParts): { subscriptionId: string; resourceGroup?: string; top?: number; startAfter?: string; watch: boolean } {
  const subscriptionId = param(p, 'sub');
  checkSubscriptionId(subscriptionId);
  const resourceGroup = p.params.rg;
  if (resourceGroup !== undefined) checkResourceGroupName(resourceGroup);
  const q = p.query;
  const top = q.$top !== undefined ? Number(q.$top) : undefined;
  if (top !== undefined && (!Number.isInteger(top) || top < 1 || top > 1000))
    throw new BerthError(Codes.InvalidRequestContent, "'$top' must be an integer from 1 to 1000.", 400, '$top');
  const token = q.$skiptoken;
  if (token !== undefined && (typeof token !== 'string' || !/^[A-Za-z0-9_-]{1,2048}$/.test(token)))
    throw new BerthError(Codes.InvalidRequestContent, "'$skiptoken' is not one berth gave out.", 400, '$skiptoken');
  return {
    subscriptionId, ...(resourceGroup !== undefined && { resourceGroup }), ...(top !== undefined && { top }),
    ...(token !== undefined && { startAfter: Buffer.from(token, 'base64url').toString() }), watch: flag(q.watch),
  };
}

export const parseGroupList = (p: RequestParts): GroupAction & { kind: 'group.list' } => ({ kind: 'group.list', ...parseListPage(p) });

/** `tail`, `timestamps`, and berth's `previous` (the run before the last restart) and `follow` (a stream). */
export function parseLogs(p: RequestParts): GroupAction & { kind: 'container.logs' } {
  const q = p.query;
  const tail = q.tail !== undefined ? Number(q.tail) : undefined;
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
    throw new BerthError(Codes.InvalidRequestContent, "'tail' must be a non-negative integer.", 400, 'tail');
  return {
    kind: 'container.logs', ref: existingGroupRef(p), container: param(p, 'container'), ...(tail !== undefined && { tail }),
    timestamps: flag(q.timestamps), previous: flag(q.previous), follow: flag(q.follow),
  };
}

/** The command is split as a shell would split it, without expanding anything; a terminalSize makes it a terminal session. */
export function parseExec(p: RequestParts): GroupAction & { kind: 'container.exec' } {
  const { argv, tty } = parseExecRequest(p.body);
  return { kind: 'container.exec', ref: existingGroupRef(p), container: param(p, 'container'), argv, ...(tty && { tty }) };
}

export const parseAttach = (p: RequestParts): GroupAction & { kind: 'container.attach' } =>
  ({ kind: 'container.attach', ref: existingGroupRef(p), container: param(p, 'container') });

/** A location's endpoints (usages, capabilities, cached images): the subscription and the location as named. */
export function parseLocation(p: RequestParts): { subscriptionId: string; location: string } {
  const subscriptionId = param(p, 'sub');
  checkSubscriptionId(subscriptionId);
  return { subscriptionId, location: param(p, 'loc') };
}

/** The command and terminal of an exec request body (ContainerExecRequest). */
export function parseExecRequest(body: unknown): { argv: string[]; tty?: TerminalSize } {
  const b = (body ?? {}) as { command?: unknown; terminalSize?: unknown };
  if (typeof b.command !== 'string' || b.command.trim() === '')
    throw new BerthError(Codes.MissingRequiredProperty, "The property 'command' is required.", 400, 'command');
  let argv: string[];
  try {
    argv = splitCommand(b.command);
  } catch (e) {
    throw new BerthError(Codes.InvalidRequestContent, `The command could not be split into arguments: ${(e as Error).message}.`, 400, 'command');
  }
  if (b.terminalSize === undefined || b.terminalSize === null) return { argv };
  const t = b.terminalSize as { rows?: unknown; cols?: unknown };
  const dim = (v: unknown, what: string) => {
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new BerthError(Codes.InvalidRequestContent, `'terminalSize.${what}' must be an integer from 0 to 65535.`, 400, `terminalSize.${what}`);
    return v;
  };
  if (typeof t !== 'object' || Array.isArray(t))
    throw new BerthError(Codes.InvalidRequestContent, "'terminalSize' must be an object with 'rows' and 'cols'.", 400, 'terminalSize');
  return { argv, tty: { rows: dim(t.rows, 'rows'), cols: dim(t.cols, 'cols') } };
}
