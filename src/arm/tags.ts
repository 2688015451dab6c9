// ARM resource tags: what any resource's `tags` may hold.
import { BerthError, Codes } from '../lib/errors.js';

export type Tags = Record<string, string>;

/** `tags` of a request body (absent: none); ARM's limits: 50 tags, names up to 512 characters, values up to 256. */
export function parseTags(value: unknown, target = 'tags'): Tags {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new BerthError(Codes.InvalidRequestContent, `'${target}' must be an object of strings.`, 400, target);
  const out: Tags = {};
  for (const [k, v] of Object.entries(value)) {
    const shown = k.length > 100 ? `${k.slice(0, 100)}…` : k;
    if (typeof v !== 'string') throw new BerthError(Codes.InvalidRequestContent, `The tag '${shown}' must have a string value.`, 400, `${target}.${shown}`);
    if (k.length > 512 || v.length > 256) throw new BerthError('InvalidTag', `The tag '${shown}' is too long (names up to 512, values up to 256 characters).`, 400, `${target}.${shown}`);
    out[k] = v;
  }
  if (Object.keys(out).length > 50) throw new BerthError('InvalidTag', 'A resource may have at most 50 tags.', 400, target);
  return out;
}
