// Test hosts on one machine: network namespaces on an underlay bridge, each with a mount namespace and a process of its own running the real NetworkManager and Overlay (host-process.ts); tests and benchmarks drive them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { errorFromWire } from '../../../lib/errors.js';

const HOST_PROCESS = fileURLToPath(new URL('./host-process.js', import.meta.url));

/** Runs a command that may find nothing to do (what it removes is gone already). */
function quietly(file: string, ...args: string[]): void {
  try {
    execFileSync(file, args, { stdio: 'ignore' });
  } catch {
    /* gone already */
  }
}

/** The underlay: a bridge in the caller's namespace, `prefix`.1/24 on it (what the world is to the hosts). */
export class TestUnderlay {
  constructor(readonly bridge: string, readonly prefix: string) {}

  get gateway(): string {
    return `${this.prefix}.1`;
  }

  create(): void {
    execFileSync('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
    execFileSync('ip', ['link', 'set', this.bridge, 'up']);
  }

  remove(): void {
    quietly('ip', 'link', 'del', this.bridge);
  }
}

/** Resolves with the first line of `child`'s stdout that `match` accepts; rejects if it exits first. */
function lineOf(child: ChildProcess, match: (line: string) => boolean, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const onExit = (code: number | null) => reject(new Error(`${what} exited (${code}) before it was ready`));
    child.once('exit', onExit);
    lines.on('line', (l) => {
      if (!match(l)) return;
      child.off('exit', onExit);
      lines.close();
      resolve(l);
    });
  });
}

/**
 * A host: the network namespace `netns` wired to the underlay by a veth (`prefix`.(10+index)), holding a mount
 * namespace of its own (its own /run/netns: its sandboxes are its alone) kept by a process that sleeps, and a
 * host process in both.
 */
export class TestHost {
  readonly netns: string;
  readonly veth: string;
  readonly underlayAddress: string;
  private holder?: ChildProcess;
  private process?: ChildProcess;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  constructor(readonly underlay: TestUnderlay, readonly index: number, suffix: string) {
    this.netns = `ovh${index}-${suffix}`;
    this.veth = `ovu${index}${suffix}`;
    this.underlayAddress = `${underlay.prefix}.${10 + index}`;
  }

  get holderPid(): number {
    return this.holder!.pid!;
  }

  get processPid(): number | undefined {
    return this.process?.pid;
  }

  async start(): Promise<void> {
    execFileSync('ip', ['netns', 'add', this.netns]);
    execFileSync('ip', ['link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns]);
    execFileSync('ip', ['link', 'set', this.veth, 'master', this.underlay.bridge, 'up']);
    const inNs = (...args: string[]) => execFileSync('ip', ['-n', this.netns, ...args]);
    // no duplicate address detection: the link-local address (and its route) are there at once, not a moment later
    execFileSync('ip', ['netns', 'exec', this.netns, 'sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    inNs('addr', 'add', `${this.underlayAddress}/24`, 'dev', 'eth0');
    inNs('link', 'set', 'eth0', 'up');
    inNs('link', 'set', 'lo', 'up');
    inNs('route', 'add', 'default', 'via', this.underlay.gateway);
    // `ip netns exec` gives it a /sys of the host's namespace; the tmpfs gives it a /run/netns of its own
    this.holder = spawn('ip', ['netns', 'exec', this.netns, 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c',
      'mount -t tmpfs -o mode=0755 berth-testhost /run/netns && echo ready && exec sleep infinity'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await lineOf(this.holder, (l) => l === 'ready', `the namespaces of ${this.netns}`);
    await this.startProcess();
  }

  /** Starts the host process (again, after kill(): a restarted agent, on the same kernel state). */
  async startProcess(): Promise<void> {
    const child = spawn('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', process.execPath, '--enable-source-maps', HOST_PROCESS], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.process = child;
    await lineOf(child, (l) => l.startsWith('{"ready"'), `the process of ${this.netns}`);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const answer = JSON.parse(line) as { id: number; value?: unknown; error?: unknown };
      const w = this.waiting.get(answer.id);
      this.waiting.delete(answer.id);
      if (answer.error) w?.reject(errorFromWire(answer.error, 500, this.netns));
      else w?.resolve(answer.value);
    });
    child.once('exit', () => {
      for (const [id, w] of this.waiting) {
        this.waiting.delete(id);
        w.reject(new Error(`the process of ${this.netns} exited`));
      }
    });
  }

  /** kill -9 of the host process alone (its sandboxes, servers and kernel state stay). */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.process = undefined;
  }

  /** Calls a method of host-process.ts. */
  call<T>(method: string, args?: unknown): Promise<T> {
    const child = this.process;
    if (!child) return Promise.reject(new Error(`the process of ${this.netns} is not running`));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.stdin!.write(`${JSON.stringify({ id, method, args })}\n`);
    });
  }

  /** argv that runs `argv` in the host (its network and mount namespaces). */
  argv(argv: string[]): string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', '-n', '--', ...argv];
  }

  /** argv that runs `argv` in the host's sandbox `id`. */
  sandboxArgv(id: string, argv: string[]): string[] {
    return this.argv(['ip', 'netns', 'exec', `berth-${id}`, ...argv]);
  }

  /** Runs a command in the host; its stdout. */
  exec(...argv: string[]): string {
    const [file, ...args] = this.argv(argv);
    return execFileSync(file, args, { encoding: 'utf8' });
  }

  /** Stops everything of the host: its process, its namespaces, its veth (its sandboxes should be gone first). */
  async stop(): Promise<void> {
    await this.kill();
    const holder = this.holder;
    if (holder && holder.exitCode === null && holder.signalCode === null) {
      const exited = new Promise((r) => holder.once('exit', r));
      holder.kill('SIGKILL');
      await exited;
    }
    // its end of the veth goes with it; the namespace itself may outlive its name a moment (the kernel frees it later)
    quietly('ip', 'link', 'del', this.veth);
    quietly('ip', 'netns', 'del', this.netns);
  }
}

