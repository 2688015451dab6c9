// Validates API responses against the ACI OpenAPI (Swagger 2.0) specs in ../shared/specs: the schema each operation declares.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Schema = {
  $ref?: string; type?: string; properties?: Record<string, Schema>; required?: string[]; items?: Schema; readOnly?: boolean;
  additionalProperties?: Schema | boolean; allOf?: Schema[]; enum?: unknown[]; format?: string; 'x-ms-enum'?: { modelAsString?: boolean };
};
interface SpecFile {
  definitions: Record<string, Schema>;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, { schema?: Schema }> }>>;
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** The api-versions whose specs are at hand. */
export const SPEC_VERSIONS = ['2023-05-01', '2025-09-01'] as const;
export const specPath = (version: string) => join(repo, `../shared/specs/aci/${version}/containerInstance.json`);

/** ARM's common types (resource-management v5) that the TypeSpec-made specs refer to in another file. */
const COMMON_TYPES: Record<string, Schema> = {
  systemData: {
    type: 'object', readOnly: true,
    properties: Object.fromEntries(['createdBy', 'createdByType', 'createdAt', 'lastModifiedBy', 'lastModifiedByType', 'lastModifiedAt'].map((k) => [k, { type: 'string' }])),
  },
  Resource: {
    type: 'object',
    properties: {
      id: { type: 'string', readOnly: true }, name: { type: 'string', readOnly: true }, type: { type: 'string', readOnly: true },
      systemData: { $ref: '#/definitions/systemData' },
    },
  },
  ProxyResource: { allOf: [{ $ref: '#/definitions/Resource' }] },
  ErrorResponse: { type: 'object', properties: { error: { $ref: '#/definitions/ErrorDetail' } } },
  ErrorDetail: {
    type: 'object',
    properties: {
      code: { type: 'string' }, message: { type: 'string' }, target: { type: 'string' },
      details: { type: 'array', items: { $ref: '#/definitions/ErrorDetail' } }, additionalInfo: { type: 'array', items: { type: 'object' } },
    },
  },
};

export class Spec {
  private spec: SpecFile;

  constructor(readonly version: string) {
    this.spec = JSON.parse(readFileSync(specPath(version), 'utf8')) as SpecFile;
  }

  private definition(ref: string): Schema {
    const name = ref.split('/').pop()!;
    // refs within the file first: a spec's own definition of a name wins over the common one
    return (ref.startsWith('#') && this.spec.definitions[name]) || COMMON_TYPES[name] || this.spec.definitions[name];
  }

  resolveRef(s: Schema): Schema {
    return s.$ref ? this.resolveRef(this.definition(s.$ref)) : s;
  }

  /** All properties an object schema allows, through allOf. */
  flatten(s: Schema): { properties: Record<string, Schema>; required: string[]; additional?: Schema | boolean; type?: string } {
    s = this.resolveRef(s);
    const out = { properties: { ...(s.properties ?? {}) }, required: [...(s.required ?? [])], additional: s.additionalProperties, type: s.type };
    for (const part of s.allOf ?? []) {
      const f = this.flatten(part);
      Object.assign(out.properties, f.properties);
      out.required.push(...f.required);
      out.additional ??= f.additional;
      out.type ??= f.type;
    }
    return out;
  }

  /**
   * Every way `value` departs from `schema`, as "path: problem" lines; unknown properties count, but for
   * those at a path `extensions` matches (fields ACI or berth add beyond the spec, each named where it is tested).
   */
  validate(value: unknown, schema: Schema, path = '$', extensions: RegExp[] = []): string[] {
    const s = this.resolveRef(schema);
    const f = this.flatten(s);
    const type = f.type ?? (Object.keys(f.properties).length > 0 ? 'object' : undefined);
    const errs: string[] = [];
    if (value === null || value === undefined) return [`${path}: is ${value}`];
    switch (type) {
      case 'object': {
        if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected an object`];
        const o = value as Record<string, unknown>;
        for (const r of f.required) if (!(r in o)) errs.push(`${path}: missing required '${r}'`);
        for (const [k, v] of Object.entries(o)) {
          if (f.properties[k]) errs.push(...this.validate(v, f.properties[k], `${path}.${k}`, extensions));
          else if (typeof f.additional === 'object') errs.push(...this.validate(v, f.additional, `${path}.${k}`, extensions));
          else if (f.additional !== true && !extensions.some((e) => e.test(`${path}.${k}`))) errs.push(`${path}: unknown property '${k}'`);
        }
        return errs;
      }
      case 'array':
        if (!Array.isArray(value)) return [`${path}: expected an array`];
        return value.flatMap((v, i) => (s.items ? this.validate(v, s.items, `${path}[${i}]`, extensions) : []));
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

  /** Every property path a definition allows (`[]` for array elements), down to `depth` levels. */
  paths(root: string, depth = 8): Set<string> {
    const out = new Set<string>();
    const walk = (s: Schema, prefix: string, seen: string[]) => {
      if (seen.length > depth || (s.$ref && seen.includes(s.$ref))) return;
      const next = s.$ref ? [...seen, s.$ref] : seen;
      const r = this.resolveRef(s);
      if (r.type === 'array' && r.items) return walk(r.items, `${prefix}[]`, next);
      for (const [k, v] of Object.entries(this.flatten(r).properties)) {
        const p = prefix ? `${prefix}.${k}` : k;
        out.add(p);
        walk(v, p, next);
      }
    };
    walk({ $ref: `#/definitions/${root}` }, '', []);
    return out;
  }

  /** operationIds of every operation in the spec, and the resource types under the provider its paths name. */
  allOperations(filter: (path: string) => boolean = () => true) {
    return Object.entries(this.spec.paths).filter(([p]) => filter(p)).flatMap(([, ops]) => Object.values(ops).map((o) => o.operationId));
  }

  resourceTypes(): Set<string> {
    return new Set(Object.keys(this.spec.paths).map((p) => /\/providers\/Microsoft\.ContainerInstance\/([^/{]+)/i.exec(p)?.[1]).filter((t): t is string => !!t));
  }

  /** The schema the spec declares for a response to METHOD URL with STATUS (`default` for errors), or undefined. */
  responseSchema(method: string, url: string, status: number): { operationId: string; schema?: Schema } | undefined {
    const path = new URL(url, 'http://x').pathname;
    for (const [template, ops] of Object.entries(this.spec.paths)) {
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
}
