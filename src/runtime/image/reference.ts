// How each image registry is reached: its API host, and plain HTTP or TLS.
import { DEFAULT_REGISTRY } from '../../lib/image-reference.js';

/** Host of the registry API; docker.io's API lives on another name. */
export const registryApiHost = (registry: string): string =>
  registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;

/** Host part of "host:port" / "[v6]:port", without brackets. */
export function hostOnly(registry: string): string {
  const lower = registry.toLowerCase();
  if (lower.startsWith('[')) return lower.slice(1, lower.indexOf(']'));
  const colon = lower.lastIndexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

/** Loopback registries are reached over plain HTTP, as Docker does. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOnly(registry);
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/** "http://127.0.0.1:5000" or "https://registry-1.docker.io". `insecure` entries match "host:port" or bare "host". */
export function registryBaseUrl(registry: string, insecure: readonly string[] = []): string {
  const apiHost = registryApiHost(registry);
  const plain =
    isLoopbackRegistry(registry) ||
    insecure.some((entry) => {
      const e = entry.toLowerCase().replace(/^https?:\/\//, '').replace(/\/+$/, '');
      return e === registry || e === hostOnly(registry) || e === apiHost;
    });
  return `${plain ? 'http' : 'https'}://${apiHost}`;
}
