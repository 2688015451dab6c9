// The client's public surface: what cli, connectors, orchestrator, web and the tests import.
export { API_VERSION, ContainerInstanceClient, NGROUPS_API_VERSION, RESOURCES_API_VERSION, type ClientOptions } from './client.js';
export type { CallOptions } from './context.js';
export type { ExecOptions, ListOptions } from './container-groups.js';
export { ServicePrincipalCredential, StaticTokenCredential, type ServicePrincipalOptions } from './credentials.js';
export { ArmError, isArmError, isNotFound } from './errors.js';
export {
  ContainerGroupInformer, Informer, type ChangedLine, type InformerHandlers, type InformerMode, type InformerOptions, type ListWatchSource,
} from './informer.js';
export { METRICS_API_VERSION, type MetricsQuery } from './metrics.js';
export type { NGroups } from './ngroups.js';
export type { ContainerGroupProfiles } from './profiles.js';
export { LongRunningOperation, type WaitOptions } from './lro.js';
export type * from './models.js';
export type * from './ngroup-models.js';
export { Paged } from './paging.js';
export { clientFor, loadProfile, ProfileError, profilePath, saveProfile, type Profile } from './profile.js';
export { StreamSession, type SessionEnd } from './sessions.js';
export type { CaCertificates, TokenCredential } from './transport.js';
