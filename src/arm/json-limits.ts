// Bounds on the shape of a JSON request body, checked before anything walks it recursively.
import { BerthError, Codes } from '../lib/errors.js';

/** Deeper than any ARM resource berth serves (a container group is ~8 levels), and far from any stack limit. */
export const MAX_JSON_DEPTH = 64;
/** Values (objects, arrays, scalars) in one body: a 4 MiB body of tiny values stays well under. */
export const MAX_JSON_VALUES = 200_000;

/**
 * Throws 400 RequestContentTooComplex when `value` nests deeper than `maxDepth` or holds more than
 * `maxValues` values. Iterative, so a hostile body cannot overflow the stack here; the validators and
 * message builders that recurse afterwards only ever see bounded input.
 */
export function checkJsonShape(value: unknown, maxDepth = MAX_JSON_DEPTH, maxValues = MAX_JSON_VALUES): void {
  const stack: [unknown, number][] = [[value, 1]];
  let seen = 0;
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (++seen > maxValues)
      throw new BerthError(Codes.RequestContentTooComplex, `The request content has more than ${maxValues} values.`, 400);
    if (typeof v !== 'object' || v === null) continue;
    if (depth > maxDepth)
      throw new BerthError(Codes.RequestContentTooComplex, `The request content is nested deeper than ${maxDepth} levels.`, 400);
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
}
