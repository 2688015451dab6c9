#!/usr/bin/env node
// The `berth` command: the server, `up` for a one-command start, and `container` with az container's flags.
import '../lib/threadpool.js';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import WebSocket from 'ws';
import { splitCommand } from '../lib/argv.js';
import { ArmClient, CliError, loadCliConfig, saveCliConfig } from './client.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const collect = (v: string, prev: string[] = []) => [...prev, v];
const print = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n');

type Output = 'json' | 'jsonc' | 'none' | 'arm';
const withOutput = (c: Command) =>
  c.addOption(new Option('-o, --output <format>', "json: az's shape (properties flattened); arm: the REST resource as is").choices(['json', 'jsonc', 'none', 'arm']).default('json'));

/** A container group as `az container` prints it: the SDK model, `properties` flattened, plus `resourceGroup`. */
function azContainerGroup(g: { id: string; properties?: Record<string, unknown> } & Record<string, unknown>) {
  const { properties = {}, ...resource } = g;
  const { containers = [], ...props } = properties as { containers?: { name: string; properties?: Record<string, unknown> }[] };
  return {
    ...resource,
    ...props,
    containers: containers.map((c) => ({ name: c.name, ...c.properties })),
    resourceGroup: g.id.split('/')[4],
  };
}

/** Prints a container group (or a list of them) in the chosen output format. */
function printGroups(v: any, output: Output) {
  if (output === 'none') return;
  if (output === 'arm') return print(v);
  print(Array.isArray(v) ? v.map(azContainerGroup) : azContainerGroup(v));
}

/** --command-line, split as a shell would split it (lib/argv.ts), as az does. */
function splitCommandLine(s: string): string[] {
  try {
    return splitCommand(s);
  } catch (e) {
    throw new CliError(`--command-line: ${(e as Error).message}.`);
  }
}

const envPairs = (list: string[] | undefined, secure: boolean) =>
  (list ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(`Environment variables are KEY=VALUE; got '${kv}'.`);
    return secure ? { name: kv.slice(0, i), secureValue: kv.slice(i + 1) } : { name: kv.slice(0, i), value: kv.slice(i + 1) };
  });

const program = new Command('berth').description('Self-hosted container instances, wire-compatible with Azure Container Instances');

