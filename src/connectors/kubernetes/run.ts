// Starts the virtual node: berth's client, the Kubernetes client, the kubelet API and the node controller, wired from options.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { clientFor, loadProfile, ProfileError, type Profile } from '../../client/index.js';
import { Kube } from './kube.js';
import { KubeletServer } from './kubelet.js';
import { VirtualNode } from './node.js';

/** The first non-internal IPv4 address: what the API server can reach the kubelet API on. */
function defaultNodeIP(): string {
  for (const addrs of Object.values(networkInterfaces()))
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

export interface RunningNode {
  node: VirtualNode;
  kubelet: KubeletServer;
  kubeletPort: number;
  stop(): Promise<void>;
}

export interface KubernetesNodeOptions {
  kubeconfig?: string;
  nodeName: string;
  nodeIp?: string;
  kubeletPort: number;
  kubeletListen: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  clientCaFile?: string;
  cpu: string;
  memory: string;
  pods: string;
  resourceGroup?: string;
  location: string;
  defaultCpu: number;
  defaultMemoryGb: number;
  statusIntervalMs: number;
  sweepIntervalSeconds: number;
  berthEndpoint?: string;
  berthToken?: string;
  subscription?: string;
}

export async function runKubernetesNode(o: KubernetesNodeOptions): Promise<RunningNode> {
  const log = (m: string) => process.stderr.write(`berth kubernetes-node: ${m}\n`);
  // The flags win; what they leave out comes from BERTH_* or the profile `berth up` saved.
  let saved: Partial<Profile> = {};
  try {
    saved = loadProfile((m) => console.error(`berth kubernetes-node: warning: ${m}`));
  } catch (e) {
    if (!(e instanceof ProfileError && o.berthEndpoint && o.berthToken)) throw e;
  }
  const berth = clientFor({
    endpoint: o.berthEndpoint ?? saved.endpoint!, token: o.berthToken ?? saved.token!, subscription: o.subscription ?? saved.subscription ?? 'default', caCert: saved.caCert,
  });
  const resourceGroup = o.resourceGroup ?? `k8s-${o.nodeName}`;
  const kube = new Kube(o.kubeconfig);
  const nodeIP = o.nodeIp ?? defaultNodeIP();
  const node = new VirtualNode(kube, berth, {
    nodeName: o.nodeName, nodeIP, kubeletPort: o.kubeletPort, cpu: o.cpu, memory: o.memory, pods: o.pods, location: o.location, resourceGroup,
    defaultCpu: o.defaultCpu, defaultMemoryGB: o.defaultMemoryGb, statusIntervalMs: o.statusIntervalMs,
    sweepIntervalMs: o.sweepIntervalSeconds * 1000, leaseSeconds: 10, log,
  });
  // Whoever reaches the kubelet API can exec into pods: only callers with a certificate from this CA (the API server) may.
  const clientCA = o.clientCaFile ? readFileSync(o.clientCaFile) : await kube.clusterCA();
  if (!clientCA) throw new Error("no CA to check the API server's kubelet client certificate: the kubeconfig has none, pass --client-ca-file");
  const kubelet = new KubeletServer(node, {
    port: o.kubeletPort, listen: o.kubeletListen, nodeName: o.nodeName, nodeIP,
    ...(o.tlsCertFile && o.tlsKeyFile && { cert: readFileSync(o.tlsCertFile), key: readFileSync(o.tlsKeyFile) }),
    clientCA,
    log,
  });
  // The kubelet API first: the node advertises its port as soon as it registers.
  const kubeletPort = await kubelet.start();
  (node.o as { kubeletPort: number }).kubeletPort = kubeletPort;
  await node.start();
  log(`node ${o.nodeName} is Ready (kubelet API on ${o.kubeletListen}:${kubeletPort}, pods run in berth resource group ${resourceGroup})`);
  return {
    node, kubelet, kubeletPort,
    async stop() {
      await node.stop();
      await kubelet.close();
      berth.close();
    },
  };
}

