// `berth ngroup create|show|list|scale|update|rollback|cancel-update|delete`: NGroups, with their members' progress
// shown while they are made, scaled or rolled to a new revision.
import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import { NGROUPS_API_VERSION, type ContainerInstanceClient, type NGroup, type NGroupResource, type RollingUpdateStatus } from '../client/index.js';
import { CliError, connect, envPairs, printResource, withGroup, withOutput } from './command.js';

/** How long a command waits for members; one that runs longer is reported and goes on. */
const WAIT_MS = 1_800_000;

/** The NGroup flags create and update share (each left out keeps what the NGroup has, on update). */
const withNGroupFlags = (c: Command) =>
  c.option('--profile <name>', 'the container group profile (of the same resource group) members are made from')
    .option('--profile-revision <n>', 'a revision of it (default: the latest when members are made)', Number)
    .option('--count <n>', 'desired count of members', Number)
    .option('--maintain-desired-count', 'replace members deleted by someone (else deleting one lowers the count)')
    .option('--prefix <prefix>', "members' names: the prefix and a GUID")
    .option('--zones <zones...>', 'zones to spread members over (can be added to, never removed)')
    .option('--fault-domains <n>', 'fault domains to spread members over in each zone (at creation only)', Number)
    .addOption(new Option('--update-mode <mode>', 'Rolling: a new profile revision replaces members batch by batch').choices(['Manual', 'Rolling']))
    .option('--max-batch-percent <n>', 'rolling updates: members replaced at once, in percent (default 20)', Number)
    .option('--max-unhealthy-percent <n>', 'rolling updates: updated members that may be unhealthy, in percent (default 20)', Number)
    .option('--pause <duration>', 'rolling updates: pause between batches, ISO 8601 (default PT1M)')
    .option('--in-place', 'rolling updates: update members with a PUT instead of replacing them')
    .option('--no-auto-rollback', 'rolling updates: leave members as they are when an update fails (Faulted) instead of rolling back')
    .option('--healthy-deadline <duration>', 'rolling updates: how long a batch has to become healthy, ISO 8601 (default PT10M)')
    .option('--autoscale <min:max:cpu%>', 'autoscale between min and max members to keep CPU use at cpu% of the requests, e.g. 1:10:60')
    .option('--tags <kv...>', 'KEY=VALUE pairs')
    .option('-l, --location <location>', 'location')
    .option('--no-wait', 'do not wait for the members');

type Flags = Record<string, any>;

/** `ng` changed by the flags given (a new NGroup when there is none). */
function applyFlags(arm: ContainerInstanceClient, rg: string, o: Flags, ng: NGroup = { properties: {} }): NGroup {
  const p = structuredClone(ng.properties ?? {});
  const elastic = (p.elasticProfile ??= {});
  if (o.count !== undefined) elastic.desiredCount = o.count;
  if (o.maintainDesiredCount) elastic.maintainDesiredCount = true;
  if (o.prefix !== undefined) elastic.containerGroupNamingPolicy = { guidNamingPolicy: { prefix: o.prefix } };
  if (o.autoscale) {
    const m = /^(\d+):(\d+):(\d+)$/.exec(o.autoscale);
    if (!m) throw new CliError(`--autoscale is min:max:cpu%, e.g. 1:10:60 (got '${o.autoscale}').`);
    elastic.autoscale = { minCount: Number(m[1]), maxCount: Number(m[2]), targetCpuUtilizationPercent: Number(m[3]) };
    elastic.desiredCount = Math.min(Number(m[2]), Math.max(Number(m[1]), elastic.desiredCount ?? Number(m[1])));
  }
  if (o.profile !== undefined || o.profileRevision !== undefined) {
    const stub = p.containerGroupProfiles?.[0];
    const id = o.profile !== undefined ? arm.containerGroupProfiles.id(rg, o.profile) : stub?.resource.id;
    if (!id) throw new CliError('--profile is required: which container group profile members are made from.');
    p.containerGroupProfiles = [{ ...stub, resource: { id }, ...(o.profileRevision !== undefined ? { revision: o.profileRevision } : o.profile !== undefined ? { revision: undefined } : {}) }];
  }
  if (o.faultDomains !== undefined) p.placementProfile = { faultDomainCount: o.faultDomains };
  const update = (p.updateProfile ??= {});
  if (o.updateMode) update.updateMode = o.updateMode;
  const rolling = { ...update.rollingUpdateProfile };
  if (o.maxBatchPercent !== undefined) rolling.maxBatchPercent = o.maxBatchPercent;
  if (o.maxUnhealthyPercent !== undefined) rolling.maxUnhealthyPercent = o.maxUnhealthyPercent;
  if (o.pause !== undefined) rolling.pauseTimeBetweenBatches = o.pause;
  if (o.inPlace) rolling.inPlaceUpdate = true;
  if (o.autoRollback === false) rolling.autoRollback = false;
  if (o.healthyDeadline !== undefined) rolling.healthyDeadline = o.healthyDeadline;
  if (Object.keys(rolling).length > 0) update.rollingUpdateProfile = rolling;
  const { provisioningState: _ps, instanceView: _iv, ...writable } = p;
  return {
    location: o.location ?? ng.location,
    tags: o.tags ? Object.fromEntries(envPairs(o.tags, false).map((e) => [e.name, e.value!])) : ng.tags,
    ...(o.zones || ng.zones ? { zones: o.zones ?? ng.zones } : {}),
    properties: writable,
  };
}