program
  .command('server')
  .description('Run the berth server in the foreground (SQLite, this host as the only agent)')
  .option('--listen <host:port>', 'plain HTTP address (loopback only unless --allow-insecure-http)')
  .option('--listen-https <host:port>', "HTTPS address, with a certificate from berth's own CA ('' for none)")
  .option('--allow-insecure-http', 'allow plain HTTP on a non-loopback address')
  .option('--tls-dir <dir>', "where berth's CA and server certificate live (default: DATA_DIR/tls)")
  .option('--data-dir <dir>', 'where state, images and containers live', '/var/lib/berth')
  .option('--token <token>', 'an API token clients may use (repeatable)', collect, [])
  .option('--bridge <name>', 'bridge for container groups')
  .option('--subnet <cidr>', 'subnet for container groups')
  .option('--advertise-address <ip>', 'address clients reach published ports on')
  .option('--runc-root <dir>', 'runc state directory')
  .option('--insecure-registry <host:port>', 'registry reached over plain HTTP (loopback ones always are)', collect, [])
  .option('--stop-grace <seconds>', 'SIGTERM-to-SIGKILL grace when stopping containers', Number)
  .option('--dns-listen <host:port>', "where berth's DNS answers for its zone, UDP and TCP ('' for none; default 127.0.0.1:8753)")
  .option('--dns-zone <zone>', "zone of the groups' fqdns (default berth.internal)")
  .option('--location <name>', "the location berth serves; requests naming another are refused (default local)")
  .option('--disk-limit-gb <GB>', "each group's disk for its writable layers and volumes (default 10; 0: no limit)", Number)
  .action(async (o) => {
    const { loadConfig, startServer } = await import('../server.js');
    const cfg = loadConfig(resolve(o.dataDir), {
      listen: o.listen, listenHttps: o.listenHttps, allowInsecureHttp: o.allowInsecureHttp, tlsDir: o.tlsDir, tokens: o.token, bridge: o.bridge, subnet: o.subnet, advertiseAddress: o.advertiseAddress,
      runcRoot: o.runcRoot, insecureRegistries: o.insecureRegistry, stopGraceSeconds: o.stopGrace, dnsListen: o.dnsListen, dnsZone: o.dnsZone, location: o.location,
      diskLimitGB: o.diskLimitGb,
    });
    const srv = await startServer(cfg);
    if (srv.dnsAddress) console.error(`berth: serving DNS for zone ${srv.dnsZone} on ${srv.dnsAddress} (UDP and TCP)`);
    console.error(`berth: serving the ACI API on ${srv.url}${srv.httpsUrl ? ` and ${srv.httpsUrl} (CA certificate: ${srv.caCert})` : ''} (data in ${cfg.dataDir})`);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await srv.close();
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
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
  .option('--advertise-address <ip>', 'address clients reach published ports on (kept in the config)')
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
    for (let i = 0; ; i++) {
      const ok = await fetch(`${endpoint}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (i > 100) throw new CliError(`berth did not come up; see ${join(dataDir, 'server.log')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    saveCliConfig({ endpoint, token, subscription: 'default' });
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
    for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
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

const container = program.command('container').description('Manage container groups (the flags of `az container`)');
const withGroup = (c: Command) =>
  c.requiredOption('-g, --resource-group <name>', 'resource group').requiredOption('-n, --name <name>', 'container group name');

withOutput(withGroup(container.command('create').description('Create a container group with one container (or update the one of that name)')))
  .requiredOption('--image <image>', 'container image')
  .option('--cpu <cores>', 'CPU cores', Number, 1)
  .option('--memory <GB>', 'memory in GB', Number, 1.5)
  .option('--ports <ports...>', 'ports to open', [])
  .addOption(new Option('--protocol <protocol>', 'protocol of the ports').choices(['TCP', 'UDP']).default('TCP'))
  .addOption(new Option('--ip-address <type>', 'publish the ports').choices(['Public', 'Private']))
  .option('--dns-name-label <label>', "DNS name label: <label>.<location>.<berth's zone> answers with the group's address (implies --ip-address Public)")
  .addOption(new Option('--os-type <type>').choices(['Linux']).default('Linux'))
  .option('--environment-variables <kv...>', 'KEY=VALUE pairs')
  .option('--secure-environment-variables <kv...>', 'KEY=VALUE pairs, never shown back')
  .option('--command-line <line>', 'command to run instead of the image default')
  .addOption(new Option('--restart-policy <policy>').choices(['Always', 'OnFailure', 'Never']).default('Always'))
  .option('-l, --location <location>', 'location')
  .option('--registry-login-server <server>', 'private registry')
  .option('--registry-username <user>')
  .option('--registry-password <password>')
  .option('--no-wait', 'do not wait for the group to be created')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const ports = (o.ports as string[]).flatMap((p) => p.split(/[ ,]+/)).filter(Boolean).map((p) => ({ port: Number(p), protocol: o.protocol }));
    // As az: a DNS name label asks for a public address.
    const ipType = o.ipAddress ?? (o.dnsNameLabel ? 'Public' : undefined);
    const body = {
      location: o.location,
      properties: {
        osType: o.osType,
        restartPolicy: o.restartPolicy,
        containers: [{
          name: o.name,
          properties: {
            image: o.image,
            ...(o.commandLine && { command: splitCommandLine(o.commandLine) }),
            ports,
            environmentVariables: [...envPairs(o.environmentVariables, false), ...envPairs(o.secureEnvironmentVariables, true)],
            resources: { requests: { cpu: o.cpu, memoryInGB: o.memory } },
          },
        }],
        ...(ipType && { ipAddress: { type: ipType, ports, ...(o.dnsNameLabel && { dnsNameLabel: o.dnsNameLabel }) } }),
        ...(o.registryLoginServer && {
          imageRegistryCredentials: [{ server: o.registryLoginServer, username: o.registryUsername, password: o.registryPassword }],
        }),
      },
    };
    const path = arm.groupPath(o.resourceGroup, o.name);
    const r = await arm.call('PUT', path, body);
    if (o.wait) {
      const seen = new Map<string, string>();
      // Show pull progress and other events as they happen.
      const showEvents = async () => {
        const g = await arm.call('GET', path);
        for (const c of g.body.properties.containers ?? [])
          for (const e of c.properties.instanceView?.events ?? []) {
            const k = `${c.name}/${e.name}/${e.firstTimestamp}`;
            if (seen.get(k) !== e.message) process.stderr.write(`${c.name}: ${e.name}: ${e.message}\n`);
            seen.set(k, e.message);
          }
      };
      await arm.wait(r.headers.get('azure-asyncoperation')!, showEvents);
      // a create may end between two polls: the events of its last moments too
      await showEvents();
    }
    printGroups((await arm.call('GET', path)).body, o.output);
  });

withOutput(withGroup(container.command('show').description('Show a container group'))).action(async (o) => {
  const arm = new ArmClient(loadCliConfig());
  printGroups((await arm.call('GET', arm.groupPath(o.resourceGroup, o.name))).body, o.output);
});

withOutput(container
  .command('list')
  .description('List container groups'))
  .option('-g, --resource-group <name>', 'only this resource group')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const all = [];
    let next: string | undefined = o.resourceGroup ? arm.groupPath(o.resourceGroup) : arm.listPath();
    while (next) {
      const r: { body: { value: unknown[]; nextLink?: string } } = await arm.call('GET', next);
      all.push(...r.body.value);
      next = r.body.nextLink;
    }
    printGroups(all, o.output);
  });

withGroup(container.command('logs').description('Show the log of a container'))
  .option('--container-name <name>', 'container (default: the group name)')
  .option('--tail <n>', 'last n lines', Number)
  .option('--timestamps', 'prefix lines with timestamps')
  .option('--follow', 'keep streaming the log')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const path = `${arm.groupPath(o.resourceGroup, o.name)}/containers/${encodeURIComponent(o.containerName ?? o.name)}/logs`;
    const q = { tail: o.tail, timestamps: o.timestamps ? true : undefined };
    if (!o.follow) return void process.stdout.write((await arm.call<{ content: string }>('GET', path, undefined, q)).body.content);
    const res = await arm.raw('GET', path, undefined, { ...q, follow: true });
    if (!res.ok || !res.body) throw new CliError(`HTTP ${res.status}: ${await res.text()}`);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
  });

