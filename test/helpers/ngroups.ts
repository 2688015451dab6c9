// Test helpers for NGroups: profile bodies, a member's readiness as a user reads it, a recorder of the members over
// time (to check what held at every moment of a scale or a rolling update), and a CPU load on an NGroup's members.
import type { ContainerGroupProfile, ContainerGroupResource, ContainerInstanceClient } from '../../src/client/index.js';
import { until } from './assertions.js';

/** A CGI script (busybox httpd's `/cgi-bin/burn`, with `burn: true` below) that burns a fixed amount of CPU per request. */
export const BURN_CGI = '#!/bin/sh\ni=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\nprintf "Content-Type: text/plain\\r\\n\\r\\nburned\\n"\n';

/**
 * A profile of one busybox httpd container with an exec readiness probe (every second): `ready: false`
 * gives a revision whose members never become ready. Private address, so members do not compete for a host port.
 */
export function profileBody(image: string, o: { ready?: boolean; cpu?: number; cpuLimit?: number; restartPolicy?: 'Always' | 'Never'; command?: string[]; env?: { name: string; value: string }[]; burn?: boolean } = {}): ContainerGroupProfile {
  return {
    location: 'local',
    properties: {
      osType: 'Linux',
      restartPolicy: o.restartPolicy ?? 'Always',
      containers: [{
        name: 'web',
        properties: {
          image, command: o.command ?? (o.burn ? ['sh', '-c', 'chmod +x /www/cgi-bin/burn && exec httpd -f -p 80 -h /www'] : ['httpd', '-f', '-p', '80', '-h', '/www']), ports: [{ port: 80 }], environmentVariables: o.env ?? [],
          resources: { requests: { cpu: o.cpu ?? 0.05, memoryInGB: 0.05 }, ...(o.cpuLimit && { limits: { cpu: o.cpuLimit } }) },
          readinessProbe: { exec: { command: ['cat', o.ready === false ? '/www/never-there' : '/www/index.html'] }, periodSeconds: 1 },
        },
      }],
      ipAddress: { type: 'Private', ports: [{ port: 80 }] },
    },
  };
}

/** Ready as a user reads it: provisioned, and every container running with its readiness probe passing. */
export const isReady = (g: ContainerGroupResource) =>
  g.properties.provisioningState === 'Succeeded' && g.properties.containers.every((c) => c.properties.instanceView?.currentState?.state === 'Running' && c.properties.instanceView.currentState.detailStatus === 'Ready');

export interface MemberView {
  name: string;
  revision?: number;
  ready: boolean;
  deleting: boolean;
}

/** The members of an NGroup (by its id) as a list shows them now. */
export async function membersOf(client: ContainerInstanceClient, resourceGroup: string, ngroupId: string): Promise<MemberView[]> {
  const all = await client.containerGroups.listByResourceGroup(resourceGroup).toArray();
  return all.filter((g) => g.properties.orchestratorId?.toLowerCase() === ngroupId.toLowerCase()).map((g) => ({
    name: g.name, revision: g.properties.containerGroupProfile?.revision, ready: isReady(g), deleting: g.properties.provisioningState === 'Deleting',
  }));
}

/** Lists an NGroup's members every `everyMs` until stopped: what was there at each moment. */
export function recordMembers(client: ContainerInstanceClient, resourceGroup: string, ngroupId: string, everyMs = 100) {
  const snapshots: { at: number; members: MemberView[] }[] = [];
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      snapshots.push({ at: Date.now(), members: await membersOf(client, resourceGroup, ngroupId) });
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    snapshots,
    async stop() {
      stopped = true;
      await running;
      return snapshots;
    },
  };
}

/** An NGroup's ready members. */
export const readyMembersOf = async (client: ContainerInstanceClient, resourceGroup: string, ngroupId: string) =>
  (await client.containerGroups.listByResourceGroup(resourceGroup).toArray()).filter((g) => g.properties.orchestratorId?.toLowerCase() === ngroupId.toLowerCase() && isReady(g));

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LoadOptions {
  /** Requests per second. */
  rate: number;
  /** Each second the rate is multiplied by 1 ± up to this much (0.1: ±10%). */
  noise?: number;
  /** Correct the rate every 2 s so that the members' CPU use (their metrics) is this many millicores. */
  holdMillicores?: number;
}

