// The agent API every replica serves under /agent/v1 (the wire of the remote ControlPlaneLink): join with a join
// token; then, with the host's own credential and for that host only: registration, heartbeats, the specs placed
// on it as a stream from a revision, status and removal reports. Each route parses its request, nothing more.
//
//   POST /agent/v1/join                          {name, addresses, csr}  -> {host, credential, caCert, signingPublicKey, certificate}
//   POST /agent/v1/hosts/{host}/certificate      {addresses, csr}        -> {certificate}   (the host's addresses changed)
//   PUT  /agent/v1/hosts/{host}                  HostRegistration        -> {leaseTtlMs, heartbeatMs, overlay?, peersVersion?}
//   POST /agent/v1/hosts/{host}/heartbeat                                -> {leaseTtlMs, heartbeatMs, peersVersion?}  (404 ResourceNotFound: register again)
//   POST /agent/v1/hosts/{host}/overlay                                  -> OverlayAssignment (its subnet claimed if new; 404 NotFound: no overlay)
//   GET  /agent/v1/hosts/{host}/peers                                    -> OverlayPeers {version, peers} (the overlay's hosts)
//   GET  /agent/v1/hosts/{host}/resume                                   -> HostResume {statuses, removing}
//   GET  /agent/v1/hosts/{host}/specs?fromRevision=N  -> NDJSON lines: {"events":[SpecEvent…]} (one line is one
//        store revision or more, whole), {"heartbeat":true} every 10 s, {"error":WireError} before an end it caused
//   PUT  /agent/v1/hosts/{host}/heldports        {ports: PublishedPort[]} -> 204 (the ports its own sockets keep, all of them)
//   POST /agent/v1/hosts/{host}/statuses         GroupStatus[]           -> {refused: uid[]} (groups not placed there)
//   POST /agent/v1/hosts/{host}/groups/{uid}/removed                     -> 204
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { MAX_HELD_PORTS, type HostRegistration, type OverlayPeers, type SpecEvent } from '../../agent/link.js';
import type { GroupStatus } from '../../agent/types.js';
import type { PublishedPort } from '../../agent/spec.js';
import { AGENT, JOIN } from '../../arm/route-scope.js';
import { BerthError, Codes, errorToWire } from '../../lib/errors.js';
import { signCsr } from '../../lib/tls.js';
import type { AgentCredentials } from './credentials.js';
import type { HostGateway } from './gateway.js';
import type { ClusterIdentity } from './identity.js';

export interface AgentApiOptions {
  gateway: HostGateway;
  credentials: AgentCredentials;
  identity: ClusterIdentity;
  /** Names no agent may take (the in-process agent's). */
  reservedHosts: string[];
  /** The cluster overlay's hosts (cluster-overlay.ts), on a cluster that has one. */
  overlayPeers?: () => OverlayPeers;
}

export interface JoinRequest {
  name: string;
  addresses: string[];
  csr: string;
}

const invalid = (message: string, target?: string) => new BerthError(Codes.InvalidRequestContent, message, 400, target);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown, what: string) => {
  if (!isObj(v)) throw invalid(`The ${what} must be a JSON object.`);
  return v;
};
const str = (v: unknown, target: string, max = 1024) => {
  if (typeof v !== 'string' || v === '' || v.length > max) throw invalid(`'${target}' must be a non-empty string of at most ${max} characters.`, target);
  return v;
};
/** A host name is a DNS label (lower case): it appears in keys, paths, certificates and interface names. */
const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkHostName(name: unknown, target = 'name'): string {
  if (typeof name !== 'string' || !HOST_NAME.test(name))
    throw invalid(`A host name is a DNS label: lower-case letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit (got '${String(name).slice(0, 80)}').`, target);
  return name;
}

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function parseAddresses(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 16) throw invalid("'addresses' must list 1 to 16 addresses or DNS names of the host.", 'addresses');
  return v.map((a, i) => {
    if (typeof a !== 'string' || !(isIP(a) || DNS_NAME.test(a))) throw invalid(`'addresses[${i}]' is not an IP address or DNS name.`, `addresses[${i}]`);
    return a;
  });
}

function parseCsr(v: unknown): string {
  const csr = str(v, 'csr', 16384);
  if (!/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$/.test(csr)) throw invalid("'csr' must be one PEM certificate signing request.", 'csr');
  return csr;
}

export function parseJoin(body: unknown): JoinRequest {
  const b = obj(body, 'join request');
  return { name: checkHostName(b.name), addresses: parseAddresses(b.addresses), csr: parseCsr(b.csr) };
}

