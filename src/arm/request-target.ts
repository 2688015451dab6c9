// The request target as berth routes it: one canonical spelling per resource path, or the reason it is refused.
//
// Routing and authorization must see the same path. A target is decoded once, strictly, segment by
// segment, and re-encoded in one canonical way before the router sees it, so `/%73ubscriptions/x`,
// `//subscriptions/x/` and `/subscriptions/x` are one path, and what the router hands a route as
// `:sub` is exactly what authorization checks. Targets that have no one meaning are refused: absolute-
// and asterisk-form, dot segments, encoded slashes or control characters, bad percent-escapes.
import { BerthError, Codes } from '../lib/errors.js';

/** Longest path (as sent) and path segment (decoded) berth routes; ARM's own names are far shorter. */
export const MAX_PATH_LENGTH = 4096;
export const MAX_SEGMENT_LENGTH = 1024;

const refuse = (message: string) => new BerthError(Codes.InvalidRequestUri, message, 400);
const tooLong = (message: string) => new BerthError(Codes.RequestUriTooLong, message, 414);

/**
 * The canonical form of an origin-form request target (`/path?query`): empty segments dropped (doubled
 * and trailing slashes), each segment percent-decoded once and re-encoded with encodeURIComponent; the
 * query is kept as sent. Throws BerthError (400 InvalidRequestUri, 414 RequestUriTooLong) otherwise.
 */
export function canonicalTarget(raw: string): string {
  if (!raw.startsWith('/'))
    throw refuse("The request target must be a path starting with '/'; absolute-form and asterisk-form targets are not accepted.");
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q);
  if (path.length > MAX_PATH_LENGTH) throw tooLong(`The request path is longer than ${MAX_PATH_LENGTH} characters.`);
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '') continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      throw refuse('The request path has an invalid percent-encoding (each % must start an escape of UTF-8).');
    }
    if (decoded === '.' || decoded === '..') throw refuse("The request path must not have '.' or '..' segments.");
    // eslint-disable-next-line no-control-regex
    if (/[/\\\x00-\x1f\x7f]/.test(decoded)) throw refuse('The request path has an encoded slash, backslash or control character in a segment.');
    if (decoded.length > MAX_SEGMENT_LENGTH) throw tooLong(`A segment of the request path is longer than ${MAX_SEGMENT_LENGTH} characters.`);
    segments.push(encodeURIComponent(decoded));
  }
  return `/${segments.join('/')}${query}`;
}

/** The path of a target for messages: no query, at most `max` characters. */
export function describePath(url: string, max = 200): string {
  const path = url.split('?')[0];
  return path.length > max ? `${path.slice(0, max)}…` : path;
}
