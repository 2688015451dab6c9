// Validates API responses against the ACI OpenAPI (Swagger 2.0) spec in ../shared/specs: the schema each operation declares.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

type Schema = {
  $ref?: string; type?: string; properties?: Record<string, Schema>; required?: string[]; items?: Schema;
  additionalProperties?: Schema | boolean; allOf?: Schema[]; enum?: unknown[]; format?: string; 'x-ms-enum'?: { modelAsString?: boolean };
};
interface Spec {
  definitions: Record<string, Schema>;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, { schema?: Schema }> }>>;
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const specPath = join(repo, '../shared/specs/aci/2023-05-01/containerInstance.json');
const spec = JSON.parse(readFileSync(specPath, 'utf8')) as Spec;

const resolveRef = (s: Schema): Schema => (s.$ref ? resolveRef(spec.definitions[s.$ref.replace('#/definitions/', '')]) : s);

/** All properties an object schema allows, through allOf. */
function flatten(s: Schema): { properties: Record<string, Schema>; required: string[]; additional?: Schema | boolean; type?: string } {
  s = resolveRef(s);
  const out = { properties: { ...(s.properties ?? {}) }, required: [...(s.required ?? [])], additional: s.additionalProperties, type: s.type };
  for (const part of s.allOf ?? []) {
    const f = flatten(part);
    Object.assign(out.properties, f.properties);
    out.required.push(...f.required);
    out.additional ??= f.additional;
    out.type ??= f.type;
  }
  return out;
}

/** Every way `value` departs from `schema`, as "path: problem" lines; unknown properties count. */
export function validate(value: unknown, schema: Schema, path = '$'): string[] {
  const s = resolveRef(schema);
  const f = flatten(s);
  const type = f.type ?? (Object.keys(f.properties).length > 0 ? 'object' : undefined);
  const errs: string[] = [];
  if (value === null || value === undefined) return [`${path}: is ${value}`];
  switch (type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object`];
      const o = value as Record<string, unknown>;
      for (const r of f.required) if (!(r in o)) errs.push(`${path}: missing required '${r}'`);
      for (const [k, v] of Object.entries(o)) {
        if (f.properties[k]) errs.push(...validate(v, f.properties[k], `${path}.${k}`));
        else if (typeof f.additional === 'object') errs.push(...validate(v, f.additional, `${path}.${k}`));
        else if (f.additional !== true) errs.push(`${path}: unknown property '${k}'`);
      }
      return errs;
    }
    case 'array':
      if (!Array.isArray(value)) return [`${path}: expected an array`];
      return value.flatMap((v, i) => (s.items ? validate(v, s.items, `${path}[${i}]`) : []));
    case 'string':
      if (typeof value !== 'string') return [`${path}: expected a string, got ${JSON.stringify(value)}`];
      // An x-ms-enum modelled as string may grow new values; a closed enum may not.
      if (s.enum && !s['x-ms-enum']?.modelAsString && !s.enum.includes(value)) return [`${path}: '${value}' not in ${JSON.stringify(s.enum)}`];
      if (s.format === 'date-time' && Number.isNaN(Date.parse(value))) return [`${path}: '${value}' is not a date-time`];
      return [];
    case 'integer':
      return Number.isInteger(value) ? [] : [`${path}: expected an integer, got ${JSON.stringify(value)}`];
    case 'number':
      return typeof value === 'number' ? [] : [`${path}: expected a number`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${path}: expected a boolean`];
    default:
      return [];
  }
}

/** operationIds of every operation in the spec. */
export const allOperations = () => Object.values(spec.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));

/** The schema the spec declares for a response to METHOD URL with STATUS (`default` for errors), or undefined. */
export function responseSchema(method: string, url: string, status: number): { operationId: string; schema?: Schema } | undefined {
  const path = new URL(url, 'http://x').pathname;
  for (const [template, ops] of Object.entries(spec.paths)) {
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`, 'i');
    if (!re.test(path)) continue;
    const op = ops[method.toLowerCase()];
    if (!op) continue;
    const r = op.responses[String(status)] ?? (status >= 400 ? op.responses.default : undefined);
    if (!r) return { operationId: `${op.operationId} (status ${status} not declared)` };
    return { operationId: op.operationId, schema: r.schema };
  }
  return undefined;
}