withGroup(container.command('exec').description('Run a command in a running container (with a terminal when this one is a terminal)'))
  .requiredOption('--exec-command <command>', "command to run, split as a shell would (quotes, backslashes; nothing expanded: use sh -c '…')")
  .option('--container-name <name>', 'container (default: the group name)')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const path = `${arm.groupPath(o.resourceGroup, o.name)}/containers/${encodeURIComponent(o.containerName ?? o.name)}/exec`;
    // As docker exec -it: a terminal in the container only when both ends here are one.
    const tty = process.stdin.isTTY && process.stdout.isTTY;
    const size = () => ({ rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 });
    const r = await arm.call<{ webSocketUri: string; password: string }>('POST', path, { command: o.execCommand, ...(tty && { terminalSize: size() }) });
    const code = await new Promise<number>((done, fail) => {
      const ws = new WebSocket(r.body.webSocketUri);
      const onResize = () => ws.send(JSON.stringify({ resize: size() })); // berth's resize extension
      const restore = () => {
        if (tty) {
          process.stdin.setRawMode(false);
          process.stdout.off('resize', onResize);
        }
        process.stdin.destroy();
      };
      ws.on('open', () => {
        ws.send(r.body.password);
        if (tty) {
          process.stdin.setRawMode(true);
          process.stdout.on('resize', onResize);
        }
        process.stdin.on('data', (d) => ws.send(d, { binary: true }));
        process.stdin.on('end', () => ws.send(Buffer.alloc(0)));
      });
      ws.on('message', (d) => process.stdout.write(d as Buffer));
      ws.on('close', (c, reason) => {
        restore();
        const exit = /^exit (\d+)$/.exec(reason.toString());
        if (c === 1000 && exit) done(Number(exit[1]));
        else if (c === 1000 || c === 1005) done(0);
        else fail(new CliError(`exec ended: ${reason.toString() || c}`));
      });
      ws.on('error', (e) => {
        restore();
        fail(e);
      });
    });
    // The command's exit code is this one's, as with docker exec and kubectl exec.
    process.exitCode = code;
  });

