// Composition root of `berth agent`: this host's runtime and agent, its link to the control plane (joined once with a
// join token, then its own credential), and its own HTTPS API for the control plane's logs and exec.
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startDataPlaneServer } from './agent/dataplane-server.js';
import { fingerprintOf } from './agent/dataplane-wire.js';
import { Agent } from './agent/agent.js';
import { startFollowing } from './agent/follower.js';
import { createHostRuntime, hostCapacity, hostRuntimeConfig, type HostRuntimeConfig } from './agent/host.js';
import type { HostRegistration, OverlayAssignment } from './agent/link.js';
import { OverlayPeering } from './agent/overlay-peering.js';
import { joinCluster, RemoteLink } from './agent/remote-link.js';
import { configPicker } from './lib/config-file.js';
import { BerthError, Codes } from './lib/errors.js';
import { parseCidr } from './lib/ipv4.js';
import { splitHostPort } from './lib/net.js';
import { TokenVerifier } from './lib/signed-token.js';
import { newKeyAndCsr } from './lib/tls.js';
import { berthVersion } from './lib/version.js';
import { Overlay } from './runtime/network/overlay.js';
import type { PublishedPort } from './runtime/types.js';

export interface AgentProcessConfig extends HostRuntimeConfig {
  /** The control plane's replicas, `https://host:port`. */
  join: string[];
  /** The join token: needed on the first start only (then the host has its own credential). */
  token?: string;
  /** The CA to trust the control plane by on the first start (afterwards the cluster CA it received). */
  caFile?: string;
  name: string;
  zone?: string;
  labels: Record<string, string>;
  /** The agent's own HTTPS API; default ADVERTISE_ADDRESS:8790. */
  listen: string;
  /** What groups may use here; read from the host unless given. */
  cpu: number;
  memoryGB: number;
}

/** What a host keeps of its join (0600 in its data dir). */
interface SavedIdentity {
  host: string;
  credential: string;
  caCert: string;
  signingPublicKey: string;
}

const DEFAULT_PORT = 8790;

/** A setting the agent cannot start with (said as itself, without a stack). */
const badConfig = (message: string) => new BerthError(Codes.InvalidRequestContent, message, 400);

