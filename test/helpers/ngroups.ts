// Test helpers for NGroups: profile bodies, a member's readiness as a user reads it, and a recorder of the members
// over time (to check what held at every moment of a scale or a rolling update).
import type { ContainerGroupProfile, ContainerGroupResource, ContainerInstanceClient } from '../../src/client/index.js';

/**
 * A profile of one busybox httpd container with an exec readiness probe (every second): `ready: false`
 * gives a revision whose members never become ready. Private address, so members do not compete for a host port.
 */
export function profileBody(image: string, o: { ready?: boolean; cpu?: number; cpuLimit?: number; restartPolicy?: 'Always' | 'Never'; command?: string[]; env?: { name: string; value: string }[] } = {}): ContainerGroupProfile {
  return {
    location: 'local',
    properties: {
      osType: 'Linux',
      restartPolicy: o.restartPolicy ?? 'Always',
      containers: [{
        name: 'web',
        properties: {
          image, command: o.command ?? ['httpd', '-f', '-p', '80', '-h', '/www'], ports: [{ port: 80 }], environmentVariables: o.env ?? [],
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
