// Typed readers of a JSON request body: each says exactly which property is wrong, as an ARM 400 naming it.
import { BerthError, Codes } from '../lib/errors.js';

export type Json = unknown;
export const isObj = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function bad(code: string, target: string, message: string): never {
  throw new BerthError(code, message, 400, target);
}

/** A request value as an error message may quote it: short, and never a walk of a nested structure. */
export function show(v: Json): string {
  if (typeof v === 'string') return v.length > 100 ? `${v.slice(0, 100)}…` : v;
  if (Array.isArray(v)) return '(an array)';
  if (typeof v === 'object' && v !== null) return '(an object)';
  return String(v);
}

export function obj(v: Json, target: string, required = true): Record<string, Json> | undefined {
  if (v === undefined || v === null) {
    if (required) bad(Codes.MissingRequiredProperty, target, `The property '${target}' is required.`);
    return undefined;
  }
  if (!isObj(v)) bad(Codes.InvalidRequestContent, target, `The property '${target}' must be an object.`);
  return v;
}

export function arr(v: Json, target: string): Json[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) bad(Codes.InvalidRequestContent, target, `The property '${target}' must be an array.`);
  return v;
}

export function str(v: Json, target: string, required: true): string;
export function str(v: Json, target: string, required?: false): string | undefined;
export function str(v: Json, target: string, required = false): string | undefined {
  if (v === undefined || v === null) {
    if (required) bad(Codes.MissingRequiredProperty, target, `The property '${target}' is required.`);
    return undefined;
  }
  if (typeof v !== 'string') bad(Codes.InvalidRequestContent, target, `The property '${target}' must be a string.`);
  return v;
}

export function num(v: Json, target: string, code: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    bad(code, target, `The property '${target}' must be a number.`);
  return v;
}

export function enumOf<T extends string>(v: Json, target: string, allowed: readonly T[], code: string, dflt?: T): T {
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    bad(Codes.MissingRequiredProperty, target, `The property '${target}' is required.`);
  }
  // ARM enums are case-insensitive on input; store the canonical spelling.
  const hit = typeof v === 'string' ? allowed.find((a) => a.toLowerCase() === v.toLowerCase()) : undefined;
  if (!hit) bad(code, target, `The value '${show(v)}' of '${target}' is invalid. Allowed values: ${allowed.join(', ')}.`);
  return hit;
}