export function loadAgentConfig(dataDir: string, flags: Partial<AgentProcessConfig>): AgentProcessConfig {
  const file = join(dataDir, 'config.json');
  const { pick } = configPicker<AgentProcessConfig>(file, flags);
  const capacity = hostCapacity();
  const runtime = hostRuntimeConfig(dataDir, pick, {
    advertiseAddress: () => {
      throw badConfig('--advertise-address is required: the IPv4 address the control plane reaches this host on, and its Public ports are published on');
    },
  });
  const { advertiseAddress } = runtime;
  if (!isIPv4(advertiseAddress)) throw badConfig(`--advertise-address "${advertiseAddress}" is no IPv4 address`);
  return {
    ...runtime,
    join: pick('join', []),
    token: pick('token', undefined),
    caFile: pick('caFile', undefined),
    name: pick('name', hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-')),
    zone: pick('zone', undefined),
    labels: pick('labels', {}),
    listen: pick('listen', `${advertiseAddress}:${DEFAULT_PORT}`),
    cpu: pick('cpu', capacity.cpu),
    memoryGB: pick('memoryGB', capacity.memoryGB),
  };
}

const writeSecret = (file: string, content: string) => {
  writeFileSync(file, content, { mode: 0o600 });
  chmodSync(file, 0o600);
};

/** Does the certificate name exactly these addresses? */
const certCovers = (certPem: string, addresses: string[]) => {
  const sans = new X509Certificate(certPem).subjectAltName ?? '';
  return addresses.every((a) => sans.includes(`IP Address:${a}`) || sans.includes(`DNS:${a}`));
};

/**
 * This host's end of the cluster overlay, on a cluster that has one: its subnet (asked of the control plane, which
 * keeps it the host's for good; until it answers, the agent waits: its running groups need it not) and the VXLAN
 * device, made or adopted as a killed agent left it. Nothing is undone when the agent stops.
 */
async function setUpOverlay(link: RemoteLink, cfg: AgentProcessConfig, log: (m: string) => void) {
  let assignment: OverlayAssignment | undefined;
  for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
    try {
      assignment = await link.overlay();
      break;
    } catch (e) {
      if (e instanceof BerthError && e.status >= 400 && e.status < 500) throw e;
      log(`asking the control plane for this host's overlay failed (again in ${delay} ms): ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  if (!assignment) return undefined;
  const device = new Overlay({
    vni: assignment.vni, port: assignment.port, clusterCidr: assignment.clusterCidr, localSubnet: assignment.subnet, underlayAddress: cfg.advertiseAddress, bridge: cfg.bridge,
  });
  const local = await device.setup();
  log(`overlay: subnet ${local.subnet} of ${assignment.clusterCidr} on ${device.device} (VNI ${assignment.vni}, port ${assignment.port}, MTU ${local.mtu})`);
  return { assignment, device, local };
}

/**
 * How many groups a subnet has addresses for: host-local hands out all but the network's, the gateway's and the
 * broadcast address, and the warm pool holds some at all times.
 */
const groupAddresses = (subnet: string, pool: number) => Math.max(0, 2 ** (32 - parseCidr(subnet)!.bits) - 3 - pool);

export async function startAgentProcess(cfg: AgentProcessConfig) {
  if (cfg.join.length === 0) throw badConfig('--join is required: the control plane, https://host:port (several, comma-separated, for replicas)');
  for (const u of cfg.join) if (!/^https:\/\/[^/]+\/?$/.test(u)) throw badConfig(`--join takes https://host:port URLs (got '${u}'): agents speak to the control plane over TLS only`);
  const endpoints = cfg.join.map((u) => u.replace(/\/$/, ''));
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(cfg.dataDir, 0o700);
  const identityFile = join(cfg.dataDir, 'agent-identity.json');
  const tlsDir = join(cfg.dataDir, 'agent-tls');
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const keyFile = join(tlsDir, 'key.pem');
  const certFile = join(tlsDir, 'cert.pem');
  const addresses = [cfg.advertiseAddress];

  let identity: SavedIdentity;
  if (existsSync(identityFile)) {
    identity = JSON.parse(readFileSync(identityFile, 'utf8')) as SavedIdentity;
    if (identity.host !== cfg.name) throw badConfig(`this data dir belongs to host '${identity.host}', not '${cfg.name}' (remove ${identityFile} to join anew)`);
  } else {
    if (!cfg.token) throw badConfig('--token (a join token of the cluster) is required to join the first time');
    const { keyPem, csrPem } = await newKeyAndCsr(`berth-agent:${cfg.name}`);
    const joined = await joinCluster({
      endpoints, token: cfg.token, ca: cfg.caFile ? readFileSync(cfg.caFile, 'utf8') : undefined, name: cfg.name, addresses, csr: csrPem,
    });
    writeSecret(keyFile, keyPem);
    writeFileSync(certFile, joined.certificate);
    identity = { host: joined.host, credential: joined.credential, caCert: joined.caCert, signingPublicKey: joined.signingPublicKey };
    writeSecret(identityFile, JSON.stringify(identity, null, 2) + '\n');
  }
  const link = new RemoteLink({ endpoints, host: identity.host, credential: identity.credential, ca: identity.caCert });
  if (!existsSync(certFile) || !existsSync(keyFile) || !certCovers(readFileSync(certFile, 'utf8'), addresses)) {
    // the host's address changed since it joined: a certificate for the new one
    const { keyPem, csrPem } = await newKeyAndCsr(`berth-agent:${identity.host}`);
    const cert = await link.renewCertificate(addresses, csrPem);
    writeSecret(keyFile, keyPem);
    writeFileSync(certFile, cert);
  }
  const certPem = readFileSync(certFile, 'utf8');

  const listen = splitHostPort(cfg.listen);
  // berth's own ports here: the configured ones and the agent's API
  const reserved: PublishedPort[] = [...cfg.reservedPorts.flatMap((port) => [{ port, protocol: 'TCP' as const }, { port, protocol: 'UDP' as const }]), { port: listen.port, protocol: 'TCP' }];
  const log = (m: string) => console.error(`berth agent: ${m}`);
  // the overlay before anything runs here: the groups' subnet is the one the control plane gives this host
  const overlay = await setUpOverlay(link, cfg, log);
  const host = createHostRuntime(overlay ? { ...cfg, subnet: overlay.assignment.subnet } : cfg, {
    reservedPorts: () => reserved, warn: log, ...(overlay && { overlay: { device: overlay.device.device, mtu: overlay.local.mtu } }),
  });
  const agent = new Agent({ runtime: host.runtime, stopGraceSeconds: cfg.stopGraceSeconds, pollMs: cfg.agentPollMs, usageIntervalMs: cfg.metricsIntervalMs });
  const dataPlane = await startDataPlaneServer({
    host: identity.host, dataPlane: agent, verifier: new TokenVerifier(identity.signingPublicKey),
    tls: { key: readFileSync(keyFile), cert: certPem }, listen,
  });
  const advertised = `https://${cfg.advertiseAddress}:${new URL(dataPlane.url).port}`;
  if (listen.port === 0) reserved.push({ port: Number(new URL(dataPlane.url).port), protocol: 'TCP' });
  const registration = (): HostRegistration => ({
    name: identity.host, address: cfg.advertiseAddress, ...(cfg.zone && { zone: cfg.zone }), labels: cfg.labels,
    allocatable: { cpu: cfg.cpu, memoryGB: cfg.memoryGB, ...(overlay && { addresses: groupAddresses(overlay.assignment.subnet, cfg.sandboxPool) }) },
    dataPlane: { url: advertised, certSha256: fingerprintOf(new X509Certificate(certPem).fingerprint256) },
    agentVersion: berthVersion(), ...(overlay && { overlay: { vtepMac: overlay.local.vtepMac } }),
  });
  // the peers known now are programmed before any group starts; a new version rides on each heartbeat's answer
  const peering = overlay && new OverlayPeering({ peers: () => link.peers(), apply: (peers) => overlay.device.setPeers(peers), log });
  await peering?.start();
  const following = await startFollowing(link, registration, agent, { onTerms: (terms) => peering?.heard(terms.peersVersion) });
  // after the agent adopted what runs: what a crash left in the warm pools is torn down, then they fill in the background
  void host.startPools();
  return {
    host: identity.host,
    dataPlaneUrl: advertised,
    controlPlane: () => link.endpoint,
    /** Stops following the control plane and serving; containers keep running. */
    async close() {
      await following.close();
      await peering?.close();
      await dataPlane.close();
      await host.stopPools();
      await link.close();
    },
  };
}
