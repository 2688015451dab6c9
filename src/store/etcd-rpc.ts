// etcd's v3 gRPC API, the part berth uses (KV, Watch, Lease), described for @grpc/proto-loader, and one channel to reach it.
import * as grpc from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';

/** `{ name: '[repeated] type number' }` -> protobuf.js JSON fields (numbers as in etcd's rpc.proto and kv.proto). */
function message(spec: Record<string, string>, oneofs: Record<string, string[]> = {}) {
  const fields = Object.fromEntries(
    Object.entries(spec).map(([name, def]) => {
      const parts = def.split(' ');
      const repeated = parts[0] === 'repeated';
      const [type, id] = repeated ? parts.slice(1) : parts;
      return [name, { type, id: Number(id), ...(repeated ? { rule: 'repeated' } : {}) }];
    }),
  );
  return { fields, oneofs: Object.fromEntries(Object.entries(oneofs).map(([name, members]) => [name, { oneof: members }])) };
}

const unary = (requestType: string, responseType: string) => ({ requestType, responseType });
const bidi = (requestType: string, responseType: string) => ({ requestType, responseType, requestStream: true, responseStream: true });

const etcdserverpb = {
  ResponseHeader: message({ cluster_id: 'uint64 1', member_id: 'uint64 2', revision: 'int64 3', raft_term: 'uint64 4' }),
  KeyValue: message({ key: 'bytes 1', create_revision: 'int64 2', mod_revision: 'int64 3', version: 'int64 4', value: 'bytes 5', lease: 'int64 6' }),
  Event: { ...message({ type: 'EventType 1', kv: 'KeyValue 2', prev_kv: 'KeyValue 3' }), nested: { EventType: { values: { PUT: 0, DELETE: 1 } } } },
  RangeRequest: message({ key: 'bytes 1', range_end: 'bytes 2', limit: 'int64 3', revision: 'int64 4', serializable: 'bool 7', keys_only: 'bool 8', count_only: 'bool 9' }),
  RangeResponse: message({ header: 'ResponseHeader 1', kvs: 'repeated KeyValue 2', more: 'bool 3', count: 'int64 4' }),
  PutRequest: message({ key: 'bytes 1', value: 'bytes 2', lease: 'int64 3' }),
  PutResponse: message({ header: 'ResponseHeader 1' }),
  DeleteRangeRequest: message({ key: 'bytes 1', range_end: 'bytes 2' }),
  DeleteRangeResponse: message({ header: 'ResponseHeader 1', deleted: 'int64 2' }),
  RequestOp: message(
    { request_range: 'RangeRequest 1', request_put: 'PutRequest 2', request_delete_range: 'DeleteRangeRequest 3' },
    { request: ['request_range', 'request_put', 'request_delete_range'] },
  ),
  Compare: {
    ...message(
      { result: 'CompareResult 1', target: 'CompareTarget 2', key: 'bytes 3', version: 'int64 4', create_revision: 'int64 5', mod_revision: 'int64 6', value: 'bytes 7', lease: 'int64 8' },
      // in the union, a zero is sent as set (etcd would read an absent one as zero too)
      { target_union: ['version', 'create_revision', 'mod_revision', 'value', 'lease'] },
    ),
    nested: {
      CompareResult: { values: { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } },
      CompareTarget: { values: { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } },
    },
  },
  TxnRequest: message({ compare: 'repeated Compare 1', success: 'repeated RequestOp 2', failure: 'repeated RequestOp 3' }),
  TxnResponse: message({ header: 'ResponseHeader 1', succeeded: 'bool 2' }),
  CompactionRequest: message({ revision: 'int64 1', physical: 'bool 2' }),
  CompactionResponse: message({ header: 'ResponseHeader 1' }),
  WatchRequest: message({ create_request: 'WatchCreateRequest 1', cancel_request: 'WatchCancelRequest 2' }, { request_union: ['create_request', 'cancel_request'] }),
  WatchCreateRequest: message({ key: 'bytes 1', range_end: 'bytes 2', start_revision: 'int64 3', progress_notify: 'bool 4' }),
  WatchCancelRequest: message({ watch_id: 'int64 1' }),
  WatchResponse: message({
    header: 'ResponseHeader 1', watch_id: 'int64 2', created: 'bool 3', canceled: 'bool 4', compact_revision: 'int64 5',
    cancel_reason: 'string 6', fragment: 'bool 7', events: 'repeated Event 11',
  }),
  LeaseGrantRequest: message({ TTL: 'int64 1', ID: 'int64 2' }),
  LeaseGrantResponse: message({ header: 'ResponseHeader 1', ID: 'int64 2', TTL: 'int64 3', error: 'string 4' }),
  LeaseRevokeRequest: message({ ID: 'int64 1' }),
  LeaseRevokeResponse: message({ header: 'ResponseHeader 1' }),
  LeaseKeepAliveRequest: message({ ID: 'int64 1' }),
  LeaseKeepAliveResponse: message({ header: 'ResponseHeader 1', ID: 'int64 2', TTL: 'int64 3' }),
  KV: {
    methods: {
      Range: unary('RangeRequest', 'RangeResponse'),
      Put: unary('PutRequest', 'PutResponse'),
      DeleteRange: unary('DeleteRangeRequest', 'DeleteRangeResponse'),
      Txn: unary('TxnRequest', 'TxnResponse'),
      Compact: unary('CompactionRequest', 'CompactionResponse'),
    },
  },
  Watch: { methods: { Watch: bidi('WatchRequest', 'WatchResponse') } },
  Lease: {
    methods: {
      LeaseGrant: unary('LeaseGrantRequest', 'LeaseGrantResponse'),
      LeaseRevoke: unary('LeaseRevokeRequest', 'LeaseRevokeResponse'),
      LeaseKeepAlive: bidi('LeaseKeepAliveRequest', 'LeaseKeepAliveResponse'),
    },
  },
};

