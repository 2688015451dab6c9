// NGroups on the wire: a PUT or PATCH body validated into the properties berth keeps (ACI's fields with their
// defaults, and berth's additive extensions), the rules of an update, and the rendered resource.
import { parseTags, type Tags } from '../arm/tags.js';
import { parseDuration } from '../lib/duration.js';
import { BerthError, Codes } from '../lib/errors.js';
import { checkGroupName } from './model.js';
import { PROFILE_TYPE, parseResourceId, resourceId, type ResourceRef } from './profile-model.js';
import { PROVIDER } from './records.js';
import { NGROUP_UNSUPPORTED, refuseParts } from './unsupported.js';

export const NGROUP_TYPE = `${PROVIDER}/ngroups`;
/** Container groups an NGroup may hold (ACI's default container group quota). */
export const MAX_DESIRED_COUNT = 1000;

export interface RollingUpdateProfile {
  maxBatchPercent?: number;
  maxUnhealthyPercent?: number;
  /** Microsoft's docs name it; the spec does not. */
  maxUnhealthyUpdatedPercent?: number;
  pauseTimeBetweenBatches?: string;
  inPlaceUpdate?: boolean;
  /** berth: return every member to the previous revision when the update fails (default true). */
  autoRollback?: boolean;
  /** berth: how long a batch's members have to become healthy before the update fails (default PT10M). */
  healthyDeadline?: string;
}

/** berth: HPA-style autoscaling on the members' CPU utilisation (of their CPU requests). */
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

export interface ProfileStub {
  resource: { id: string };
  revision?: number;
  containerGroupProperties?: { containers?: { name: string; properties?: { volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] } }[] };
}

/** What berth keeps of an NGroup's `properties`: what was given, validated, enums canonical. */
export interface NGroupProperties {
  elasticProfile: {
    desiredCount: number;
    maintainDesiredCount?: boolean;
    containerGroupNamingPolicy?: { guidNamingPolicy?: { prefix?: string } };
    autoscale?: AutoscaleProfile;
  };
  placementProfile?: { faultDomainCount?: number };
  containerGroupProfiles: ProfileStub[];
  updateProfile: { updateMode: 'Manual' | 'Rolling'; rollingUpdateProfile?: RollingUpdateProfile };
}

export interface NGroupPut {
  properties: NGroupProperties;
  location?: string;
  tags: Tags;
  zones: string[];
}

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);
const absent = (x: unknown) => x === undefined || x === null;

function bad(target: string, message: string, code: string = Codes.InvalidRequestContent): never {
  throw new BerthError(code, message, 400, target);
}

function objectAt(v: unknown, target: string): Json | undefined {
  if (absent(v)) return undefined;
  if (!isObj(v)) bad(target, `'${target}' must be an object.`);
  return v;
}

function intAt(v: unknown, target: string, min: number, max: number): number | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(target, `'${target}' must be a whole number from ${min} to ${max}.`);
  return v;
}

function boolAt(v: unknown, target: string): boolean | undefined {
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') bad(target, `'${target}' must be true or false.`);
  return v;
}

function durationAt(v: unknown, target: string, maxMs: number, minMs = 0): string | undefined {
  if (absent(v)) return undefined;
  const ms = typeof v === 'string' ? parseDuration(v) : undefined;
  if (ms === undefined || ms < minMs || ms > maxMs)
    bad(target, `'${target}' must be an ISO 8601 duration (such as PT1M) from ${minMs / 1000} s to ${maxMs / 1000} s.`);
  return v as string;
}

const HOUR = 3_600_000;

/** An NGroup PUT body into what berth keeps, for the NGroup in `subscriptionId`. */
export function parseNGroupBody(body: unknown, subscriptionId: string): NGroupPut {
  if (!isObj(body)) bad('body', 'The request body must be a JSON object.');
  refuseParts(body, NGROUP_UNSUPPORTED);
  const identity = objectAt(body.identity, 'identity');
  if (identity && !absent(identity.type) && String(identity.type).toLowerCase() !== 'none')
    bad('identity', 'Managed identity is not supported by berth yet (\'identity\').', Codes.UnsupportedFeature);
  const location = absent(body.location) ? undefined : typeof body.location === 'string' ? body.location : bad('location', "'location' must be a string.");
  const zones = absent(body.zones) ? [] : Array.isArray(body.zones) ? body.zones : bad('zones', "'zones' must be an array of strings.");
  zones.forEach((z, i) => {
    if (typeof z !== 'string' || !/^[A-Za-z0-9-]{1,32}$/.test(z)) bad(`zones[${i}]`, `'zones[${i}]' must be a zone name (letters, digits and '-').`);
  });
  if (new Set(zones).size !== zones.length) bad('zones', "'zones' lists a zone twice.");
  const p = objectAt(body.properties, 'properties') ?? {};
  return { properties: parseProperties(p, subscriptionId), ...(location !== undefined && { location }), tags: parseTags(body.tags), zones: zones as string[] };
}