/**
 * Shows the NGroup's members as they change (made, ready, per revision, the rolling update's state), on
 * stderr, until the orchestrator has taken in the NGroup's latest change and its members are all there
 * and ready, with no rolling update under way; the NGroup as it then is.
 */
async function follow(arm: ContainerInstanceClient, rg: string, name: string): Promise<NGroupResource> {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  for (;;) {
    const { generation, status } = await arm.ngroups.getStatus(rg, name);
    const ng = await arm.ngroups.get(rg, name);
    const update = ng.properties?.updateProfile?.updateMode === 'Rolling' ? await arm.ngroups.latestRollingUpdate(rg, name) : undefined;
    const v = ng.properties?.instanceView;
    const revisions = (v?.revisions ?? []).map((r) => `revision ${r.revision}: ${r.count}`).join(', ');
    const rolling = update ? `; rolling update ${update.fromRevision ?? '?'} -> ${update.toRevision ?? '?'}: ${update.state}` : '';
    const line = `${name}: ${v?.readyCount ?? 0}/${ng.properties?.elasticProfile?.desiredCount ?? 0} ready, ${v?.currentCount ?? 0} members${revisions ? ` (${revisions})` : ''}${rolling}`;
    if (line !== last) process.stderr.write(`${line}\n`);
    last = line;
    if ((status.observedGeneration ?? 0) >= generation && settled(ng) && updateOver(update)) return ng;
    if (Date.now() > deadline) throw new CliError(`${name} is still changing after ${WAIT_MS / 60_000} minutes; see \`berth ngroup show\`.`);
    await sleep(500);
  }
}

const settled = (ng: NGroupResource) => {
  const v = ng.properties?.instanceView;
  const desired = ng.properties?.elasticProfile?.desiredCount ?? 0;
  return ng.properties?.provisioningState === 'Failed' || (v?.currentCount === desired && v?.readyCount === desired);
};
const updateOver = (update?: RollingUpdateStatus) => !update || !['RollingForward', 'RollingBack'].includes(update.state);

