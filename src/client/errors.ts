// The client's one error: every failure (an ARM error envelope, an unexpected answer, no answer at all) as an ArmError.
import { BerthError, Codes } from '../lib/errors.js';

/**
 * A failed call: `status` is the HTTP status (503 when no answer came), `code` and `message` are
 * the endpoint's ARM error (or one of the catalogue's client codes: ServiceUnreachable,
 * UnexpectedResponse, OperationTimedOut, …), `target` the field it names. A BerthError, so it
 * renders as the same ARM envelope wherever berth passes it on.
 */
export class ArmError extends BerthError {
  constructor(
    code: string,
    message: string,
    status: number,
    target?: string,
    /** The endpoint's x-ms-request-id, when it answered. */
    readonly requestId?: string,
    readonly details?: unknown[],
  ) {
    super(code, message, status, target);
    this.name = 'ArmError';
  }
}

export const isArmError = (e: unknown): e is ArmError => e instanceof ArmError;

/** True for the answer that says the resource is not there (ARM's 404, whatever the code). */
export const isNotFound = (e: unknown) => isArmError(e) && e.status === 404;

/** The error an endpoint's answer carries: ARM's `{"error":{…}}`, OAuth's `{"error":"…"}`, or neither. */
export function errorFromResponse(status: number, text: string, requestId?: string): ArmError {
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const e = (body as { error?: unknown; error_description?: string } | undefined)?.error;
  if (e && typeof e === 'object') {
    const { code, message, target, details } = e as { code?: string; message?: string; target?: string; details?: unknown[] };
    return new ArmError(code || Codes.UnexpectedResponse, message ?? `HTTP ${status}`, status, target, requestId, details);
  }
  if (typeof e === 'string') return new ArmError(e, (body as { error_description?: string }).error_description ?? e, status, undefined, requestId);
  const excerpt = text.trim().slice(0, 200);
  return new ArmError(Codes.UnexpectedResponse, `HTTP ${status}${excerpt ? `: ${excerpt}` : ''}`, status, undefined, requestId);
}

/** No answer: what the socket said, and where it tried. */
export function unreachable(url: string, cause: Error): ArmError {
  const why = (cause as NodeJS.ErrnoException).code ? `${(cause as NodeJS.ErrnoException).code}: ${cause.message}` : cause.message;
  const e = new ArmError(Codes.ServiceUnreachable, `Cannot reach ${new URL(url).origin}: ${why}`, 503);
  e.cause = cause;
  return e;
}