// int64s arrive as decimal strings (lease ids do not fit a double), enums by name, absent fields as defaults.
const definition = fromJSON({ nested: { etcdserverpb: { nested: etcdserverpb } } } as Parameters<typeof fromJSON>[0], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const services = (grpc.loadPackageDefinition(definition).etcdserverpb as grpc.GrpcObject) as Record<'KV' | 'Watch' | 'Lease', grpc.ServiceClientConstructor>;

export interface ResponseHeader {
  revision: string;
}

export interface KeyValueMessage {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  lease: string;
}

export interface EventMessage {
  type: 'PUT' | 'DELETE';
  kv: KeyValueMessage;
}

export interface WatchResponse {
  header: ResponseHeader;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: EventMessage[];
}

export interface LeaseKeepAliveResponse {
  ID: string;
  TTL: string;
}

/** One HTTP/2 channel to the cluster, shared by the KV, Watch and Lease clients. */
export interface EtcdClients {
  kv: grpc.Client;
  watch: grpc.Client;
  lease: grpc.Client;
  close(): void;
}

export function connectClients(target: string): EtcdClients {
  const channel = new grpc.Channel(target, grpc.credentials.createInsecure(), {
    // A restarted etcd is reached again within a second or two, not after gRPC's default backoff of up to 2 minutes.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    // A silent peer (a partition, not a crash) is noticed within ~15 s; etcd allows pings every 5 s while streams are open.
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // Big listings are paged, but one page of large values can exceed gRPC's default 4 MiB.
    'grpc.max_receive_message_length': -1,
  });
  const make = (name: 'KV' | 'Watch' | 'Lease') => new services[name](target, grpc.credentials.createInsecure(), { channelOverride: channel });
  return { kv: make('KV'), watch: make('Watch'), lease: make('Lease'), close: () => channel.close() };
}

/** Metadata for a call that waits for a connection (within its deadline) instead of failing while etcd is away. */
export function waitingMetadata(extra: Record<string, string> = {}): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  md.setOptions({ waitForReady: true });
  return md;
}

/** Calls a unary method; rejects with the gRPC error (a ServiceError, with `code` and `details`). */
export function call<Res>(client: grpc.Client, method: string, request: object, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    fn.call(client, request, waitingMetadata(), { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export { grpc };