export function registerNGroupCommands(program: Command) {
  const ngroup = program.command('ngroup').description('Manage NGroups: sets of container groups made from a profile, scaled, replaced and updated together');

  withNGroupFlags(withOutput(withGroup(ngroup.command('create').description('Create an NGroup (or replace the one of that name)'))))
    .action(async (o) => {
      const arm = connect();
      if (!o.profile) throw new CliError('--profile is required: which container group profile members are made from.');
      const op = await arm.ngroups.beginCreateOrUpdate(o.resourceGroup, o.name, applyFlags(arm, o.resourceGroup, { count: 1, ...o }));
      if (!o.wait) return void printResource(op.initial!, o.output);
      printResource(await follow(arm, o.resourceGroup, o.name), o.output);
    });

  withOutput(withGroup(ngroup.command('show').description('Show an NGroup, with its members and its latest rolling update'))).action(async (o) => {
    const arm = connect();
    const ng = await arm.ngroups.get(o.resourceGroup, o.name);
    // members show their profile revision and NGroup from the api-versions that have NGroups
    const members = (await arm.containerGroups.listByResourceGroup(o.resourceGroup, { apiVersion: NGROUPS_API_VERSION }).toArray())
      .filter((g) => g.properties.orchestratorId?.toLowerCase() === ng.id.toLowerCase())
      .map((g) => ({ name: g.name, revision: g.properties.containerGroupProfile?.revision, provisioningState: g.properties.provisioningState, zone: g.tags?.['berth.zone'] }));
    const latestRollingUpdate = await arm.ngroups.latestRollingUpdate(o.resourceGroup, o.name);
    if (o.output === 'arm') return printResource(ng, o.output);
    printResource({ ...ng, properties: { ...ng.properties, members, ...(latestRollingUpdate && { latestRollingUpdate }) } } as NGroupResource, o.output);
  });

  withOutput(ngroup.command('list').description('List NGroups'))
    .option('-g, --resource-group <name>', 'only those of this resource group')
    .action(async (o) => {
      const arm = connect();
      printResource(await (o.resourceGroup ? arm.ngroups.listByResourceGroup(o.resourceGroup) : arm.ngroups.list()).toArray(), o.output);
    });

  withOutput(withGroup(ngroup.command('scale').description('Change the desired count of members')))
    .requiredOption('--count <n>', 'desired count', Number)
    .option('--no-wait', 'do not wait for the members')
    .action(async (o) => {
      const arm = connect();
      const op = await arm.ngroups.beginUpdate(o.resourceGroup, o.name, { properties: { elasticProfile: { desiredCount: o.count } } });
      if (!o.wait) return void printResource(op.initial!, o.output);
      printResource(await follow(arm, o.resourceGroup, o.name), o.output);
    });

  withNGroupFlags(withOutput(withGroup(ngroup.command('update').description('Change an NGroup: a new profile revision rolls members to it in Rolling mode'))))
    .action(async (o) => {
      const arm = connect();
      const current = await arm.ngroups.get(o.resourceGroup, o.name);
      const op = await arm.ngroups.beginCreateOrUpdate(o.resourceGroup, o.name, applyFlags(arm, o.resourceGroup, o, current));
      if (!o.wait) return void printResource(op.initial!, o.output);
      printResource(await follow(arm, o.resourceGroup, o.name), o.output);
    });

  withOutput(withGroup(ngroup.command('rollback').description('Roll members back to the revision the latest rolling update came from')))
    .option('--no-wait', 'do not wait for the members')
    .action(async (o) => {
      const arm = connect();
      const update = await arm.ngroups.latestRollingUpdate(o.resourceGroup, o.name);
      if (update?.fromRevision === undefined) throw new CliError(`${o.name} has had no rolling update to roll back.`);
      const current = await arm.ngroups.get(o.resourceGroup, o.name);
      const stub = current.properties?.containerGroupProfiles?.[0];
      if (stub?.revision === update.fromRevision) throw new CliError(`${o.name} is at revision ${update.fromRevision} already.`);
      const op = await arm.ngroups.beginCreateOrUpdate(o.resourceGroup, o.name, applyFlags(arm, o.resourceGroup, { profileRevision: update.fromRevision }, current));
      if (current.properties?.updateProfile?.updateMode !== 'Rolling') process.stderr.write(`${o.name} is in Manual update mode: new members get revision ${update.fromRevision}, the others stay as they are.\n`);
      if (!o.wait) return void printResource(op.initial!, o.output);
      printResource(await follow(arm, o.resourceGroup, o.name), o.output);
    });

  withOutput(withGroup(ngroup.command('cancel-update').description('Cancel the rolling update in progress (members stay on the revision they run)'))).action(async (o) => {
    printResource({ properties: await connect().ngroups.cancelRollingUpdate(o.resourceGroup, o.name) }, o.output);
  });

  withGroup(ngroup.command('delete').description('Delete an NGroup and its members'))
    .option('-y, --yes', 'do not ask (berth never asks)')
    .option('--no-wait', 'do not wait for the members to go')
    .action(async (o) => {
      const op = await connect().ngroups.beginDelete(o.resourceGroup, o.name);
      if (o.wait) await op.wait({ timeoutMs: WAIT_MS });
    });
}
