// `berth kubernetes-node`: the command's flags; the node itself loads only when the command runs (the Kubernetes client is heavy).
import type { Command } from 'commander';
import type { KubernetesNodeOptions } from './run.js';

export function registerKubernetesNode(program: Command) {
  program
    .command('kubernetes-node')
    .description('Run a Kubernetes virtual node whose pods run as berth container groups')
    .option('--kubeconfig <file>', 'kubeconfig to reach the API server (default: $KUBECONFIG or ~/.kube/config)')
    .option('--node-name <name>', 'name of the Node object', 'berth')
    .option('--node-ip <ip>', 'address the API server reaches the kubelet API on (default: first non-loopback IPv4)')
    .option('--kubelet-port <port>', 'port of the kubelet API (TLS; 0 picks a free one)', Number, 10250)
    .option('--kubelet-listen <ip>', 'address the kubelet API listens on', '0.0.0.0')
    .option('--tls-cert-file <file>', 'kubelet API serving certificate (default: a self-signed one)')
    .option('--tls-key-file <file>', 'key of --tls-cert-file')
    .option('--client-ca-file <file>', "CA of the API server's kubelet client certificate (default: the kubeconfig's cluster CA)")
    .option('--cpu <quantity>', 'CPU capacity the node advertises', '1000')
    .option('--memory <quantity>', 'memory capacity the node advertises', '4Ti')
    .option('--pods <count>', 'pod capacity the node advertises', '5000')
    .option('--resource-group <name>', 'berth resource group the pods run in (default: k8s-<node-name>)')
    .option('--location <name>', 'location of the groups', 'local')
    .option('--default-cpu <cores>', 'CPU request for containers that give none', Number, 0.25)
    .option('--default-memory-gb <gb>', 'memory request for containers that give none', Number, 0.25)
    .option('--status-interval-ms <ms>', "how often berth's groups are read again for pod status (changes arrive at once through berth's watch)", Number, 10_000)
    .option('--sweep-interval-seconds <s>', 'how often groups without a pod are looked for', Number, 30)
    .option('--berth-endpoint <url>', 'berth API (default: BERTH_ENDPOINT or what `berth up` saved)')
    .option('--berth-token <token>', 'berth API token (default: BERTH_TOKEN or what `berth up` saved)')
    .option('--subscription <id>', 'berth subscription (default: BERTH_SUBSCRIPTION or "default")')
    .action(async (o: KubernetesNodeOptions) => {
      const { runKubernetesNode } = await import('./run.js');
      const running = await runKubernetesNode(o);
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        // Pods and groups keep running: a restarted node adopts them.
        await running.stop();
        process.exit(0);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
