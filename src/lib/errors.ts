// The one error catalogue: typed errors with a stable code, rendered once as ARM envelopes.

/** An error a caller can act on. `code` is stable (ACI's own where ACI has one). */
export class BerthError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly target?: string,
  ) {
    super(message);
    this.name = 'BerthError';
  }
}

export const isBerthError = (e: unknown): e is BerthError => e instanceof BerthError;

/** Catalogue of codes used across layers. Values are what clients see. */
export const Codes = {
  // request shape
  InvalidRequestContent: 'InvalidRequestContent',
  /** A request target with no one meaning: absolute-form, dot segments, bad escapes, encoded slashes. */
  InvalidRequestUri: 'InvalidRequestUri',
  RequestUriTooLong: 'RequestUriTooLong',
  RequestHeaderFieldsTooLarge: 'RequestHeaderFieldsTooLarge',
  /** JSON nested deeper, or with more values, than any ARM resource has. */
  RequestContentTooComplex: 'RequestContentTooComplex',
  /** ARM's codes for a location berth does not serve. */
  LocationNotAvailableForResourceType: 'LocationNotAvailableForResourceType',
  LocationNotAvailableForResourceGroup: 'LocationNotAvailableForResourceGroup',
  InvalidResourceName: 'InvalidResourceName',
  InvalidApiVersionParameter: 'InvalidApiVersionParameter',
  MissingApiVersionParameter: 'MissingApiVersionParameter',
  MissingRequiredProperty: 'MissingRequiredProperty',
  InvalidContainerName: 'InvalidContainerName',
  DuplicateContainerName: 'DuplicateContainerName',
  InvalidImage: 'InvalidImage',
  InvalidCpuRequest: 'InvalidCpuRequest',
  InvalidMemoryRequest: 'InvalidMemoryRequest',
  InvalidCpuLimit: 'InvalidCpuLimit',
  InvalidMemoryLimit: 'InvalidMemoryLimit',
  InvalidPort: 'InvalidPort',
  DuplicatePorts: 'DuplicatePorts',
  InvalidIpAddressPort: 'InvalidIpAddressPort',
  InvalidRestartPolicy: 'InvalidRestartPolicy',
  InvalidOsType: 'InvalidOsType',
  InvalidEnvironmentVariable: 'InvalidEnvironmentVariable',
  InvalidVolume: 'InvalidVolume',
  InvalidVolumeMount: 'InvalidVolumeMount',
  InvalidProbe: 'InvalidProbe',
  UnsupportedFeature: 'UnsupportedFeature',
  ContainerGroupQuotaReached: 'ContainerGroupQuotaReached',
  DnsNameLabelAlreadyTaken: 'DnsNameLabelAlreadyTaken',
  InvalidContainerGroupUpdate: 'InvalidContainerGroupUpdate',
  // load
  TooManyRequests: 'TooManyRequests',
  // auth
  AuthenticationFailed: 'AuthenticationFailed',
  InvalidAuthenticationToken: 'InvalidAuthenticationToken',
  // lookup
  ResourceNotFound: 'ResourceNotFound',
  ResourceGroupNotFound: 'ResourceGroupNotFound',
  ContainerNotFound: 'ContainerNotFound',
  NotFound: 'NotFound',
  // state
  Conflict: 'Conflict',
  ContainerGroupTransitioning: 'ContainerGroupTransitioning',
  ContainerGroupNotRunning: 'ContainerGroupNotRunning',
  PortAlreadyInUse: 'PortAlreadyInUse',
  // runtime
  InaccessibleImage: 'InaccessibleImage',
  RegistryUnauthorized: 'RegistryUnauthorized',
  DigestMismatch: 'DigestMismatch',
  UnsupportedMediaType: 'UnsupportedMediaType',
  NoMatchingPlatform: 'NoMatchingPlatform',
  RuntimeError: 'RuntimeError',
  /** ARM's code for a resource whose provisioning outran its timeout. */
  ResourceDeploymentFailure: 'ResourceDeploymentFailure',
  NetworkError: 'NetworkError',
  GitRepoCloneFailed: 'GitRepoCloneFailed',
  // store
  /** The store (etcd) cannot be reached or did not answer in time; the outcome of a write may be unknown. */
  ServiceUnavailable: 'ServiceUnavailable',
  /** A watch asked for history the store has compacted away: list again, then watch after the listing's revision. */
  Compacted: 'Compacted',
  LeaseNotFound: 'LeaseNotFound',
  InternalServerError: 'InternalServerError',
  // an ARM client's own (src/client): what went wrong on the way to an endpoint or back
  /** No answer: the connection was refused, reset, timed out, or TLS failed. */
  ServiceUnreachable: 'ServiceUnreachable',
  /** An answer that is not ARM's: an error status without an error envelope, or a body that is not JSON. */
  UnexpectedResponse: 'UnexpectedResponse',
  /** A long-running operation still in progress when the caller stopped waiting. */
  OperationTimedOut: 'OperationTimedOut',
  /** A long-running operation that ended Canceled without saying why. */
  OperationCanceled: 'OperationCanceled',
  /** An exec or attach WebSocket that closed abnormally (the process could not start, the connection broke). */
  SessionFailed: 'SessionFailed',
} as const;
