// Parts of the ACI container group model berth does not implement yet: each is refused by name, never silently dropped.
import { BerthError, Codes } from '../lib/errors.js';

/**
 * Where a request may carry something berth cannot honour (in any api-version: the newest
 * versions' fields are known even when an older version is asked), and what it is. `[]` walks an
 * array. A part that is absent, null or empty (`[]`, `{}`, or only empty values) changes nothing
 * and passes.
 */
type Refusals = [path: string, what: string][];

const UNSUPPORTED: Refusals = [
  ['identity', 'Managed identity is'],
  ['properties.subnetIds', 'Virtual network subnets are'],
  ['properties.networkProfile', 'Virtual network profiles are'],
  ['properties.dnsConfig', 'A custom DNS configuration is'],
  ['properties.diagnostics', 'Log Analytics diagnostics are'],
  ['properties.encryptionProperties', 'Customer-managed encryption keys are'],
  ['properties.confidentialComputeProperties', 'Confidential containers are'],
  ['properties.extensions', 'Deployment extensions are'],
  ['properties.secretReferences', 'Key Vault secret references are'],
  ['properties.identityAcls', 'Identity access control lists are'],
  ['properties.standbyPoolProfile', 'Standby pools are'],
  ['properties.containers[].properties.securityContext', "'securityContext' is"],
  ['properties.containers[].properties.configMap', 'Config maps are'],
  ['properties.containers[].properties.resources.requests.gpu', 'GPU resources are'],
  ['properties.containers[].properties.resources.limits.gpu', 'GPU resources are'],
  ['properties.containers[].properties.environmentVariables[].secureValueReference', 'Key Vault secret references are'],
  ['properties.initContainers[].properties.securityContext', "'securityContext' is"],
  ['properties.initContainers[].properties.environmentVariables[].secureValueReference', 'Key Vault secret references are'],
  ['properties.imageRegistryCredentials[].identity', 'Registry credentials by managed identity are'],
  ['properties.imageRegistryCredentials[].identityUrl', 'Registry credentials by managed identity are'],
  ['properties.imageRegistryCredentials[].passwordReference', 'Key Vault secret references are'],
  ['properties.volumes[].azureFile', 'Azure File volumes are'],
  ['properties.volumes[].secretReference', 'Key Vault secret references are'],
];

/** Values of enums that berth accepts only in part: the rest name a feature it does not have. */
const UNSUPPORTED_VALUES: [path: string, accepted: string[], refused: Record<string, string>][] = [
  ['properties.sku', ['Standard', 'NotSpecified'], { Dedicated: 'Dedicated hosts are', Confidential: 'Confidential containers are' }],
  ['properties.priority', ['Regular'], { Spot: 'Spot priority (evictable capacity) is' }],
];

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** null, undefined, [] and {} (and objects and arrays of nothing but those) change nothing. */
const isEmpty = (x: unknown): boolean =>
  x === undefined || x === null || (Array.isArray(x) ? x.every(isEmpty) : isObj(x) && Object.values(x).every(isEmpty));

/** Every value at `path` in `value`, with its concrete target (array indices filled in). */
function* at(value: unknown, path: string[], target: string): Generator<[string, unknown]> {
  if (path.length === 0) {
    yield [target, value];
    return;
  }
  if (!isObj(value)) return;
  const [head, ...rest] = path;
  const each = head.endsWith('[]');
  const key = each ? head.slice(0, -2) : head;
  const t = target ? `${target}.${key}` : key;
  if (!each) yield* at(value[key], rest, t);
  else if (Array.isArray(value[key])) for (const [i, v] of (value[key] as unknown[]).entries()) yield* at(v, rest, `${t}[${i}]`);
}

const refuse = (target: string, what: string): never => {
  throw new BerthError(Codes.UnsupportedFeature, `${what} not supported by berth yet ('${target}').`, 400, target);
};

/** What a container group profile may carry beyond a group's and berth cannot honour (the group's own list applies too). */
export const PROFILE_UNSUPPORTED: Refusals = [
  ['properties.shutdownGracePeriod', "A shutdown grace period ('shutdownGracePeriod') is"],
  ['properties.timeToLive', "A post-completion time to live ('timeToLive') is"],
  ['properties.securityContext', "A group-level 'securityContext' is"],
  ['properties.useKrypton', "'useKrypton' is"],
];

/** What an NGroup may carry and berth cannot honour. */
export const NGROUP_UNSUPPORTED: Refusals = [
  ['properties.containerGroupProfiles[].networkProfile', 'Load balancer and application gateway backend pools are'],
  ['properties.containerGroupProfiles[].storageProfile', 'Azure File share profiles are'],
  ['properties.containerGroupProfiles[].containerGroupProperties.subnetIds', 'Virtual network subnets are'],
  ['properties.containerGroupProfiles[].containerGroupProperties.volumes[].azureFile', 'Azure File volumes are'],
];

/** Throws UnsupportedFeature naming the first part of `body` at one of `refusals` that is not empty. */
export function refuseParts(body: unknown, refusals: Refusals) {
  for (const [path, what] of refusals)
    for (const [target, v] of at(body, path.split('.'), '')) if (!isEmpty(v) && v !== false) refuse(target, what);
}

/** Throws UnsupportedFeature naming the first part of a container group body that berth cannot honour. */
export function refuseUnsupported(body: unknown) {
  refuseParts(body, UNSUPPORTED);
  for (const [path, accepted, refused] of UNSUPPORTED_VALUES)
    for (const [target, v] of at(body, path.split('.'), '')) {
      if (typeof v !== 'string') continue; // absent, or of the wrong type: the model's own checks say so
      const known = Object.keys(refused).find((k) => k.toLowerCase() === v.toLowerCase());
      if (known) refuse(target, refused[known]);
      if (!accepted.some((a) => a.toLowerCase() === v.toLowerCase()))
        throw new BerthError(Codes.InvalidRequestContent, `The value '${v}' of '${target}' is invalid. Allowed values: ${[...accepted, ...Object.keys(refused)].join(', ')}.`, 400, target);
    }
}
