// berth's placement extension on the wire: ACI's `zones` and `properties.placement` (rules in, read-only host and zone out), validated into what the scheduler takes.
import { Codes } from '../../lib/errors.js';
import { arr, bad, enumOf, isObj, num, obj, show, str, type Json } from '../readers.js';
import type { AffinityTerm, PlacementRules } from './types.js';

/** Zone and host label names and values: what a host may register (`--zone`, `--label k=v`). */
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const MAX_TERMS = 16;
const MAX_SELECTOR_ENTRIES = 32;
/** The read-only parts a client may send back as it read them (a GET's body PUT again): ignored. */
const READ_ONLY = new Set(['host', 'zone']);
const KNOWN = new Set(['strategy', 'hostLabels', 'affinity', 'antiAffinity', ...READ_ONLY]);

const invalid = (target: string, message: string): never => bad(Codes.InvalidPlacement, target, message);

/** ACI's `zones`: the zones the group may run in (berth: any of them); absent or empty, any zone. */
export function parseZones(v: Json): string[] {
  const zones = arr(v, 'zones').map((z, i) => {
    const zone = str(z, `zones[${i}]`, true);
    if (!NAME.test(zone)) invalid(`zones[${i}]`, `The zone '${show(zone)}' is invalid: use 1 to 64 letters, digits, dots, dashes, underscores and slashes.`);
    return zone;
  });
  if (new Set(zones).size !== zones.length) invalid('zones', 'A zone is listed more than once.');
  return zones;
}

function labels(v: Json, target: string, what: string): Record<string, string> {
  const o = obj(v, target, false) ?? {};
  const entries = Object.entries(o);
  if (entries.length > MAX_SELECTOR_ENTRIES) invalid(target, `At most ${MAX_SELECTOR_ENTRIES} ${what} may be given.`);
  for (const [k, val] of entries) {
    if (!NAME.test(k)) invalid(`${target}.${k}`, `The ${what} name '${show(k)}' is invalid.`);
    if (typeof val !== 'string' || !VALUE.test(val)) invalid(`${target}.${k}`, `The value of ${what} '${show(k)}' must be a string of at most 63 letters, digits, dots, dashes and underscores.`);
  }
  return o as Record<string, string>;
}

function term(v: Json, target: string): AffinityTerm {
  const o = obj(v, target)!;
  for (const k of Object.keys(o)) if (!['selector', 'scope', 'required', 'weight'].includes(k)) invalid(`${target}.${k}`, `Unknown property '${k}' in an affinity term.`);
  const sel = obj(o.selector, `${target}.selector`)!;
  for (const k of Object.keys(sel)) if (k !== 'tags' && k !== 'names') invalid(`${target}.selector.${k}`, `A selector selects groups by 'tags' or 'names', not '${show(k)}'.`);
  const tags = labels(sel.tags, `${target}.selector.tags`, 'tag');
  const names = arr(sel.names, `${target}.selector.names`).map((n, i) => str(n, `${target}.selector.names[${i}]`, true));
  if (names.length > MAX_SELECTOR_ENTRIES) invalid(`${target}.selector.names`, `At most ${MAX_SELECTOR_ENTRIES} names may be given.`);
  if (names.length === 0 && Object.keys(tags).length === 0) invalid(`${target}.selector`, 'A selector needs tags or names: an empty one would select every group.');
  const scope = enumOf(o.scope, `${target}.scope`, ['Host', 'Zone'] as const, Codes.InvalidPlacement, 'Host');
  const given = o.required ?? true;
  if (typeof given !== 'boolean') invalid(`${target}.required`, `The property '${target}.required' must be true or false.`);
  const required = given as boolean;
  const weight = num(o.weight, `${target}.weight`, Codes.InvalidPlacement);
  if (weight !== undefined && (required || !Number.isInteger(weight) || weight < 1 || weight > 100))
    invalid(`${target}.weight`, required ? 'Only a preferred term (required: false) has a weight.' : 'A weight is an integer from 1 to 100.');
  return {
    selector: { ...(Object.keys(tags).length > 0 && { tags }), ...(names.length > 0 && { names }) },
    scope,
    required,
    ...(!required && { weight: weight ?? 1 }),
  };
}

function terms(v: Json, target: string): AffinityTerm[] | undefined {
  const list = arr(v, target);
  if (list.length > MAX_TERMS) invalid(target, `At most ${MAX_TERMS} terms may be given.`);
  return list.length > 0 ? list.map((t, i) => term(t, `${target}[${i}]`)) : undefined;
}

/** `properties.placement`: the rules a group's host must satisfy; undefined when it asks nothing. */
export function parsePlacement(v: Json): PlacementRules | undefined {
  const target = 'properties.placement';
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) invalid(target, `The property '${target}' must be an object.`);
  const o = v as Record<string, Json>;
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) invalid(`${target}.${k}`, `Unknown placement property '${show(k)}': berth knows strategy, hostLabels, affinity and antiAffinity.`);
  const strategy = o.strategy === undefined || o.strategy === null ? undefined : enumOf(o.strategy, `${target}.strategy`, ['BinPack', 'Spread'] as const, Codes.InvalidPlacement);
  const hostLabels = labels(o.hostLabels, `${target}.hostLabels`, 'host label');
  const affinity = terms(o.affinity, `${target}.affinity`);
  const antiAffinity = terms(o.antiAffinity, `${target}.antiAffinity`);
  const rules: PlacementRules = {
    ...(strategy && { strategy }),
    ...(Object.keys(hostLabels).length > 0 && { hostLabels }),
    ...(affinity && { affinity }),
    ...(antiAffinity && { antiAffinity }),
  };
  return Object.keys(rules).length > 0 ? rules : undefined;
}

/** What a response shows under `properties.placement`: the rules as stored, and where the group runs (read-only). */
export function renderPlacement(rules: PlacementRules | undefined, where: { host?: string; zone?: string }) {
  return { ...rules, ...(where.host && { host: where.host }), ...(where.zone && { zone: where.zone }) };
}