function parseProperties(p: Json, subscriptionId: string): NGroupProperties {
  const e = objectAt(p.elasticProfile, 'properties.elasticProfile') ?? {};
  const desiredCount = intAt(e.desiredCount, 'properties.elasticProfile.desiredCount', 0, MAX_DESIRED_COUNT) ?? 0;
  const maintainDesiredCount = boolAt(e.maintainDesiredCount, 'properties.elasticProfile.maintainDesiredCount');
  const naming = objectAt(e.containerGroupNamingPolicy, 'properties.elasticProfile.containerGroupNamingPolicy');
  const guid = naming && objectAt(naming.guidNamingPolicy, 'properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy');
  let prefix: string | undefined;
  if (guid && !absent(guid.prefix)) {
    const t = 'properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy.prefix';
    prefix = typeof guid.prefix === 'string' ? guid.prefix : bad(t, `'${t}' must be a string.`);
    // the members' names are the prefix and a GUID: together they must be a container group name
    try {
      if (prefix.length > 26) throw new Error();
      checkGroupName(`${prefix}00000000-0000-0000-0000-000000000000`);
    } catch {
      bad(t, `The prefix '${prefix.slice(0, 40)}' is invalid: up to 26 lowercase letters, digits and single dashes, starting with a letter or digit (the members' names are the prefix and a GUID).`);
    }
  }
  const autoscale = parseAutoscale(objectAt(e.autoscale, 'properties.elasticProfile.autoscale'));
  if (autoscale && (desiredCount < autoscale.minCount || desiredCount > autoscale.maxCount))
    bad('properties.elasticProfile.desiredCount', `'desiredCount' (${desiredCount}) must be within the autoscale bounds ${autoscale.minCount} to ${autoscale.maxCount}.`);

  const placement = objectAt(p.placementProfile, 'properties.placementProfile');
  const faultDomainCount = placement && intAt(placement.faultDomainCount, 'properties.placementProfile.faultDomainCount', 1, 100);

  const stubs = absent(p.containerGroupProfiles) ? [] : Array.isArray(p.containerGroupProfiles) ? p.containerGroupProfiles : bad('properties.containerGroupProfiles', "'properties.containerGroupProfiles' must be an array.");
  if (stubs.length > 1) bad('properties.containerGroupProfiles', 'More than one container group profile per NGroup is not supported by berth yet.', Codes.UnsupportedFeature);
  const containerGroupProfiles = stubs.map((s, i) => parseStub(s, `properties.containerGroupProfiles[${i}]`, subscriptionId));

  const u = objectAt(p.updateProfile, 'properties.updateProfile') ?? {};
  const mode = absent(u.updateMode) ? 'Manual' : (['Manual', 'Rolling'] as const).find((m) => typeof u.updateMode === 'string' && m.toLowerCase() === u.updateMode.toLowerCase());
  if (!mode) bad('properties.updateProfile.updateMode', `The value '${String(u.updateMode).slice(0, 40)}' of 'properties.updateProfile.updateMode' is invalid. Allowed values: Manual, Rolling.`);
  const rolling = parseRolling(objectAt(u.rollingUpdateProfile, 'properties.updateProfile.rollingUpdateProfile'));

  return {
    elasticProfile: {
      desiredCount,
      ...(maintainDesiredCount !== undefined && { maintainDesiredCount }),
      ...(prefix !== undefined && { containerGroupNamingPolicy: { guidNamingPolicy: { prefix } } }),
      ...(autoscale && { autoscale }),
    },
    ...(faultDomainCount !== undefined && { placementProfile: { faultDomainCount } }),
    containerGroupProfiles,
    updateProfile: { updateMode: mode, ...(rolling && { rollingUpdateProfile: rolling }) },
  };
}

