// A cluster's data planes as the instances service reaches them: the agent of a group's host over its own HTTPS API (its URL and pinned certificate from the host's record); the images of every Ready host.
import type { HostDataPlane } from '../../agent/link.js';
import type { PublishedPort } from '../../agent/spec.js';
import type { ExecHandle, GroupUsage } from '../../agent/types.js';
import { BerthError, Codes } from '../../lib/errors.js';
import type { HostRecord } from './gateway.js';
import type { HostsView } from './hosts-view.js';

/** Reaches one host's agent (its API's URL and pinned certificate are in the host's record). */
export type HostConnector = (host: HostRecord) => HostDataPlane & { close(): void };

const notPlaced = () => new BerthError(Codes.ContainerGroupNotRunning, 'The container group has not been placed on a host yet.', 409);

/** What is asked of "no host" (the host of a group not placed yet, and of new groups): every Ready host's images; nothing else. */
class UnplacedDataPlane implements HostDataPlane {
  constructor(private readonly each: () => HostDataPlane[]) {}

  logs(): Promise<string> {
    return Promise.reject(notPlaced());
  }

  followLogs(): Promise<void> {
    return Promise.reject(notPlaced());
  }

  exec(): Promise<ExecHandle> {
    return Promise.reject(notPlaced());
  }

  /** On no host, nothing was read. */
  async usage(): Promise<GroupUsage[]> {
    return [];
  }

  /** The images every Ready host has (a host that does not answer adds none). */
  async cachedImages(): Promise<string[]> {
    const each = await Promise.all(this.each().map((p) => p.cachedImages().catch(() => [] as string[])));
    return [...new Set(each.flat())].sort();
  }

  /** No host is chosen yet: the placement keeps to the ports the host it chooses reported (HostsView.heldPorts). */
  async unavailablePorts(): Promise<PublishedPort[]> {
    return [];
  }
}

export class RemoteDataPlanes {
  private planes = new Map<string, { endpoint: string; plane: HostDataPlane & { close(): void } }>();
  private readonly unplaced: UnplacedDataPlane;

  constructor(
    private readonly hosts: HostsView,
    private readonly connect: HostConnector,
  ) {
    this.unplaced = new UnplacedDataPlane(() => this.hosts.readyHosts().flatMap((h) => (h.dataPlane ? [this.plane(h)] : [])));
  }

  /** The data plane of `host` ('' : no host yet); the InstancesService's DataPlanes. */
  of(host: string): HostDataPlane {
    if (!host) return this.unplaced;
    const record = this.hosts.get(host);
    if (!record) throw new BerthError(Codes.ServiceUnavailable, `The host '${host}' of the container group is not registered.`, 503);
    return this.plane(record);
  }

  close() {
    for (const { plane } of this.planes.values()) plane.close();
    this.planes.clear();
  }

  private plane(host: HostRecord): HostDataPlane {
    if (!host.dataPlane) throw new BerthError(Codes.ServiceUnavailable, `The host '${host.name}' serves no agent API.`, 503);
    const endpoint = `${host.dataPlane.url}#${host.dataPlane.certSha256}`;
    const known = this.planes.get(host.name);
    if (known?.endpoint === endpoint) return known.plane;
    // the host registered another address or certificate: a client of that one
    known?.plane.close();
    const plane = this.connect(host);
    this.planes.set(host.name, { endpoint, plane });
    return plane;
  }
}
