// What the CLI's client commands share: az's flags parsed into request pieces, az's output shapes, and the client.
import { Option, type Command } from 'commander';
import { clientFor, loadProfile, type ContainerGroup, type ContainerInstanceClient, type EnvironmentVariable } from '../client/index.js';
import { splitCommand } from '../lib/argv.js';

/** A mistake in how the command was called: printed as it is, without a stack. */
export class CliError extends Error {}

/** The client for the configured endpoint (BERTH_* variables or what `berth up` saved). */
export const connect = (): ContainerInstanceClient => clientFor(loadProfile((m) => process.stderr.write(`berth: warning: ${m}\n`)));

export const collect = (v: string, prev: string[] = []) => [...prev, v];
export const print = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n');

export type Output = 'json' | 'jsonc' | 'none' | 'arm';
export const withOutput = (c: Command) =>
  c.addOption(new Option('-o, --output <format>', "json: az's shape (properties flattened); arm: the REST resource as is").choices(['json', 'jsonc', 'none', 'arm']).default('json'));

export const withGroup = (c: Command) =>
  c.requiredOption('-g, --resource-group <name>', 'resource group').requiredOption('-n, --name <name>', 'container group name');

/** A container group as `az container` prints it: the SDK model, `properties` flattened, plus `resourceGroup`. */
function azContainerGroup(g: ContainerGroup) {
  const { properties, ...resource } = g;
  const { containers = [], ...props } = properties ?? ({} as Partial<ContainerGroup['properties']>);
  return {
    ...resource,
    ...props,
    containers: containers.map((c) => ({ name: c.name, ...c.properties })),
    resourceGroup: g.id?.split('/')[4],
  };
}

/** Prints a container group (or a list of them) in the chosen output format. */
export function printGroups(v: ContainerGroup | ContainerGroup[], output: Output) {
  if (output === 'none') return;
  if (output === 'arm') return print(v);
  print(Array.isArray(v) ? v.map(azContainerGroup) : azContainerGroup(v));
}

/** --command-line, split as a shell would split it (lib/argv.ts), as az does. */
export function splitCommandLine(s: string): string[] {
  try {
    return splitCommand(s);
  } catch (e) {
    throw new CliError(`--command-line: ${(e as Error).message}.`);
  }
}

/** KEY=VALUE flags as environment variables (`secureValue` for the secure ones). */
export const envPairs = (list: string[] | undefined, secure: boolean): EnvironmentVariable[] =>
  (list ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(`Environment variables are KEY=VALUE; got '${kv}'.`);
    return secure ? { name: kv.slice(0, i), secureValue: kv.slice(i + 1) } : { name: kv.slice(0, i), value: kv.slice(i + 1) };
  });
