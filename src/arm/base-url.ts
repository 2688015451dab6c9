// The base URL berth puts into what it answers (operation status, nextLink, WebSocket URIs, cloud metadata, OpenID).
import type { FastifyRequest } from 'fastify';

/** A Host header that is a plain host[:port]: anything else is never echoed into a URL or a header. */
const HOST_HEADER = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** `scheme://host[:port]` from the Host the client sent when it is one, else from the address the request came in on. */
export function baseUrl(req: FastifyRequest): string {
  const host = req.headers.host;
  if (host && HOST_HEADER.test(host)) return `${req.protocol}://${host}`;
  const a = req.socket.localAddress ?? '127.0.0.1';
  return `${req.protocol}://${a.includes(':') ? `[${a}]` : a}:${req.socket.localPort}`;
}
