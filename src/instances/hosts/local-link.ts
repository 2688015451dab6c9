// The in-process link of the embedded default: the local agent's ControlPlaneLink, straight onto the gateway over the store.
import type { ControlPlaneLink, HostRegistration, HostResume, SpecEvent } from '../../agent/link.js';
import type { GroupStatus } from '../../agent/types.js';
import type { HostGateway } from './gateway.js';

export class InProcessLink implements ControlPlaneLink {
  constructor(
    private readonly gateway: HostGateway,
    readonly host: string,
  ) {}

  register(reg: HostRegistration) {
    return this.gateway.register(this.host, reg);
  }

  heartbeat() {
    return this.gateway.heartbeat(this.host);
  }

  resume(): Promise<HostResume> {
    return this.gateway.resume(this.host);
  }

  watchSpecs(fromRevision: number, onEvent: (e: SpecEvent) => void, onError: (e: Error) => void) {
    return this.gateway.watchSpecs(this.host, fromRevision, onEvent, onError);
  }

  async reportStatuses(statuses: GroupStatus[]) {
    await this.gateway.reportStatuses(this.host, statuses);
  }

  reportRemoved(uid: string) {
    return this.gateway.reportRemoved(this.host, uid);
  }

  async close() {}
}
