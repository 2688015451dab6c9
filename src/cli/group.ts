// `berth group create|show|list|delete`: resource groups as `az group` manages them (a container group's also comes into being with it).
import type { Command } from 'commander';
import { connect, envPairs, print, withOutput } from './command.js';

export function registerGroupCommands(program: Command) {
  const rg = program.command('group').description('Manage resource groups (the flags of `az group`)');

  withOutput(rg.command('create').description('Create a resource group (or update its tags)'))
    .requiredOption('-n, --name <name>', 'resource group name')
    .requiredOption('-l, --location <location>', 'location')
    .option('--tags <kv...>', 'KEY=VALUE pairs')
    .action(async (o) => {
      const tags = Object.fromEntries(envPairs(o.tags, false).map((e) => [e.name, e.value!]));
      const made = await connect().resourceGroups.createOrUpdate(o.name, { location: o.location, ...(o.tags && { tags }) });
      if (o.output !== 'none') print(made);
    });

  withOutput(rg.command('show').description('Show a resource group'))
    .requiredOption('-n, --name <name>', 'resource group name')
    .action(async (o) => {
      const shown = await connect().resourceGroups.get(o.name);
      if (o.output !== 'none') print(shown);
    });

  withOutput(rg.command('list').description('List resource groups')).action(async (o) => {
    const all = await connect().resourceGroups.list().toArray();
    if (o.output !== 'none') print(all);
  });

  rg.command('delete').description('Delete a resource group and every container group in it')
    .requiredOption('-n, --name <name>', 'resource group name')
    .option('-y, --yes', 'do not ask (berth never asks)')
    .option('--no-wait', 'do not wait for the deletion to finish')
    .action(async (o) => {
      const op = await connect().resourceGroups.beginDelete(o.name);
      if (o.wait) await op.wait();
    });
}