/** The CPU the ready members used over the last 4 s (the sum of their CpuUsage averages), in millicores. */
async function usedMillicores(client: ContainerInstanceClient, members: { id: string }[]) {
  const used = await Promise.all(members.map((t) => client.metrics.list(t.id, { metricnames: 'CpuUsage', timespan: 'PT4S', interval: 'FULL' })
    .then((m) => m.value[0].timeseries[0].data[0]?.average ?? 0, () => 0)));
  return used.reduce((n, x) => n + x, 0);
}

export interface CpuLoad {
  stop(): Promise<void>;
  /** With `holdMillicores`: resolves once the members' metrics have shown it within 5% twice in a row; rejects after `timeoutMs`. */
  settled(timeoutMs?: number): Promise<void>;
  /** Requests sent so far. */
  sent(): number;
  /** Requests per second now. */
  rate(): number;
  /** With `holdMillicores`: what the members used over the last 4 s when it was last read (every 2 s). */
  measured(): number;
}

/**
 * What one request to `/cgi-bin/burn` costs an NGroup's members, in ms of CPU, under a load of `millicores`: the
 * rate a load held at that settles at (one request run alone costs less than one among others).
 */
export async function requestCost(client: ContainerInstanceClient, resourceGroup: string, ngroupId: string, millicores: number): Promise<number> {
  const l = cpuLoad(client, resourceGroup, ngroupId, { rate: millicores / 30, holdMillicores: millicores });
  try {
    await l.settled();
    return l.measured() / l.rate();
  } finally {
    await l.stop();
  }
}

/**
 * Requests to the `/cgi-bin/burn` of an NGroup's ready members in turn, as a load balancer in front of them
 * would (members looked up twice a second). With `holdMillicores`, a load defined by the CPU it needs,
 * whatever one request turns out to cost on a busy machine.
 */
export function cpuLoad(client: ContainerInstanceClient, resourceGroup: string, ngroupId: string, o: LoadOptions): CpuLoad {
  let stopped = false;
  let targets: { ip: string; id: string }[] = [];
  let sent = 0;
  let rate = o.rate;
  let measured = 0;
  const refresh = async () => {
    while (!stopped) {
      targets = (await readyMembersOf(client, resourceGroup, ngroupId).catch(() => [])).filter((g) => g.properties.ipAddress?.ip).map((g) => ({ ip: g.properties.ipAddress!.ip!, id: g.id }));
      await pause(500);
    }
  };
  const hold = async () => {
    while (!stopped && o.holdMillicores !== undefined) {
      await pause(2000);
      measured = await usedMillicores(client, targets);
      // half the correction at a time (the measurement lags the rate by its window), none within 5% (what the
      // noise moves it by: chasing that would add to it)
      const off = o.holdMillicores / measured;
      if (measured > 0 && Math.abs(off - 1) > 0.05) rate *= Math.min(1.25, Math.max(0.8, Math.sqrt(off)));
    }
  };
  const send = async () => {
    let factor = 1;
    let lastDraw = 0;
    let owed = 0;
    let last = Date.now();
    while (!stopped) {
      const now = Date.now();
      if (now - lastDraw >= 1000) {
        factor = 1 + (Math.random() * 2 - 1) * (o.noise ?? 0);
        lastDraw = now;
      }
      owed += ((now - last) / 1000) * rate * factor;
      last = now;
      for (; owed >= 1 && targets.length > 0; owed--) {
        const { ip } = targets[sent++ % targets.length];
        void fetch(`http://${ip}/cgi-bin/burn`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => undefined);
      }
      await pause(20);
    }
  };
  const running = Promise.all([refresh(), send(), hold()]);
  return {
    stop: async () => {
      stopped = true;
      await running;
    },
    async settled(timeoutMs = 90_000) {
      // the mean of the last three readings within 5%: one reading alone jitters by about that much (two in a row
      // within the band took longer than a minute in some runs, on a quiet machine too)
      const last: number[] = [];
      let seen = measured;
      await until(`the load at ${o.holdMillicores} millicores`, () => {
        if (measured === seen) return false;
        seen = measured;
        last.push(measured);
        if (last.length > 3) last.shift();
        return last.length === 3 && Math.abs(last.reduce((a, b) => a + b, 0) / 3 / o.holdMillicores! - 1) <= 0.05;
      }, timeoutMs, 200).catch((e: Error) => {
        throw new Error(`${e.message} (its last readings: ${last.map((m) => m.toFixed(0)).join(', ')} millicores)`);
      });
    },
    sent: () => sent,
    rate: () => rate,
    measured: () => measured,
  };
}
