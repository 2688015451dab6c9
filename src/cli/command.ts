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

/** A resource as az prints one: the SDK model, `properties` flattened (and each container's), plus `resourceGroup`. */
function azResource(r: { id?: string; properties?: object }) {
  const { properties, ...resource } = r;
  const { containers, ...props } = (properties ?? {}) as { containers?: ContainerGroup['properties']['containers'] };
  return {
    ...resource,
    ...props,
    ...(containers && { containers: containers.map((c) => ({ name: c.name, ...c.properties })) }),
    resourceGroup: r.id?.split('/')[4],
  };
}

/** Prints a resource (or a list of them) in the chosen output format: az's shape, the REST resource as is, or nothing. */
export function printResource(v: { id?: string; properties?: object } | { id?: string; properties?: object }[], output: Output): void {
  if (output === 'none') return;
  print(output === 'arm' ? v : Array.isArray(v) ? v.map(azResource) : azResource(v));
}

/** Prints a container group (or a list of them) in the chosen output format. */
export const printGroups = (v: ContainerGroup | ContainerGroup[], output: Output) => printResource(v, output);

/** az container create's flags of the group's one container (and the group's address, restart policy and registry). */
export const withContainerFlags = (c: Command) =>
  c.requiredOption('--image <image>', 'container image')
    .option('--cpu <cores>', 'CPU cores', Number, 1)
    .option('--memory <GB>', 'memory in GB', Number, 1.5)
    .option('--ports <ports...>', 'ports to open', [])
    .addOption(new Option('--protocol <protocol>', 'protocol of the ports').choices(['TCP', 'UDP']).default('TCP'))
    .addOption(new Option('--ip-address <type>', 'publish the ports').choices(['Public', 'Private']))
    .option('--dns-name-label <label>', "DNS name label: <label>.<location>.<berth's zone> answers with the group's address (implies --ip-address Public)")
    .addOption(new Option('--os-type <type>').choices(['Linux']).default('Linux'))
    .option('--environment-variables <kv...>', 'KEY=VALUE pairs')
    .option('--secure-environment-variables <kv...>', 'KEY=VALUE pairs, never shown back')
    .option('--command-line <line>', 'command to run instead of the image default')
    .addOption(new Option('--restart-policy <policy>').choices(['Always', 'OnFailure', 'Never']).default('Always'))
    .option('--registry-login-server <server>', 'private registry')
    .option('--registry-username <user>')
    .option('--registry-password <password>');

/** What withContainerFlags parses. */
export interface ContainerFlags {
  image: string;
  cpu: number;
  memory: number;
  ports: string[];
  protocol: 'TCP' | 'UDP';
  ipAddress?: 'Public' | 'Private';
  dnsNameLabel?: string;
  osType: 'Linux';
  environmentVariables?: string[];
  secureEnvironmentVariables?: string[];
  commandLine?: string;
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  registryLoginServer?: string;
  registryUsername?: string;
  registryPassword?: string;
}

/** The group's `properties` the flags of withContainerFlags describe, with one container named `name`. */
export function groupPropertiesFromFlags(o: ContainerFlags, name: string): ContainerGroup['properties'] {
  const ports = (o.ports as string[]).flatMap((p) => p.split(/[ ,]+/)).filter(Boolean).map((p) => ({ port: Number(p), protocol: o.protocol }));
  // As az: a DNS name label asks for a public address.
  const ipType = o.ipAddress ?? (o.dnsNameLabel ? 'Public' : undefined);
  return {
    osType: o.osType,
    restartPolicy: o.restartPolicy,
    containers: [{
      name,
      properties: {
        image: o.image,
        ...(o.commandLine && { command: splitCommandLine(o.commandLine) }),
        ports,
        environmentVariables: [...envPairs(o.environmentVariables, false), ...envPairs(o.secureEnvironmentVariables, true)],
        resources: { requests: { cpu: o.cpu, memoryInGB: o.memory } },
      },
    }],
    ...(ipType && { ipAddress: { type: ipType, ports, ...(o.dnsNameLabel && { dnsNameLabel: o.dnsNameLabel }) } }),
    ...(o.registryLoginServer && {
      imageRegistryCredentials: [{ server: o.registryLoginServer, username: o.registryUsername, password: o.registryPassword }],
    }),
  };
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
