// ARM's long-running operations on the wire: where to poll, and how often.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { baseUrl } from './base-url.js';

/** The request's api-version (present: the auth hook refused a request without one). */
export const apiVersionOf = (req: FastifyRequest) => String((req.query as Record<string, unknown>)['api-version'] ?? '');

/**
 * Points the client at an operation to poll: `Azure-AsyncOperation` and `Location` (what the SDKs and
 * az follow), and `Retry-After` (az waits 30 s between polls without it).
 */
export function setLroHeaders(req: FastifyRequest, reply: FastifyReply, operationPath: string): void {
  const url = `${baseUrl(req)}${operationPath}?api-version=${apiVersionOf(req)}`;
  reply.header('Azure-AsyncOperation', url).header('Location', url).header('Retry-After', '1');
}
