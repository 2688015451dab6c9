#!/usr/bin/env node
// The `berth` binary: the server's own commands (`server`, `up`, `down`), and the client commands and connectors it registers.
//
// The one file that reaches both sides of the API: it starts the server in-process for `berth server`
// and loads the client-side commands (cli/, connectors/), which speak to berth only through client/.
import '../lib/threadpool.js';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientFor, ProfileError, saveProfile } from '../client/index.js';
import { isBerthError } from '../lib/errors.js';
import { CliError, collect } from './command.js';
import { registerContainerCommands } from './container.js';
import { registerGroupCommands } from './group.js';
import { registerNGroupCommands } from './ngroup.js';
import { registerProfileCommands } from './profile.js';
import { registerOrchestratorCommand } from '../orchestrator/command.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const program = new Command('berth').description('Self-hosted container instances, wire-compatible with Azure Container Instances');

/** SIGTERM or SIGINT: `close` once (containers keep running), then exit. */
function stopOnSignals(close: () => Promise<void>) {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

program
  .command('server')
  .description('Run the berth server in the foreground (SQLite, this host as the only agent; or a control plane replica of a cluster on etcd)')
  .option('--listen <host:port>', 'plain HTTP address (loopback only unless --allow-insecure-http)')
  .option('--listen-https <host:port>', "HTTPS address, with a certificate from berth's own CA ('' for none)")
  .option('--allow-insecure-http', 'allow plain HTTP on a non-loopback address')
  .option('--tls-dir <dir>', "where berth's CA and server certificate live (default: DATA_DIR/tls)")
  .option('--data-dir <dir>', 'where state, images and containers live', '/var/lib/berth')
  .option('--token <token>', 'an API token clients may use (repeatable)', collect, [])
  .option('--bridge <name>', 'bridge for container groups')
  .option('--subnet <cidr>', 'subnet for container groups')
  .option('--advertise-address <ip>', "this host's IPv4 address that Public groups' ports are published on (and only there)")
  .option('--runc-root <dir>', 'runc state directory')
  .option('--insecure-registry <host:port>', 'registry reached over plain HTTP (loopback ones always are)', collect, [])
  .option('--stop-grace <seconds>', 'SIGTERM-to-SIGKILL grace when stopping containers', Number)
  .option('--dns-listen <host:port>', "where berth's DNS answers for its zone, UDP and TCP ('' for none; default 127.0.0.1:8753)")
  .option('--dns-zone <zone>', "zone of the groups' fqdns (default berth.internal)")
  .option('--location <name>', "the location berth serves; requests naming another are refused (default local)")
  .option('--disk-limit-gb <GB>', "each group's disk for its writable layers and volumes (default 10; 0: no limit)", Number)
  .option('--store <url>', 'etcd://host:port[,host:port…][/prefix]: a control plane replica of a cluster, its hosts joined with `berth agent` (default: SQLite in the data dir, this host the only agent)')
  .option('--join-token <token>', 'a token hosts may join the cluster with (repeatable)', collect, [])
  .option('--cluster-cidr <cidr>', "a cluster's overlay network: each host's groups get a subnet of it (default 10.252.0.0/16; the same on every replica)")
  .option('--host-subnet-prefix <bits>', "the prefix length of each host's subnet of the cluster CIDR (default 24: 253 groups per host)", Number)
  .option('--no-orchestrator', 'do not run the NGroup orchestrator in this process (run `berth orchestrator --api URL` instead)')
  .action(async (o) => {
    const { loadConfig, startServer } = await import('../server.js');
    const cfg = loadConfig(resolve(o.dataDir), {
      listen: o.listen, listenHttps: o.listenHttps, allowInsecureHttp: o.allowInsecureHttp, tlsDir: o.tlsDir, tokens: o.token, bridge: o.bridge, subnet: o.subnet, advertiseAddress: o.advertiseAddress,
      runcRoot: o.runcRoot, insecureRegistries: o.insecureRegistry, stopGraceSeconds: o.stopGrace, dnsListen: o.dnsListen, dnsZone: o.dnsZone, location: o.location,
      diskLimitGB: o.diskLimitGb, store: o.store, joinTokens: o.joinToken, clusterCidr: o.clusterCidr, hostSubnetPrefix: o.hostSubnetPrefix, ...(o.orchestrator === false && { orchestrator: false }),
    });
    const srv = await startServer(cfg);
    if (srv.dnsAddress) console.error(`berth: serving DNS for zone ${srv.dnsZone} on ${srv.dnsAddress} (UDP and TCP)`);
    console.error(`berth: serving the ACI API on ${srv.url}${srv.httpsUrl ? ` and ${srv.httpsUrl} (CA certificate: ${srv.caCert})` : ''} (data in ${cfg.dataDir})`);
    stopOnSignals(() => srv.close());
  });

program
  .command('agent')
  .description('Run this host as an agent of a berth cluster: join the control plane once with a join token, then run what it places here')
  .option('--join <urls>', 'the control plane: https://host:port, several comma-separated for replicas')
  .option('--token <token>', 'a join token of the cluster (the first start only; the host keeps its own credential)')
  .option('--ca <file>', "the CA to trust the control plane by on the first start (PEM; later: the cluster CA it received)")
  .option('--name <host>', "this host's name in the cluster (a DNS label; default: the hostname)")
  .option('--zone <zone>', 'the zone (fault domain) this host is in')
  .option('--label <key=value>', 'a label of this host (repeatable)', collect, [])
  .option('--advertise-address <ip>', 'the address the control plane reaches this host on, and published ports are on')
  .option('--listen <host:port>', "the agent's own HTTPS API (logs, exec), default ADVERTISE_ADDRESS:8790")
  .option('--cpu <cores>', 'CPU cores groups may use here (default: all of the host)', Number)
  .option('--memory-gb <GB>', 'memory groups may use here (default: all of the host)', Number)
  .option('--data-dir <dir>', 'where the host keeps its credential, images and containers', '/var/lib/berth-agent')
  .option('--bridge <name>', 'bridge for container groups')
  .option('--subnet <cidr>', "subnet for container groups on this host (on a cluster with an overlay, the control plane's subnet for it wins)")
  .option('--runc-root <dir>', 'runc state directory')
  .option('--insecure-registry <host:port>', 'registry reached over plain HTTP (loopback ones always are)', collect, [])
  .option('--stop-grace <seconds>', 'SIGTERM-to-SIGKILL grace when stopping containers', Number)
  .option('--disk-limit-gb <GB>', "each group's disk for its writable layers and volumes (default 10; 0: no limit)", Number)
  .action(async (o) => {
    const { loadAgentConfig, startAgentProcess } = await import('../agent-process.js');
    const labels: Record<string, string> = {};
    for (const l of o.label as string[]) {
      const i = l.indexOf('=');
      if (i <= 0) throw new CliError(`--label takes key=value (got '${l}')`);
      labels[l.slice(0, i)] = l.slice(i + 1);
    }
    const cfg = loadAgentConfig(resolve(o.dataDir), {
      join: o.join ? String(o.join).split(',').map((u: string) => u.trim()).filter(Boolean) : undefined, token: o.token, caFile: o.ca, name: o.name, zone: o.zone,
      labels: Object.keys(labels).length ? labels : undefined, advertiseAddress: o.advertiseAddress, listen: o.listen, cpu: o.cpu, memoryGB: o.memoryGb,
      bridge: o.bridge, subnet: o.subnet, runcRoot: o.runcRoot, insecureRegistries: o.insecureRegistry, stopGraceSeconds: o.stopGrace, diskLimitGB: o.diskLimitGb,
    });
    const agent = await startAgentProcess(cfg);
    console.error(`berth agent: host ${agent.host} is in the cluster (control plane ${agent.controlPlane()}); its API on ${agent.dataPlaneUrl} (data in ${cfg.dataDir})`);
    stopOnSignals(() => agent.close());
  });

program
  .command('up')
  .description('Install what is missing, start berth in the background, and configure this CLI')
  .option('--listen <host:port>', 'plain HTTP address (loopback)', '127.0.0.1:8780')
  .option('--listen-https <host:port>', 'HTTPS address', '127.0.0.1:8743')
  .option('--data-dir <dir>', 'where state, images and containers live', '/var/lib/berth')
  .option('--skip-install', 'do not install missing packages')
  .option('--bridge <name>', 'bridge for container groups (kept in the config)')
  .option('--subnet <cidr>', 'subnet for container groups (kept in the config)')
  .option('--advertise-address <ip>', "this host's IPv4 address that Public groups' ports are published on (kept in the config)")
  .action(async (o) => {
    const dataDir = resolve(o.dataDir);
    if (!o.skipInstall) {
      const r = spawnSync('bash', [join(repoRoot, 'scripts/install-deps.sh'), '--runtime-only'], { stdio: 'inherit' });
      if (r.status !== 0) throw new CliError('Installing dependencies failed (see above).');
    }
    const { ensureConfig } = await import('../server.js');
    const { token } = ensureConfig(dataDir, { bridge: o.bridge, subnet: o.subnet, advertiseAddress: o.advertiseAddress });
    const endpoint = `http://${o.listen}`;
    const pidFile = join(dataDir, 'server.pid');
    const running = existsSync(pidFile) && isAlive(Number(readFileSync(pidFile, 'utf8')));
    if (!running) {
      const log = openSync(join(dataDir, 'server.log'), 'a');
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'server', '--listen', o.listen, '--listen-https', o.listenHttps, '--data-dir', dataDir], {
        detached: true, stdio: ['ignore', log, log],
      });
      closeSync(log);
      writeFileSync(pidFile, String(child.pid));
      child.unref();
    }
    const profile = { endpoint, token, subscription: 'default' };
    const client = clientFor(profile);
    for (let i = 0; !(await client.healthy()); i++) {
      if (i > 100) throw new CliError(`berth did not come up; see ${join(dataDir, 'server.log')}`);
      await sleep(100);
    }
    client.close();
    saveProfile(profile);
    const ca = join(dataDir, 'tls', 'ca.crt');
    process.stdout.write(`berth is ${running ? 'already ' : ''}running: ${endpoint} (pid ${readFileSync(pidFile, 'utf8')}, log ${join(dataDir, 'server.log')})
HTTPS: https://${o.listenHttps} with berth's CA certificate ${ca}
  (Azure SDK: NODE_EXTRA_CA_CERTS=${ca}; az CLI: REQUESTS_CA_BUNDLE=${ca})
API token: in ${join(dataDir, 'config.json')}; this CLI is configured to use it.

  berth container create -g demo -n hello --image <registry>/<image> --ports 80 --ip-address Public
  berth container show -g demo -n hello
  curl -H "Authorization: Bearer $(jq -r '.tokens[0]' ${join(dataDir, 'config.json')})" \\
    '${endpoint}/subscriptions/default/providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01'
`);
  });

program
  .command('down')
  .description('Stop the background berth started by `berth up` (containers keep running)')
  .option('--data-dir <dir>', 'data directory given to `berth up`', '/var/lib/berth')
  .action(async (o) => {
    const pidFile = join(resolve(o.dataDir), 'server.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (!pid || !isAlive(pid)) return void console.error('berth is not running');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
    console.error(`berth (pid ${pid}) stopped`);
  });

function isAlive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

registerContainerCommands(program);
registerGroupCommands(program);
registerProfileCommands(program);
registerNGroupCommands(program);
(await import('../connectors/kubernetes/command.js')).registerKubernetesNode(program);
registerOrchestratorCommand(program);

program.parseAsync().catch((e) => {
  const message = e instanceof CliError || e instanceof ProfileError ? e.message : isBerthError(e) ? `(${e.code}) ${e.message}` : (e as Error).stack;
  process.stderr.write(`berth: ${message}\n`);
  process.exit(1);
});
