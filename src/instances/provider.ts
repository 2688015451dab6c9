// The parts of the Microsoft.ContainerInstance provider that share one store: container groups (the service),
// container group profiles and NGroups, and the resource groups they all live in.
import type { ResourceGroups } from '../arm/resources.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { NGroupService } from './ngroups.js';
import { ProfileService, hostOf } from './profiles.js';
import type { InstancesService } from './service.js';

export interface Provider {
  service: InstancesService;
  profiles: ProfileService;
  ngroups: NGroupService;
  /** Resource groups as ARM's routes see them: deleting one deletes its NGroups and profiles too. */
  resourceGroups: ResourceGroups;
  start(): Promise<void>;
  stop(): void;
}

export function createProvider(store: Store, service: InstancesService): Provider {
  const host = hostOf(service);
  const profiles = new ProfileService(store, host);
  const ngroups = new NGroupService(store, service, profiles, host);
  const resourceGroups: ResourceGroups = {
    location: service.location,
    putResourceGroup: (sub, rg, put) => service.putResourceGroup(sub, rg, put),
    getResourceGroup: (sub, rg) => service.getResourceGroup(sub, rg),
    listResourceGroups: (sub) => service.listResourceGroups(sub),
    operation: (sub, id) => service.operation(sub, id),
    async deleteResourceGroup(sub, rg) {
      const exists = await service.getResourceGroup(sub, rg).then(() => true, (e: BerthError) => {
        if (e.code === Codes.ResourceGroupNotFound) return false;
        throw e;
      });
      if (!exists) return undefined;
      // NGroups first, so that no orchestrator makes new members of them while their groups go
      await ngroups.deleteAllIn(sub, rg);
      await profiles.deleteAllIn(sub, rg);
      return service.deleteResourceGroup(sub, rg);
    },
  };
  return { service, profiles, ngroups, resourceGroups, start: () => ngroups.start(), stop: () => ngroups.stop() };
}
