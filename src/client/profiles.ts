// Microsoft.ContainerInstance/containerGroupProfiles: templates of container groups in numbered revisions.
import { PROVIDER } from './container-groups.js';
import { call, providerId, providerPath, pagedList, type CallOptions, type ClientContext } from './context.js';
import { isNotFound } from './errors.js';
import type { ContainerGroupProfile, ContainerGroupProfileResource } from './ngroup-models.js';
import type { Paged } from './paging.js';


export class ContainerGroupProfiles {
  constructor(private readonly c: ClientContext) {}

  /** Of a resource group, or of the whole subscription without one. */
  path(resourceGroup?: string, name?: string): string {
    return providerPath(this.c, 'containerGroupProfiles', resourceGroup, name);
  }

  /** The resource id of a profile of this subscription (what an NGroup or a group names). */
  id(resourceGroup: string, name: string): string {
    return providerId(this.c, 'containerGroupProfiles', resourceGroup, name);
  }

  /** PUT: a template that differs from the latest revision becomes a new revision. */
  async createOrUpdate(resourceGroup: string, name: string, profile: ContainerGroupProfile, o: CallOptions = {}): Promise<ContainerGroupProfileResource> {
    return (await call<ContainerGroupProfileResource>(this.c, 'PUT', this.path(resourceGroup, name), o, profile)).body;
  }

  async get(resourceGroup: string, name: string, o: CallOptions = {}): Promise<ContainerGroupProfileResource> {
    return (await call<ContainerGroupProfileResource>(this.c, 'GET', this.path(resourceGroup, name), o)).body;
  }

  async find(resourceGroup: string, name: string, o: CallOptions = {}): Promise<ContainerGroupProfileResource | undefined> {
    return this.get(resourceGroup, name, o).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)));
  }

  /** PATCH: replaces the profile's tags (no new revision). */
  async updateTags(resourceGroup: string, name: string, tags: Record<string, string>, o: CallOptions = {}): Promise<ContainerGroupProfileResource> {
    return (await call<ContainerGroupProfileResource>(this.c, 'PATCH', this.path(resourceGroup, name), o, { tags })).body;
  }

  /** false when there was no such profile. */
  async delete(resourceGroup: string, name: string, o: CallOptions = {}): Promise<boolean> {
    return (await call(this.c, 'DELETE', this.path(resourceGroup, name), o)).status !== 204;
  }

  listBySubscription(o: CallOptions = {}): Paged<ContainerGroupProfileResource> {
    return pagedList(this.c, this.path(), o);
  }

  listByResourceGroup(resourceGroup: string, o: CallOptions = {}): Paged<ContainerGroupProfileResource> {
    return pagedList(this.c, this.path(resourceGroup), o);
  }

  listAllRevisions(resourceGroup: string, name: string, o: CallOptions = {}): Paged<ContainerGroupProfileResource> {
    return pagedList(this.c, `${this.path(resourceGroup, name)}/revisions`, o);
  }

  async getByRevisionNumber(resourceGroup: string, name: string, revision: number, o: CallOptions = {}): Promise<ContainerGroupProfileResource> {
    return (await call<ContainerGroupProfileResource>(this.c, 'GET', `${this.path(resourceGroup, name)}/revisions/${revision}`, o)).body;
  }
}