withGroup(container.command('attach').description("Stream a container's output as it is written, until it ends"))
  .option('--container-name <name>', 'container (default: the group name)')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const path = `${arm.groupPath(o.resourceGroup, o.name)}/containers/${encodeURIComponent(o.containerName ?? o.name)}/attach`;
    const r = await arm.call<{ webSocketUri: string; password: string }>('POST', path);
    await new Promise<void>((done, fail) => {
      const ws = new WebSocket(r.body.webSocketUri, { headers: { authorization: r.body.password } });
      ws.on('message', (d) => process.stdout.write(d as Buffer));
      ws.on('close', (c, reason) => (c === 1000 || c === 1005 ? done() : fail(new CliError(`attach ended: ${reason.toString() || c}`))));
      ws.on('error', fail);
    });
  });

withOutput(withGroup(container.command('delete').description('Delete a container group')))
  .option('-y, --yes', 'do not ask (berth never asks)')
  .option('--no-wait', 'do not wait for the deletion to finish')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const path = arm.groupPath(o.resourceGroup, o.name);
    // Shown as az shows it: the group as it was when its deletion began.
    const shown = (await arm.call('GET', path)).body;
    const r = await arm.call('DELETE', path);
    if (r.status === 204) throw new CliError(`The container group '${o.name}' was not found.`);
    if (o.wait) await arm.wait(r.headers.get('azure-asyncoperation')!);
    printGroups(shown, o.output);
  });

for (const action of ['start', 'stop', 'restart'] as const) {
  withGroup(container.command(action).description(`${action[0].toUpperCase()}${action.slice(1)} a container group`))
    .option('--no-wait', 'do not wait for the operation to finish')
    .action(async (o) => {
      const arm = new ArmClient(loadCliConfig());
      const r = await arm.call('POST', `${arm.groupPath(o.resourceGroup, o.name)}/${action}`);
      const op = r.headers.get('azure-asyncoperation');
      if (op && o.wait) await arm.wait(op);
    });
}

// Resource groups, as `az group` manages them (a container group's resource group also comes into being with it).
const rgCmd = program.command('group').description('Manage resource groups (the flags of `az group`)');
const rgPath = (arm: ArmClient, name?: string) => `/subscriptions/${arm.subscription}/resourcegroups${name ? `/${encodeURIComponent(name)}` : ''}`;
const ARM_RG_API = '2022-09-01';
withOutput(rgCmd.command('create').description('Create a resource group (or update its tags)'))
  .requiredOption('-n, --name <name>', 'resource group name')
  .requiredOption('-l, --location <location>', 'location')
  .option('--tags <kv...>', 'KEY=VALUE pairs')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const tags = Object.fromEntries(envPairs(o.tags, false).map((e) => [e.name, e.value]));
    const r = await arm.call('PUT', rgPath(arm, o.name), { location: o.location, ...(o.tags && { tags }) }, { 'api-version': ARM_RG_API });
    if (o.output !== 'none') print(r.body);
  });
withOutput(rgCmd.command('show').description('Show a resource group'))
  .requiredOption('-n, --name <name>', 'resource group name')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const r = await arm.call('GET', rgPath(arm, o.name), undefined, { 'api-version': ARM_RG_API });
    if (o.output !== 'none') print(r.body);
  });
withOutput(rgCmd.command('list').description('List resource groups')).action(async (o) => {
  const arm = new ArmClient(loadCliConfig());
  const r = await arm.call<{ value: unknown[] }>('GET', rgPath(arm), undefined, { 'api-version': ARM_RG_API });
  if (o.output !== 'none') print(r.body.value);
});
rgCmd.command('delete').description('Delete a resource group and every container group in it')
  .requiredOption('-n, --name <name>', 'resource group name')
  .option('-y, --yes', 'do not ask (berth never asks)')
  .option('--no-wait', 'do not wait for the deletion to finish')
  .action(async (o) => {
    const arm = new ArmClient(loadCliConfig());
    const r = await arm.call('DELETE', rgPath(arm, o.name), undefined, { 'api-version': ARM_RG_API });
    // ARM's Location polling: 202 while it runs, 200 when it is done.
    for (let poll = r.headers.get('location'); o.wait && poll; ) {
      await new Promise((res) => setTimeout(res, 200));
      const p = await arm.raw('GET', poll);
      if (p.status === 200) break;
      if (p.status !== 202) throw new CliError(`deleting resource group '${o.name}': HTTP ${p.status} ${await p.text()}`);
    }
  });

(await import('../connectors/kubernetes/command.js')).registerKubernetesNode(program);

program.parseAsync().catch((e) => {
  process.stderr.write(`berth: ${e instanceof CliError ? e.message : (e as Error).stack}\n`);
  process.exit(1);
});
