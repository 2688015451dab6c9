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
  InvalidPlacement: 'InvalidPlacement',
  UnsupportedFeature: 'UnsupportedFeature',
  ContainerGroupQuotaReached: 'ContainerGroupQuotaReached',
  DnsNameLabelAlreadyTaken: 'DnsNameLabelAlreadyTaken',
  InvalidContainerGroupUpdate: 'InvalidContainerGroupUpdate',
  /** An NGroup PUT or PATCH that changes what may not change (faultDomainCount, removing zones). */
  InvalidNGroupUpdate: 'InvalidNGroupUpdate',
  /** A container group profile (or the revision of one) that a request names is not there. */
  ContainerGroupProfileNotFound: 'ContainerGroupProfileNotFound',
  ContainerGroupProfileRevisionNotFound: 'ContainerGroupProfileRevisionNotFound',
  /** A profile an NGroup still references cannot be deleted. */
  ContainerGroupProfileInUse: 'ContainerGroupProfileInUse',
  /** cancelRollingUpdate with no rolling update in progress; latestRollingUpdate of an NGroup that never had one. */
  RollingUpdateNotInProgress: 'RollingUpdateNotInProgress',
  RollingUpdateNotFound: 'RollingUpdateNotFound',
  /** An If-Match that does not match the resource's current ETag. */
  PreconditionFailed: 'PreconditionFailed',
  /** A metrics query naming a metric, aggregation or interval the resource does not have. */
  InvalidMetricQuery: 'InvalidMetricQuery',
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
  /** The cluster CIDR has no subnet left for a host joining (berth server --cluster-cidr, --host-subnet-prefix). */
  ClusterSubnetsExhausted: 'ClusterSubnetsExhausted',
  /** Every cluster-wide network segment tag (1..65535, one per subscription) is taken. */
  SegmentTagsExhausted: 'SegmentTagsExhausted',
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

/**
 * A BerthError as it crosses a process boundary (an agent's reports and data plane, the ARM edge): JSON that
 * says what went wrong and how a caller should take it, and becomes the same BerthError on the other side.
 */
export interface WireError {
  code: string;
  message: string;
  target?: string;
  status: number;
}

/** What any thrown value becomes on the wire: a BerthError as itself, anything else as InternalServerError. */
export function errorToWire(e: unknown): WireError {
  if (isBerthError(e)) return { code: e.code, message: e.message, ...(e.target !== undefined && { target: e.target }), status: e.status };
  const message = e instanceof Error ? e.message : String(e);
  return { code: Codes.InternalServerError, message, status: 500 };
}

/**
 * The BerthError a peer sent: `body` is a WireError or ARM's envelope `{error: {code, message, target}}`, `status`
 * the transport's (HTTP) status when the body has none. A body that is neither is an error of its own, naming
 * `what` answered.
 */
export function errorFromWire(body: unknown, status: number, what: string): BerthError {
  const inner = body && typeof body === 'object' && 'error' in body ? (body as { error: unknown }).error : body;
  const w = (inner && typeof inner === 'object' ? inner : {}) as Partial<Record<keyof WireError, unknown>>;
  if (typeof w.code === 'string' && w.code && typeof w.message === 'string')
    return new BerthError(w.code, w.message, typeof w.status === 'number' ? w.status : status, typeof w.target === 'string' ? w.target : undefined);
  return new BerthError(Codes.UnexpectedResponse, `${what} answered ${status} without an error the catalogue knows.`, 502);
}
