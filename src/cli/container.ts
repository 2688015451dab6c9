// `berth container create|show|list|logs|delete|start|stop|restart`: az container's verbs and flags, through the client.
import { Option, type Command } from 'commander';
import type { ContainerGroup } from '../client/index.js';
import { CliError, connect, envPairs, printGroups, splitCommandLine, withGroup, withOutput } from './command.js';
import { registerStreamCommands } from './streams.js';

// How long create, delete, start and restart wait for their operation; one that runs longer is
// reported (OperationTimedOut) and goes on.
const WAIT_MS = 600_000;

export function registerContainerCommands(program: Command) {
  const container = program.command('container').description('Manage container groups (the flags of `az container`)');

  withOutput(withGroup(container.command('create').description('Create a container group with one container (or update the one of that name)')))
    .requiredOption('--image <image>', 'container image')
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
    .option('-l, --location <location>', 'location')
    .option('--registry-login-server <server>', 'private registry')
    .option('--registry-username <user>')
    .option('--registry-password <password>')
    .option('--no-wait', 'do not wait for the group to be created')
    .action(async (o) => {
      const arm = connect();
      const ports = (o.ports as string[]).flatMap((p) => p.split(/[ ,]+/)).filter(Boolean).map((p) => ({ port: Number(p), protocol: o.protocol }));
      // As az: a DNS name label asks for a public address.
      const ipType = o.ipAddress ?? (o.dnsNameLabel ? 'Public' : undefined);
      const body: ContainerGroup = {
        location: o.location,
        properties: {
          osType: o.osType,
          restartPolicy: o.restartPolicy,
          containers: [{
            name: o.name,
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
        },
      };
      const op = await arm.containerGroups.beginCreateOrUpdate(o.resourceGroup, o.name, body);
      if (!o.wait) return void printGroups(op.initial!, o.output);
      // Pull progress and other events as they happen (once each).
      const seen = new Map<string, string | undefined>();
      const showEvents = (g: ContainerGroup) => {
        for (const c of g.properties.containers ?? [])
          for (const e of c.properties.instanceView?.events ?? []) {
            const k = `${c.name}/${e.name}/${e.firstTimestamp}`;
            if (seen.get(k) !== e.message) process.stderr.write(`${c.name}: ${e.name}: ${e.message}\n`);
            seen.set(k, e.message);
          }
      };
      const created = await op.wait({ timeoutMs: WAIT_MS, onPoll: async () => showEvents(await arm.containerGroups.get(o.resourceGroup, o.name)) });
      // a create may end between two polls: the events of its last moments too
      showEvents(created);
      printGroups(created, o.output);
    });

  withOutput(withGroup(container.command('show').description('Show a container group'))).action(async (o) => {
    printGroups(await connect().containerGroups.get(o.resourceGroup, o.name), o.output);
  });

  withOutput(container.command('list').description('List container groups'))
    .option('-g, --resource-group <name>', 'only this resource group')
    .action(async (o) => {
      const groups = connect().containerGroups;
      printGroups(await (o.resourceGroup ? groups.listByResourceGroup(o.resourceGroup) : groups.list()).toArray(), o.output);
    });

  withGroup(container.command('logs').description('Show the log of a container'))
    .option('--container-name <name>', 'container (default: the group name)')
    .option('--tail <n>', 'last n lines', Number)
    .option('--timestamps', 'prefix lines with timestamps')
    .option('--follow', 'keep streaming the log')
    .action(async (o) => {
      const containers = connect().containers;
      const q = { tail: o.tail, timestamps: o.timestamps };
      const name = o.containerName ?? o.name;
      if (!o.follow) return void process.stdout.write(await containers.logs(o.resourceGroup, o.name, name, q));
      for await (const chunk of await containers.followLogs(o.resourceGroup, o.name, name, q)) process.stdout.write(chunk);
    });

  registerStreamCommands(container);

  withOutput(withGroup(container.command('delete').description('Delete a container group')))
    .option('-y, --yes', 'do not ask (berth never asks)')
    .option('--no-wait', 'do not wait for the deletion to finish')
    .action(async (o) => {
      const groups = connect().containerGroups;
      // Shown as az shows it: the group as it was when its deletion began.
      const shown = await groups.get(o.resourceGroup, o.name);
      const op = await groups.beginDelete(o.resourceGroup, o.name);
      if (op.status === 204) throw new CliError(`The container group '${o.name}' was not found.`);
      if (o.wait) await op.wait({ timeoutMs: WAIT_MS });
      printGroups(shown, o.output);
    });

  for (const action of ['start', 'stop', 'restart'] as const) {
    withGroup(container.command(action).description(`${action[0].toUpperCase()}${action.slice(1)} a container group`))
      .option('--no-wait', 'do not wait for the operation to finish')
      .action(async (o) => {
        const groups = connect().containerGroups;
        // ACI's stop is no LRO: it returns once the group has stopped.
        if (action === 'stop') return groups.stop(o.resourceGroup, o.name);
        const op = action === 'start' ? await groups.beginStart(o.resourceGroup, o.name) : await groups.beginRestart(o.resourceGroup, o.name);
        if (o.wait) await op.wait({ timeoutMs: WAIT_MS });
      });
  }
}
