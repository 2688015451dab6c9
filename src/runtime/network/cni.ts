// Minimal CNI runner: executes a plugin chain (ADD with prevResult chaining, DEL in reverse) per the CNI spec.
import { access } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { BerthError, Codes } from '../../lib/errors.js';
import { execCommand } from '../../lib/spawner.js';

export interface CniPluginConfig {
  type: string;
  /** Runtime capabilities the plugin wants in runtimeConfig (e.g. portMappings). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface CniNetworkConfig {
  cniVersion: string;
  name: string;
  plugins: CniPluginConfig[];
}

export interface CniRuntime {
  containerId: string;
  netns: string;
  ifName: string;
  /** Values offered to plugins declaring the matching capability. */
  capabilityArgs?: Record<string, unknown>;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

export class CniPluginError extends BerthError {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly cniCode: number | undefined,
    message: string,
  ) {
    super(Codes.NetworkError, `CNI ${plugin} ${command}: ${message}`, 500);
  }
}

const PLUGIN_TIMEOUT_MS = 60_000;

async function findPlugin(cniPath: string, type: string): Promise<string> {
  if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw new BerthError(Codes.NetworkError, `invalid CNI plugin type "${type}"`);
  for (const dir of cniPath.split(':').filter(Boolean)) {
    const p = join(dir, type);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* next dir */
    }
  }
  throw new BerthError(Codes.NetworkError, `CNI plugin "${type}" not found in ${cniPath}`);
}

/** Runs one plugin; stdin carries the config, stdout the result (or a CNI error object). */
export async function invokePlugin(
  cniPath: string,
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION',
  config: Record<string, unknown> & { type: string },
  rt: CniRuntime,
): Promise<unknown> {
  const bin = await findPlugin(cniPath, config.type);
  const env: NodeJS.ProcessEnv = {
    // plugins shell out to iptables, ip, sysctl
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: rt.containerId,
    CNI_NETNS: rt.netns,
    CNI_IFNAME: rt.ifName,
    CNI_PATH: cniPath,
  };
  const r = await execCommand(bin, [], { env, input: JSON.stringify(config), timeoutMs: PLUGIN_TIMEOUT_MS });
  if (r.error) throw new CniPluginError(config.type, command, undefined, r.error);
  const stdout = r.stdout.trim();
  const stderr = r.stderr.trim();
  if (r.code === 0) {
    if (!stdout) return undefined;
    try {
      return JSON.parse(stdout);
    } catch {
      throw new CniPluginError(config.type, command, undefined, `unparsable output: ${stdout.slice(0, 500)}`);
    }
  }
  let msg = stderr || stdout || `exited with ${r.signal ?? r.code}`;
  let cniCode: number | undefined;
  try {
    const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
    cniCode = e.code;
    msg = [e.msg, e.details].filter(Boolean).join(': ') || msg;
  } catch {
    /* plain text error */
  }
  throw new CniPluginError(config.type, command, cniCode, msg);
}

/** The config a plugin sees: its own section plus name, version, prevResult and granted runtimeConfig. */
function pluginConfig(net: CniNetworkConfig, plugin: CniPluginConfig, rt: CniRuntime, prevResult?: unknown): Record<string, unknown> & { type: string } {
  const conf: Record<string, unknown> & { type: string } = { ...plugin, cniVersion: net.cniVersion, name: net.name };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, wanted] of Object.entries(plugin.capabilities ?? {})) {
    if (wanted && rt.capabilityArgs && cap in rt.capabilityArgs) runtimeConfig[cap] = rt.capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

/** ADD through the chain; each plugin gets the previous one's result. Returns the final result. */
export async function addNetworkList(net: CniNetworkConfig, rt: CniRuntime, cniPath: string): Promise<CniResult> {
  let prev: unknown;
  for (const plugin of net.plugins) {
    const res = await invokePlugin(cniPath, 'ADD', pluginConfig(net, plugin, rt, prev), rt);
    // a plugin that returns nothing passes the previous result on
    if (res !== undefined) prev = res;
  }
  return (prev ?? { cniVersion: net.cniVersion }) as CniResult;
}

/**
 * DEL through the chain in reverse, each plugin given the cached ADD result. Every plugin is tried
 * even when one fails, so a half-built setup is still torn down as far as possible.
 */
export async function delNetworkList(net: CniNetworkConfig, rt: CniRuntime, cniPath: string, prevResult?: CniResult): Promise<void> {
  const errors: Error[] = [];
  for (const plugin of [...net.plugins].reverse()) {
    try {
      await invokePlugin(cniPath, 'DEL', pluginConfig(net, plugin, rt, prevResult), rt);
    } catch (e) {
      errors.push(e as Error);
    }
  }
  if (errors.length > 0) {
    throw new BerthError(Codes.NetworkError, errors.map((e) => e.message).join('; '), 500);
  }
}
