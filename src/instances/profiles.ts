// Container group profiles in the store: a template kept as immutable numbered revisions, and the lookup of
// one revision for the groups made from it.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Tags } from '../arm/tags.js';
import { BerthError, Codes } from '../lib/errors.js';
import type { Store } from '../store/store.js';
import { profileKey as profileKeyOf, profilePrefix, profileRevisionKey, profileRevisionPrefix } from './keys.js';
import { checkResourceGroupName, checkSubscriptionId, type GroupSpec } from './model.js';
import {
  PROFILE_TYPE, checkResourceName, expandProfile, profileReferenceOf, resourceId, type ProfilePut, type ProfileReferenceRequest, type ProfileView, type ResourceRef, type TrackedRecord,
} from './profile-model.js';
import type { InstancesService, ProfileReference } from './service.js';

interface ProfileRecord extends TrackedRecord {
  /** The latest revision, and every revision kept (oldest first). */
  revision: number;
  revisions: number[];
  createdAt: string;
}

interface RevisionRecord {
  revision: number;
  spec: GroupSpec;
  createdAt: string;
}

/** What profiles need of the rest of the provider: locations as ARM matches them, resource groups, and who uses a profile. */
export interface ProfileHost {
  servedLocation(given: string): string;
  readonly location: string;
  /** Makes the resource group when it is not there (as a group's PUT does); refuses one being deleted. */
  ensureResourceGroup(sub: string, rg: string, location: string): Promise<void>;
}

const lower = (s: string) => s.toLowerCase();
const profileKey = (r: ResourceRef) => profileKeyOf(r.subscriptionId, r.resourceGroup, r.name);

/**
 * Where a group runs is each group's own (its `zones` and `properties.placement`, which an NGroup's orchestrator gives
 * each member): a template's would not reach the groups made from it, so it is refused rather than dropped.
 */
function refusePlacement(spec: Pick<GroupSpec, 'zones' | 'placement'>) {
  const refuse = (target: string, what: string): never => {
    throw new BerthError(Codes.UnsupportedFeature, `${what} of a container group profile are not supported by berth yet: give them to each group ('${target}').`, 400, target);
  };
  if (spec.zones) refuse('zones', 'Availability zones');
  if (spec.placement) refuse('properties.placement', 'Placement rules');
}

const notFound = (name: string) =>
  new BerthError(Codes.ResourceNotFound, `The Resource '${PROFILE_TYPE}/${name}' under resource group was not found.`, 404);

export class ProfileService {
  /** Answers which NGroup (if any) still references a profile, by the profile's id (lower-case). */
  inUse: (profileId: string) => Promise<string | undefined> = async () => undefined;

  constructor(private readonly store: Store, private readonly host: ProfileHost) {}

  private check(ref: ResourceRef) {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    checkResourceName(ref.name, 'container group profile', 'containerGroupProfileName');
  }