export function parseCertificateRequest(body: unknown): { addresses: string[]; csr: string } {
  const b = obj(body, 'certificate request');
  return { addresses: parseAddresses(b.addresses), csr: parseCsr(b.csr) };
}

export function parseRegistration(host: string, body: unknown): HostRegistration {
  const b = obj(body, 'registration');
  if (b.name !== host) throw invalid(`The registration names host '${String(b.name).slice(0, 80)}', not '${host}'.`, 'name');
  const alloc = obj(b.allocatable, "registration's 'allocatable'");
  const positive = (v: unknown, target: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalid(`'${target}' must be a positive number.`, target);
    return v;
  };
  const count = (v: unknown, target: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid(`'${target}' must be a whole number.`, target);
    return v;
  };
  const labels = b.labels === undefined ? {} : obj(b.labels, "registration's 'labels'");
  for (const [k, v] of Object.entries(labels))
    if (!/^[A-Za-z0-9._/-]{1,253}$/.test(k) || typeof v !== 'string' || v.length > 253) throw invalid(`The label '${k.slice(0, 80)}' must be a name with a string value.`, `labels.${k.slice(0, 80)}`);
  let dataPlane: HostRegistration['dataPlane'];
  if (b.dataPlane !== undefined) {
    const d = obj(b.dataPlane, "registration's 'dataPlane'");
    const url = str(d.url, 'dataPlane.url');
    if (!/^https:\/\/[^/?#]+$/.test(url)) throw invalid("'dataPlane.url' must be https://host:port.", 'dataPlane.url');
    const certSha256 = str(d.certSha256, 'dataPlane.certSha256');
    if (!/^[0-9a-f]{64}$/.test(certSha256)) throw invalid("'dataPlane.certSha256' must be 64 lower-case hex digits.", 'dataPlane.certSha256');
    dataPlane = { url, certSha256 };
  }
  let overlay: HostRegistration['overlay'];
  if (b.overlay !== undefined) {
    const vtepMac = str(obj(b.overlay, "registration's 'overlay'").vtepMac, 'overlay.vtepMac', 17);
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(vtepMac)) throw invalid("'overlay.vtepMac' must be a MAC address in lower-case hex (aa:bb:cc:dd:ee:ff).", 'overlay.vtepMac');
    overlay = { vtepMac };
  }
  const address = str(b.address, 'address', 253);
  if (!(isIP(address) || DNS_NAME.test(address))) throw invalid("'address' is not an IP address or DNS name.", 'address');
  return {
    name: host, address, ...(b.zone !== undefined && { zone: str(b.zone, 'zone', 63) }), labels: labels as Record<string, string>,
    allocatable: {
      cpu: positive(alloc.cpu, 'allocatable.cpu'), memoryGB: positive(alloc.memoryGB, 'allocatable.memoryGB'),
      ...(alloc.addresses !== undefined && { addresses: count(alloc.addresses, 'allocatable.addresses') }),
    },
    ...(dataPlane && { dataPlane }), agentVersion: str(b.agentVersion, 'agentVersion', 100), ...(overlay && { overlay }),
  };
}

export function parseStatuses(body: unknown): GroupStatus[] {
  if (!Array.isArray(body) || body.length > 1000) throw invalid('The statuses must be a JSON array of at most 1000 group statuses.');
  return body.map((s, i) => {
    if (!isObj(s) || typeof s.uid !== 'string' || !/^[0-9a-z-]{1,64}$/.test(s.uid) || typeof s.generation !== 'number' || typeof s.state !== 'string')
      throw invalid(`The status [${i}] must have a uid, a generation and a state.`, `[${i}]`);
    return s as unknown as GroupStatus;
  });
}

export function parseHeldPorts(body: unknown): PublishedPort[] {
  const ports = obj(body, 'held ports').ports;
  if (!Array.isArray(ports) || ports.length > MAX_HELD_PORTS) throw invalid(`'ports' must be a JSON array of at most ${MAX_HELD_PORTS} ports.`, 'ports');
  return ports.map((p, i) => {
    if (!isObj(p) || (p.protocol !== 'TCP' && p.protocol !== 'UDP') || typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
      throw invalid(`'ports[${i}]' must be {"protocol": "TCP" or "UDP", "port": 1 to 65535}.`, `ports[${i}]`);
    return { protocol: p.protocol, port: p.port };
  });
}

export function parseFromRevision(query: unknown): number {
  const v = isObj(query) ? query.fromRevision : undefined;
  if (v === undefined) return 0;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw invalid("'fromRevision' must be a whole number.", 'fromRevision');
  return Number(v);
}

/** How often an idle spec stream says it is alive (the agent's link gives up on one silent for three times this). */
export const SPEC_STREAM_HEARTBEAT_MS = 10_000;

export function registerAgentRoutes(app: FastifyInstance, o: AgentApiOptions) {
  const H = '/agent/v1/hosts/:host';
  const hostOf = (params: unknown) => checkHostName((params as { host: string }).host, 'host');
  const certificate = (host: string, addresses: string[], csr: string) => signCsr(o.identity.tlsDir, csr, `berth-agent:${host}`, addresses);

  app.post('/agent/v1/join', JOIN, async (req) => {
    const j = parseJoin(req.body);
    if (o.reservedHosts.includes(j.name)) throw new BerthError(Codes.Conflict, `The host name '${j.name}' is the control plane's own host.`, 409, 'name');
    const cert = await certificate(j.name, j.addresses, j.csr);
    // a host joining again (its data lost) gets a new credential: the old one stops working
    const credential = await o.credentials.issue(j.name);
    return { host: j.name, credential, caCert: o.identity.caCertPem, signingPublicKey: o.identity.publicKeyPem, certificate: cert };
  });

  app.post(`${H}/certificate`, AGENT, async (req) => {
    const r = parseCertificateRequest(req.body);
    return { certificate: await certificate(hostOf(req.params), r.addresses, r.csr) };
  });

  // the peers' version rides on every answer: a host fetches them again as soon as they change
  const peersVersion = () => (o.overlayPeers ? { peersVersion: o.overlayPeers().version } : {});

  app.put(H, AGENT, async (req) => {
    const host = hostOf(req.params);
    return { ...(await o.gateway.register(host, parseRegistration(host, req.body))), ...peersVersion() };
  });

  app.post(`${H}/heartbeat`, AGENT, async (req) => {
    await o.gateway.heartbeat(hostOf(req.params));
    return { ...o.gateway.terms, ...peersVersion() };
  });

  app.post(`${H}/overlay`, AGENT, async (req) => {
    const assignment = await o.gateway.overlay(hostOf(req.params));
    if (!assignment) throw new BerthError(Codes.NotFound, 'This cluster has no overlay network.', 404);
    return assignment;
  });

  app.get(`${H}/peers`, AGENT, async (req) => {
    hostOf(req.params);
    if (!o.overlayPeers) throw new BerthError(Codes.NotFound, 'This cluster has no overlay network.', 404);
    return o.overlayPeers();
  });

  app.get(`${H}/resume`, AGENT, async (req) => o.gateway.resume(hostOf(req.params)));

  app.put(`${H}/heldports`, AGENT, async (req, reply) => {
    await o.gateway.reportHeldPorts(hostOf(req.params), parseHeldPorts(req.body));
    return reply.code(204).send();
  });

  app.post(`${H}/statuses`, AGENT, async (req) => o.gateway.reportStatuses(hostOf(req.params), parseStatuses(req.body)));

  app.post(`${H}/groups/:uid/removed`, AGENT, async (req, reply) => {
    const uid = (req.params as { uid: string }).uid;
    if (!/^[0-9a-z-]{1,64}$/.test(uid)) throw invalid(`'${uid.slice(0, 80)}' is not a group's uid.`, 'uid');
    await o.gateway.reportRemoved(hostOf(req.params), uid);
    return reply.code(204).send();
  });

  app.get(`${H}/specs`, AGENT, async (req, reply) => {
    const host = hostOf(req.params);
    const from = parseFromRevision(req.query);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    // events delivered in one turn (one store revision's, or a listing's) go out as one line: a line is read
    // whole or not at all, so a link that resumes after a line's last revision misses and repeats nothing
    let batch: SpecEvent[] = [];
    const flush = () => {
      if (batch.length > 0 && !res.destroyed) res.write(JSON.stringify({ events: batch }) + '\n');
      batch = [];
    };
    const stop = o.gateway.watchSpecs(host, from, (e) => {
      if (batch.length === 0) setImmediate(flush);
      batch.push(e);
    }, (err) => {
      flush();
      res.end(JSON.stringify({ error: errorToWire(err) }) + '\n');
    });
    const heartbeat = setInterval(() => res.write('{"heartbeat":true}\n'), SPEC_STREAM_HEARTBEAT_MS);
    res.on('close', () => {
      clearInterval(heartbeat);
      stop();
    });
  });
}
