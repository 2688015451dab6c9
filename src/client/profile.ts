// Where berth's own tools find their endpoint: BERTH_* variables, else the profile `berth up` saved.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { readableSecretWarning } from '../lib/secret-file.js';
import { ContainerInstanceClient, type ClientOptions } from './client.js';
import { StaticTokenCredential } from './credentials.js';

export interface Profile {
  endpoint: string;
  token: string;
  subscription: string;
  /** PEM file of the CA to trust for an https endpoint (default: the system's). */
  caCert?: string;
}

/** A profile is missing or incomplete: nothing says where berth is. */
export class ProfileError extends Error {}

export const profilePath = () => join(process.env.BERTH_CONFIG_DIR ?? join(homedir(), '.config', 'berth'), 'cli.json');

export function saveProfile(p: Profile) {
  mkdirSync(dirname(profilePath()), { recursive: true, mode: 0o700 });
  // It holds a token: the owner's alone (the mode given to writeFileSync applies only to a new file).
  writeFileSync(profilePath(), JSON.stringify(p, null, 2) + '\n', { mode: 0o600 });
  chmodSync(profilePath(), 0o600);
}

/**
 * BERTH_ENDPOINT / BERTH_TOKEN / BERTH_SUBSCRIPTION / BERTH_CA_CERT win over what `berth up` saved.
 * `warn` hears when the saved profile holds a token and others may read it.
 */
export function loadProfile(warn: (message: string) => void = () => undefined): Profile {
  const saved: Partial<Profile> = existsSync(profilePath()) ? JSON.parse(readFileSync(profilePath(), 'utf8')) : {};
  const exposed = saved.token ? readableSecretWarning(profilePath(), 'an API token') : undefined;
  if (exposed) warn(exposed);
  const endpoint = process.env.BERTH_ENDPOINT ?? saved.endpoint;
  const token = process.env.BERTH_TOKEN ?? saved.token;
  if (!endpoint || !token) throw new ProfileError('No berth endpoint configured: run `berth up`, or set BERTH_ENDPOINT and BERTH_TOKEN.');
  const caCert = process.env.BERTH_CA_CERT ?? saved.caCert;
  return { endpoint: endpoint.replace(/\/$/, ''), token, subscription: process.env.BERTH_SUBSCRIPTION ?? saved.subscription ?? 'default', ...(caCert && { caCert }) };
}

/** A client for a profile (a static token, the profile's CA). */
export function clientFor(p: Profile, o: Partial<ClientOptions> = {}): ContainerInstanceClient {
  return new ContainerInstanceClient({
    endpoint: p.endpoint, subscriptionId: p.subscription, credential: new StaticTokenCredential(p.token),
    ...(p.caCert && { ca: readFileSync(p.caCert) }), ...o,
  });
}
