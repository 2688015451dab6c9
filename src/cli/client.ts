// A small ARM client for the berth CLI: endpoint and token discovery, requests, LRO polling.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { readableSecretWarning } from '../lib/secret-file.js';

export const API_VERSION = '2023-05-01';

export interface CliConfig {
  endpoint: string;
  token: string;
  subscription: string;
}

export const cliConfigPath = () => join(process.env.BERTH_CONFIG_DIR ?? join(homedir(), '.config', 'berth'), 'cli.json');

export function saveCliConfig(c: CliConfig) {
  mkdirSync(dirname(cliConfigPath()), { recursive: true, mode: 0o700 });
  writeFileSync(cliConfigPath(), JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
  chmodSync(cliConfigPath(), 0o600);
}

/** BERTH_ENDPOINT / BERTH_TOKEN / BERTH_SUBSCRIPTION win over what `berth up` saved. */
export function loadCliConfig(): CliConfig {
  const saved: Partial<CliConfig> = existsSync(cliConfigPath()) ? JSON.parse(readFileSync(cliConfigPath(), 'utf8')) : {};
  const exposed = saved.token ? readableSecretWarning(cliConfigPath(), 'an API token') : undefined;
  if (exposed) process.stderr.write(`berth: warning: ${exposed}\n`);
  const endpoint = process.env.BERTH_ENDPOINT ?? saved.endpoint;
  const token = process.env.BERTH_TOKEN ?? saved.token;
  if (!endpoint || !token) throw new CliError('No berth endpoint configured: run `berth up`, or set BERTH_ENDPOINT and BERTH_TOKEN.');
  return { endpoint: endpoint.replace(/\/$/, ''), token, subscription: process.env.BERTH_SUBSCRIPTION ?? saved.subscription ?? 'default' };
}

export class CliError extends Error {}

export class ArmClient {
  constructor(private c: CliConfig) {}

  get subscription() {
    return this.c.subscription;
  }

  groupPath(rg: string, name?: string) {
    const base = `/subscriptions/${this.c.subscription}/resourceGroups/${encodeURIComponent(rg)}/providers/Microsoft.ContainerInstance/containerGroups`;
    return name ? `${base}/${encodeURIComponent(name)}` : base;
  }

  listPath() {
    return `/subscriptions/${this.c.subscription}/providers/Microsoft.ContainerInstance/containerGroups`;
  }

  url(path: string, query: Record<string, string | number | boolean | undefined> = {}) {
    const u = new URL(path.startsWith('http') ? path : this.c.endpoint + path);
    if (!u.searchParams.has('api-version')) u.searchParams.set('api-version', API_VERSION);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async raw(method: string, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>) {
    const res = await fetch(this.url(path, query), {
      method,
      headers: { authorization: `Bearer ${this.c.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((e: Error) => {
      throw new CliError(`Cannot reach berth at ${this.c.endpoint}: ${(e.cause as Error)?.message ?? e.message}`);
    });
    return res;
  }

  async call<T = any>(method: string, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>): Promise<{ status: number; body: T; headers: Headers }> {
    const res = await this.raw(method, path, body, query);
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : undefined;
    if (res.status >= 400) {
      const e = parsed?.error;
      throw new CliError(e ? `(${e.code}) ${e.message}` : `HTTP ${res.status}`);
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Polls an Azure-AsyncOperation URL until it ends; `onTick` sees each poll. */
  async wait(opUrl: string, onTick?: () => Promise<void>, timeoutMs = 600_000) {
    const t0 = Date.now();
    for (;;) {
      const r = await this.call<{ status: string; error?: { code: string; message: string } }>('GET', opUrl);
      if (r.body.status === 'Succeeded') return;
      if (r.body.status === 'Failed' || r.body.status === 'Canceled')
        throw new CliError(r.body.error ? `(${r.body.error.code}) ${r.body.error.message}` : `operation ${r.body.status}`);
      if (Date.now() - t0 > timeoutMs) throw new CliError('Timed out waiting for the operation.');
      await onTick?.();
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}
