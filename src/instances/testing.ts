// Stand-ins for unit tests of the instances layer (never used by the server itself).
import type { AgentHandle, GroupStatus } from '../agent/types.js';

/**
 * An agent that runs nothing: removal is reported at once, as a real agent does once it tore a
 * group down; its host keeps the ports in `hostPorts` (what it is asked is recorded in `asked`).
 */
export function fakeAgent(hostPorts: number[] = [], asked: number[][] = []): AgentHandle {
  const removed: ((uid: string) => void)[] = [];
  return {
    name: 'fake',
    apply: () => undefined,
    remove: (uid) => setImmediate(() => removed.forEach((fn) => fn(uid))),
    sync: async () => undefined,
    onStatus: (_fn: (s: GroupStatus) => void) => undefined,
    onRemoved: (fn) => void removed.push(fn),
    logs: async () => '',
    followLogs: async () => undefined,
    exec: () => {
      throw new Error('no exec here');
    },
    cachedImages: async () => [],
    unavailablePorts: async (ports) => {
      asked.push(ports.map((p) => p.port));
      return ports.filter((p) => hostPorts.includes(p.port));
    },
    close: async () => undefined,
  };
}
