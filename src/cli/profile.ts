// `berth profile create|show|list|revisions|delete`: container group profiles, made from az container create's flags or a file.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ContainerGroupProfile } from '../client/index.js';
import { CliError, connect, groupPropertiesFromFlags, printResource, withContainerFlags, withGroup, withOutput } from './command.js';

export function registerProfileCommands(program: Command) {
  const profile = program.command('profile').description('Manage container group profiles (templates of container groups, in numbered revisions)');

  withContainerFlags(withOutput(withGroup(profile.command('create').description('Create a profile, or a new revision of it when its template changes'))))
    .option('--container-name <name>', 'name of the container (default: the profile\'s)')
    .option('-l, --location <location>', 'location')
    .option('-f, --file <file>', 'the profile as ARM JSON ({"location", "properties": {…}}) instead of the flags')
    .action(async (o) => {
      let body: ContainerGroupProfile;
      if (o.file) {
        try {
          body = JSON.parse(readFileSync(o.file, 'utf8')) as ContainerGroupProfile;
        } catch (e) {
          throw new CliError(`--file ${o.file}: ${(e as Error).message}`);
        }
      } else body = { location: o.location, properties: groupPropertiesFromFlags(o, o.containerName ?? o.name.toLowerCase().replace(/_/g, '-')) };
      const made = await connect().containerGroupProfiles.createOrUpdate(o.resourceGroup, o.name, body);
      process.stderr.write(`${made.name}: revision ${made.properties.revision}\n`);
      printResource(made, o.output);
    });

  // `--image` is required only by create: show, revisions and delete need the name alone
  withOutput(withGroup(profile.command('show').description('Show a profile (its latest revision, or --revision N)')))
    .option('--revision <n>', 'a revision of it', Number)
    .action(async (o) => {
      const arm = connect();
      printResource(o.revision === undefined ? await arm.containerGroupProfiles.get(o.resourceGroup, o.name) : await arm.containerGroupProfiles.getByRevisionNumber(o.resourceGroup, o.name, o.revision), o.output);
    });

  withOutput(profile.command('list').description('List profiles'))
    .option('-g, --resource-group <name>', 'only those of this resource group')
    .action(async (o) => {
      const arm = connect();
      printResource(await (o.resourceGroup ? arm.containerGroupProfiles.listByResourceGroup(o.resourceGroup) : arm.containerGroupProfiles.listBySubscription()).toArray(), o.output);
    });

  withOutput(withGroup(profile.command('revisions').description("List a profile's revisions"))).action(async (o) => {
    printResource(await connect().containerGroupProfiles.listAllRevisions(o.resourceGroup, o.name).toArray(), o.output);
  });

  withGroup(profile.command('delete').description('Delete a profile and its revisions (not while an NGroup uses it)'))
    .option('-y, --yes', 'do not ask (berth never asks)')
    .action(async (o) => {
      if (!(await connect().containerGroupProfiles.delete(o.resourceGroup, o.name))) process.stderr.write(`berth: no profile ${o.name}\n`);
    });
}