function parseStub(s: unknown, t: string, subscriptionId: string): ProfileStub {
  const o = objectAt(s, t) ?? bad(t, `'${t}' must be an object.`);
  const resource = objectAt(o.resource, `${t}.resource`);
  const id = resource?.id;
  if (typeof id !== 'string') bad(`${t}.resource.id`, `'${t}.resource.id' is required: the resource id of a container group profile.`, Codes.MissingRequiredProperty);
  const ref = parseResourceId(id, PROFILE_TYPE);
  if (!ref) bad(`${t}.resource.id`, `'${id.slice(0, 200)}' is not the resource id of a container group profile.`);
  if (ref.subscriptionId.toLowerCase() !== subscriptionId.toLowerCase()) bad(`${t}.resource.id`, 'A container group profile of another subscription cannot be used.');
  const revision = intAt(o.revision, `${t}.revision`, 1, 2 ** 31 - 1);
  const cgp = objectAt(o.containerGroupProperties, `${t}.containerGroupProperties`);
  const containers = cgp && !absent(cgp.containers)
    ? (Array.isArray(cgp.containers) ? cgp.containers : bad(`${t}.containerGroupProperties.containers`, 'must be an array')).map((c, i) => {
        const ct = `${t}.containerGroupProperties.containers[${i}]`;
        const co = objectAt(c, ct) ?? bad(ct, `'${ct}' must be an object.`);
        if (typeof co.name !== 'string' || !co.name) bad(`${ct}.name`, `'${ct}.name' is required.`, Codes.MissingRequiredProperty);
        const mounts = objectAt(co.properties, `${ct}.properties`)?.volumeMounts;
        const volumeMounts = absent(mounts) ? [] : Array.isArray(mounts) ? mounts : bad(`${ct}.properties.volumeMounts`, 'must be an array');
        volumeMounts.forEach((m, j) => {
          const mo = objectAt(m, `${ct}.properties.volumeMounts[${j}]`);
          if (!mo || typeof mo.name !== 'string' || typeof mo.mountPath !== 'string')
            bad(`${ct}.properties.volumeMounts[${j}]`, 'A volume mount needs a name and a mountPath.', Codes.InvalidVolumeMount);
        });
        return { name: co.name, ...(volumeMounts.length > 0 && { properties: { volumeMounts: volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[] } }) };
      })
    : [];
  if (cgp && !absent(cgp.volumes) && (!Array.isArray(cgp.volumes) || cgp.volumes.length > 0))
    bad(`${t}.containerGroupProperties.volumes`, 'The volumes of an NGroup are Azure File volumes, which berth does not support yet.', Codes.UnsupportedFeature);
  return {
    resource: { id: resourceId(PROFILE_TYPE, ref) },
    ...(revision !== undefined && { revision }),
    ...(containers.length > 0 && { containerGroupProperties: { containers } }),
  };
}