  /** PUT: a template that differs from the latest revision becomes the next revision; the same one only takes the tags. */
  async put(ref: ResourceRef, put: ProfilePut): Promise<{ created: boolean; view: ProfileView }> {
    this.check(ref);
    refusePlacement(put.spec);
    const location = put.location === undefined ? undefined : this.host.servedLocation(put.location);
    const key = profileKey(ref);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<ProfileRecord>(key);
      const old = cur?.value;
      if (old && location && lower(location) !== lower(old.location))
        throw new BerthError(Codes.InvalidRequestContent, `The location of container group profile '${ref.name}' cannot be changed from '${old.location}' to '${location}'.`, 400, 'location');
      if (!old) await this.host.ensureResourceGroup(ref.subscriptionId, ref.resourceGroup, location ?? this.host.location);
      const latest = old && (await this.store.get<RevisionRecord>(profileRevisionKey(old.uid, old.revision)))?.value;
      const changed = !latest || !isDeepStrictEqual(latest.spec, put.spec);
      const now = new Date().toISOString();
      const rec: ProfileRecord = old
        ? { ...old, tags: put.tags, ...(changed && { revision: old.revision + 1, revisions: [...old.revisions, old.revision + 1] }) }
        : {
            uid: randomBytes(6).toString('hex'), subscriptionId: ref.subscriptionId, resourceGroup: ref.resourceGroup, name: ref.name,
            location: location ?? this.host.location, tags: put.tags, revision: 1, revisions: [1], createdAt: now,
          };
      const revisionOps = changed ? [{ put: profileRevisionKey(rec.uid, rec.revision), value: { revision: rec.revision, spec: put.spec, createdAt: now } satisfies RevisionRecord }] : [];
      if ((await this.store.txn({ if: [{ key, modRevision: cur?.modRevision ?? 0 }], then: [{ put: key, value: rec }, ...revisionOps] })).succeeded)
        return { created: !old, view: this.viewOf(rec, put.spec, rec.revision) };
    }
    throw new BerthError(Codes.Conflict, `The container group profile '${ref.name}' is being changed by another request; try again.`, 409, ref.name);
  }

  /** The profile as its latest revision. */
  async get(ref: ResourceRef): Promise<ProfileView> {
    const rec = await this.mustGet(ref);
    return this.revisionView(rec, rec.revision);
  }

  /** One revision, as the `revisions/{n}` route names it. */
  async getRevision(ref: ResourceRef, revision: string): Promise<ProfileView> {
    const rec = await this.mustGet(ref);
    const n = /^\d{1,9}$/.test(revision) ? Number(revision) : NaN;
    if (!rec.revisions.includes(n))
      throw new BerthError(Codes.ContainerGroupProfileRevisionNotFound, `The container group profile '${ref.name}' has no revision '${revision.slice(0, 20)}'.`, 404, 'revisionNumber');
    return this.revisionView(rec, n);
  }

  /** Every revision, oldest first. */
  async listRevisions(ref: ResourceRef): Promise<ProfileView[]> {
    const rec = await this.mustGet(ref);
    const kvs = await this.store.list<RevisionRecord>(profileRevisionPrefix(rec.uid));
    return kvs.map((kv) => this.viewOf(rec, kv.value.spec, kv.value.revision));
  }

  async list(sub: string, rg?: string, page?: { startAfter?: string; limit?: number }): Promise<{ views: ProfileView[]; next?: string }> {
    checkSubscriptionId(sub);
    if (rg !== undefined) checkResourceGroupName(rg);
    const prefix = profilePrefix(sub, rg);
    const limit = page?.limit ?? 100;
    const kvs = await this.store.list<ProfileRecord>(prefix, { startAfter: page?.startAfter, limit: limit + 1 });
    const shown = kvs.slice(0, limit);
    return {
      views: await Promise.all(shown.map((kv) => this.revisionView(kv.value, kv.value.revision))),
      next: kvs.length > limit ? shown[shown.length - 1].key : undefined,
    };
  }

  /** PATCH: tags only (no new revision). */
  async updateTags(ref: ResourceRef, tags: Tags): Promise<ProfileView> {
    const key = profileKey(ref);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.store.get<ProfileRecord>(key);
      if (!cur) throw notFound(ref.name);
      const rec = { ...cur.value, tags };
      if ((await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ put: key, value: rec }] })).succeeded) return this.revisionView(rec, rec.revision);
    }
    throw new BerthError(Codes.Conflict, `The container group profile '${ref.name}' is being changed by another request; try again.`, 409, ref.name);
  }

  /**
   * Deletes the profile and its revisions; false when there was none. Groups made from it keep what
   * they were made from; an NGroup that still references it makes it a conflict.
   */
  async delete(ref: ResourceRef): Promise<boolean> {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    const key = profileKey(ref);
    const cur = await this.store.get<ProfileRecord>(key);
    if (!cur) return false;
    const user = await this.inUse(lower(resourceId(PROFILE_TYPE, cur.value)));
    if (user) throw new BerthError(Codes.ContainerGroupProfileInUse, `The container group profile '${cur.value.name}' is used by NGroup '${user}'; change or delete the NGroup first.`, 409, 'containerGroupProfileName');
    const revisions = cur.value.revisions.map((n) => ({ delete: profileRevisionKey(cur.value.uid, n) }));
    // etcd takes at most 128 operations in one transaction: the record goes first, the revisions after
    if (!(await this.store.txn({ if: [{ key, modRevision: cur.modRevision }], then: [{ delete: key }, ...revisions.slice(0, 100)] })).succeeded)
      throw new BerthError(Codes.Conflict, `The container group profile '${ref.name}' is being changed by another request; try again.`, 409, ref.name);
    for (let i = 100; i < revisions.length; i += 100) await this.store.txn({ then: revisions.slice(i, i + 100) });
    return true;
  }

  /** Deletes every profile of a resource group (the resource group is being deleted). */
  async deleteAllIn(sub: string, rg: string): Promise<void> {
    for (const kv of await this.store.list<ProfileRecord>(profilePrefix(sub, rg))) {
      await this.store.txn({ if: [{ key: kv.key, modRevision: kv.modRevision }], then: [{ delete: kv.key }] });
      for (const n of kv.value.revisions) await this.store.delete(profileRevisionKey(kv.value.uid, n));
    }
  }

  /**
   * A group body that names a profile (`properties.containerGroupProfile`), expanded into the profile
   * revision's properties and what the body adds (profile-model.ts); a body that names none, as it is.
   */
  async expand(sub: string, body: unknown): Promise<{ body: unknown; profile?: ProfileReference }> {
    const ref = profileReferenceOf(body, sub);
    if (!ref) return { body };
    const { reference, spec } = await this.resolve(ref);
    return { body: expandProfile(body as Record<string, unknown>, spec), profile: reference };
  }

  /** The revision a group made from a profile gets (the latest when none is named), with the spec to make it from. */
  async resolve(req: ProfileReferenceRequest): Promise<{ reference: ProfileReference; spec: GroupSpec }> {
    const rec = (await this.store.get<ProfileRecord>(profileKey(req.ref)))?.value;
    if (!rec)
      throw new BerthError(Codes.ContainerGroupProfileNotFound, `The container group profile '${resourceId(PROFILE_TYPE, req.ref)}' was not found.`, 404, 'properties.containerGroupProfile.id');
    const n = req.revision ?? rec.revision;
    const revision = (await this.store.get<RevisionRecord>(profileRevisionKey(rec.uid, n)))?.value;
    if (!revision)
      throw new BerthError(Codes.ContainerGroupProfileRevisionNotFound, `The container group profile '${rec.name}' has no revision ${n}.`, 404, 'properties.containerGroupProfile.revision');
    return { reference: { id: resourceId(PROFILE_TYPE, rec), revision: n }, spec: revision.spec };
  }

  private async mustGet(ref: ResourceRef): Promise<ProfileRecord> {
    checkSubscriptionId(ref.subscriptionId);
    checkResourceGroupName(ref.resourceGroup);
    const kv = await this.store.get<ProfileRecord>(profileKey(ref));
    if (!kv) throw notFound(ref.name);
    return kv.value;
  }

  private async revisionView(rec: ProfileRecord, n: number): Promise<ProfileView> {
    const revision = (await this.store.get<RevisionRecord>(profileRevisionKey(rec.uid, n)))?.value;
    if (!revision) throw new BerthError(Codes.ContainerGroupProfileRevisionNotFound, `The container group profile '${rec.name}' has no revision ${n}.`, 404);
    return this.viewOf(rec, revision.spec, n);
  }

  private viewOf(rec: ProfileRecord, spec: GroupSpec, revision: number): ProfileView {
    return {
      subscriptionId: rec.subscriptionId, resourceGroup: rec.resourceGroup, name: rec.name, location: rec.location, tags: rec.tags,
      spec, revision, revisions: rec.revisions,
    };
  }
}

/** What the instances service gives profiles and NGroups: its location, and the resource groups it keeps. */
export function hostOf(service: InstancesService): ProfileHost {
  return {
    location: service.location,
    servedLocation: (given) => service.servedLocation(given),
    async ensureResourceGroup(sub, rg, location) {
      const exists = await service.getResourceGroup(sub, rg).then(() => true, (e: BerthError) => {
        if (e.code === Codes.ResourceGroupNotFound) return false;
        throw e;
      });
      if (!exists) await service.putResourceGroup(sub, rg, { location, tags: {} });
    },
  };
}