/** What a host's kernel holds that berth could change: links, routes, permanent neighbours, FDB, rules, nftables, iptables. */
export function kernelSnapshot(host: TestHost): Record<string, unknown> {
  const json = (...argv: string[]) => JSON.parse(host.exec(...argv) || '[]') as Record<string, unknown>[];
  // berth's own tables (iptables' show through iptables-save: the tables it loads stay once touched, empty)
  const nft = (JSON.parse(host.exec('nft', '-j', 'list', 'ruleset')) as { nftables: Record<string, Record<string, unknown>>[] }).nftables
    .filter((o) => { const [kind, v] = Object.entries(o)[0]; return String(kind === 'table' ? v.name : v.table).startsWith('berth-'); });
  // rules, and chains of their own (the built-in ones stay once a table was touched)
  const iptables = ['iptables-save', 'ip6tables-save'].flatMap((cmd) => host.exec(cmd).split('\n').filter((l) => l.startsWith('-A ') || /^:\S+ - /.test(l)));
  return {
    links: json('ip', '-j', 'link', 'show').map((l) => `${l.ifname} ${l.address ?? ''} ${l.mtu}`).sort(),
    routes: [...json('ip', '-j', '-4', 'route', 'show', 'table', 'all'), ...json('ip', '-j', '-6', 'route', 'show', 'table', 'all')].map((r) => JSON.stringify(r)).sort(),
    neighbours: json('ip', '-j', 'neigh', 'show', 'nud', 'permanent').map((n) => JSON.stringify(n)).sort(),
    fdb: json('bridge', '-j', 'fdb', 'show').map((e) => JSON.stringify(e)).sort(),
    rules: json('ip', '-j', 'rule', 'show').map((r) => JSON.stringify(r)),
    nft: nft.map((o) => JSON.stringify(o, (k, v) => (k === 'handle' ? undefined : v))).sort(),
    iptables: iptables.sort(),
  };
}

/** A small HTTP server in a sandbox: answers the client's address (or, on /big, that many bytes more). */
export async function serveIn(host: TestHost, sandbox: string, port: number, address = '0.0.0.0'): Promise<ChildProcess> {
  const [file, ...args] = host.sandboxArgv(sandbox, [process.execPath, '-e', `
    require('node:http').createServer((q, r) => {
      const body = q.socket.remoteAddress + (q.url === '/big' ? 'x'.repeat(200000) : '');
      r.end(body);
    }).listen(${port}, ${JSON.stringify(address)}, () => console.log('ready'));`]);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineOf(child, (l) => l === 'ready', `the server in ${sandbox}`);
  return child;
}

/** A server of the host itself (not in a sandbox), on every address. */
export async function serveOnHost(host: TestHost, port: number): Promise<ChildProcess> {
  const [file, ...args] = host.argv([process.execPath, '-e', `
    require('node:http').createServer((q, r) => r.end('host')).listen(${port}, '0.0.0.0', () => console.log('ready'));`]);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineOf(child, (l) => l === 'ready', `the server of ${host.netns}`);
  return child;
}

/** A UDP receiver in a sandbox, on `port`: the datagrams it got so far. */
export async function udpReceiver(host: TestHost, sandbox: string, port: number): Promise<{ messages: string[]; stop: () => void }> {
  const [file, ...args] = host.sandboxArgv(sandbox, [process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.on('message', (m) => console.log(String(m)));
    s.bind(${port}, () => console.log('ready'));`]);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await lineOf(child, (l) => l === 'ready', `the UDP receiver in ${sandbox}`);
  const messages: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => messages.push(l));
  return { messages, stop: () => child.kill('SIGKILL') };
}

/** Sends one UDP datagram from a sandbox, from `from` (one of its addresses) when given. */
export function sendUdp(host: TestHost, sandbox: string, to: string, port: number, text: string, from?: string): void {
  const [file, ...args] = host.sandboxArgv(sandbox, [process.execPath, '-e', `
    const s = require('node:dgram').createSocket('udp4');
    s.bind({ port: 0${from ? `, address: ${JSON.stringify(from)}` : ''} }, () => s.send(${JSON.stringify(text)}, ${port}, ${JSON.stringify(to)}, () => s.close()));`]);
  execFileSync(file, args);
}

/** An HTTP GET's outcome: its body, or the error code (ECONNREFUSED, EHOSTUNREACH, …; TIMEOUT after `timeoutMs`). */
export type Fetched = { ok: true; body: string } | { ok: false; error: string };

/** A GET of `url` from a sandbox of `host` (no sandbox: from the host itself), with a node client. */
export function fetchFrom(host: TestHost, sandbox: string | undefined, url: string, timeoutMs = 3000, localAddress?: string): Promise<Fetched> {
  const script = `
    const done = (o) => { process.stdout.write(JSON.stringify(o)); process.exit(0); };
    const q = require('node:http').get(${JSON.stringify(url)}, { timeout: ${timeoutMs}${localAddress ? `, localAddress: ${JSON.stringify(localAddress)}` : ''} }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => done({ ok: true, body }));
    });
    q.on('timeout', () => done({ ok: false, error: 'TIMEOUT' }));
    q.on('error', (e) => done({ ok: false, error: e.code || e.message }));`;
  const argv = sandbox ? host.sandboxArgv(sandbox, [process.execPath, '-e', script]) : host.argv([process.execPath, '-e', script]);
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', () => resolve(out ? (JSON.parse(out) as Fetched) : { ok: false, error: 'NO-ANSWER' }));
  });
}
