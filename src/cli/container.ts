// `berth container create|show|list|logs|delete|start|stop|restart`: az container's verbs and flags, through the client.
import type { Command } from 'commander';
import type { ContainerGroup } from '../client/index.js';
import { CliError, connect, groupPropertiesFromFlags, printGroups, withContainerFlags, withGroup, withOutput } from './command.js';
import { registerStreamCommands } from './streams.js';

// How long create, delete, start and restart wait for their operation; one that runs longer is
// reported (OperationTimedOut) and goes on.
const WAIT_MS = 600_000;

export function registerContainerCommands(program: Command) {
  const container = program.command('container').description('Manage container groups (the flags of `az container`)');

  withContainerFlags(withOutput(withGroup(container.command('create').description('Create a container group with one container (or update the one of that name)'))))
    .option('-l, --location <location>', 'location')
    .option('--no-wait', 'do not wait for the group to be created')
    .action(async (o) => {
      const arm = connect();
      const body: ContainerGroup = { location: o.location, properties: groupPropertiesFromFlags(o, o.name) };
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
