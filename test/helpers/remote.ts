// Test fixture: "another host" that berth's containers reach the way they reach the world, a network namespace behind a veth.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export interface RemoteHost {
  /** Its address (the host's end of the link is the one before). */
  address: string;
  /** Starts `argv` in its network namespace; stopped (by PID) by close(). */
  run(argv: string[]): ChildProcess;
  /** Stops what run() started, removes the link and the namespace. */
  close(): void;
}

/**
 * A network namespace `name` linked to this host by a veth pair on `prefix`.1 (here) and `prefix`.2
 * (there), a /30: what berth's containers reach through the host's routing and masquerade, as
 * they reach any other machine, and not a service of this host.
 */
export function startRemoteHost(name: string, prefix: string): RemoteHost {
  const link = `${name.slice(0, 11)}-h`;
  const sh = (...args: string[]) => execFileSync(args[0], args.slice(1), { stdio: 'ignore' });
  const children: ChildProcess[] = [];
  sh('ip', 'netns', 'add', name);
  try {
    sh('ip', 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
    sh('ip', 'addr', 'add', `${prefix}.1/30`, 'dev', link);
    sh('ip', 'link', 'set', link, 'up');
    sh('ip', 'netns', 'exec', name, 'ip', 'addr', 'add', `${prefix}.2/30`, 'dev', 'eth0');
    sh('ip', 'netns', 'exec', name, 'ip', 'link', 'set', 'eth0', 'up');
    sh('ip', 'netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    close();
    throw e;
  }
  function close() {
    for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
    for (const args of [['ip', 'link', 'del', link], ['ip', 'netns', 'del', name]]) {
      try {
        sh(...args);
      } catch {
        /* not made, or gone with the other */
      }
    }
  }
  return {
    address: `${prefix}.2`,
    run(argv) {
      const child = spawn('ip', ['netns', 'exec', name, ...argv], { stdio: 'ignore' });
      children.push(child);
      return child;
    },
    close,
  };
}