function parseRolling(r: Json | undefined): RollingUpdateProfile | undefined {
  if (!r) return undefined;
  const t = 'properties.updateProfile.rollingUpdateProfile';
  const out: RollingUpdateProfile = {
    maxBatchPercent: intAt(r.maxBatchPercent, `${t}.maxBatchPercent`, 1, 100),
    maxUnhealthyPercent: intAt(r.maxUnhealthyPercent, `${t}.maxUnhealthyPercent`, 0, 100),
    maxUnhealthyUpdatedPercent: intAt(r.maxUnhealthyUpdatedPercent, `${t}.maxUnhealthyUpdatedPercent`, 0, 100),
    pauseTimeBetweenBatches: durationAt(r.pauseTimeBetweenBatches, `${t}.pauseTimeBetweenBatches`, 24 * HOUR),
    inPlaceUpdate: boolAt(r.inPlaceUpdate, `${t}.inPlaceUpdate`),
    autoRollback: boolAt(r.autoRollback, `${t}.autoRollback`),
    healthyDeadline: durationAt(r.healthyDeadline, `${t}.healthyDeadline`, 24 * HOUR, 1000),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as RollingUpdateProfile;
}

function parseAutoscale(a: Json | undefined): AutoscaleProfile | undefined {
  if (!a) return undefined;
  const t = 'properties.elasticProfile.autoscale';
  const minCount = intAt(a.minCount, `${t}.minCount`, 1, MAX_DESIRED_COUNT) ?? 1;
  const maxCount = intAt(a.maxCount, `${t}.maxCount`, 1, MAX_DESIRED_COUNT) ?? bad(`${t}.maxCount`, `'${t}.maxCount' is required.`, Codes.MissingRequiredProperty);
  if (maxCount < minCount) bad(`${t}.maxCount`, `'${t}.maxCount' (${maxCount}) must be at least 'minCount' (${minCount}).`);
  const target = intAt(a.targetCpuUtilizationPercent, `${t}.targetCpuUtilizationPercent`, 1, 1000)
    ?? bad(`${t}.targetCpuUtilizationPercent`, `'${t}.targetCpuUtilizationPercent' is required: the average CPU use of the members, in percent of their CPU requests, to scale to.`, Codes.MissingRequiredProperty);
  let tolerance: number | undefined;
  if (!absent(a.tolerance)) {
    if (typeof a.tolerance !== 'number' || !(a.tolerance >= 0 && a.tolerance < 1)) bad(`${t}.tolerance`, `'${t}.tolerance' must be a number from 0 to below 1 (0.1: changes within 10% are ignored).`);
    tolerance = a.tolerance;
  }
  const out: AutoscaleProfile = {
    minCount, maxCount, targetCpuUtilizationPercent: target, tolerance,
    syncPeriod: durationAt(a.syncPeriod, `${t}.syncPeriod`, HOUR, 1000),
    metricWindow: durationAt(a.metricWindow, `${t}.metricWindow`, HOUR, 1000),
    scaleUpStabilizationWindow: durationAt(a.scaleUpStabilizationWindow, `${t}.scaleUpStabilizationWindow`, HOUR),
    scaleDownStabilizationWindow: durationAt(a.scaleDownStabilizationWindow, `${t}.scaleDownStabilizationWindow`, HOUR),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as AutoscaleProfile;
}

/**
 * The rules of an update, applied to what a PUT or PATCH would make of an existing NGroup:
 * `maintainDesiredCount` left out keeps its value (Microsoft's docs), zones can be added but never
 * removed, and `faultDomainCount` is set at creation only.
 */
export function applyUpdateRules(old: NGroupPut, next: NGroupPut): NGroupPut {
  const e = next.properties.elasticProfile;
  const kept = old.properties.elasticProfile.maintainDesiredCount;
  const properties = e.maintainDesiredCount === undefined && kept !== undefined
    ? { ...next.properties, elasticProfile: { ...e, maintainDesiredCount: kept } }
    : next.properties;
  const removed = old.zones.filter((z) => !next.zones.includes(z));
  if (removed.length > 0) bad('zones', `Zones cannot be removed from an NGroup (it would leave out ${removed.join(', ')}); zones can only be added.`, Codes.InvalidNGroupUpdate);
  if ((old.properties.placementProfile?.faultDomainCount ?? undefined) !== (next.properties.placementProfile?.faultDomainCount ?? undefined))
    bad('properties.placementProfile.faultDomainCount', "'faultDomainCount' is set when an NGroup is created and cannot be changed.", Codes.InvalidNGroupUpdate);
  return { ...next, properties };
}

/**
 * A PATCH (NGroupPatch) applied to the NGroup as it is, as a JSON merge patch: objects merge, arrays
 * and values replace, null removes. The result is validated as a PUT body would be.
 */
export function patchedBody(current: NGroupPut & { location: string }, patch: unknown): Json {
  if (patch !== undefined && !isObj(patch)) bad('body', 'The request body must be a JSON object.');
  const p = (patch ?? {}) as Json;
  const base: Json = { location: current.location, tags: current.tags, zones: current.zones, properties: current.properties };
  return mergePatch(base, { ...(p.properties !== undefined && { properties: p.properties }), ...(p.tags !== undefined && { tags: p.tags }), ...(p.zones !== undefined && { zones: p.zones }), ...(p.identity !== undefined && { identity: p.identity }) }) as Json;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return patch;
  const out: Json = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** The member names an NGroup's naming policy gives: the prefix and a GUID. */
export const memberNamePrefix = (p: NGroupProperties) => p.elasticProfile.containerGroupNamingPolicy?.guidNamingPolicy?.prefix ?? '';

export const ngroupId = (r: ResourceRef) => resourceId(NGROUP_TYPE, r);
