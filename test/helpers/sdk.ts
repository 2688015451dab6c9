// The unmodified Azure SDK pointed at a berth server, as a user's program would point it.
import { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import type { BerthProcess } from './berth.js';

/** A ContainerInstanceManagementClient for `subscription`, over berth's HTTPS with the server's token. */
export function sdkClient(berth: BerthProcess, subscription: string): ContainerInstanceManagementClient {
  const credential = { getToken: async () => ({ token: berth.token, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  return new ContainerInstanceManagementClient(credential, subscription, { endpoint: berth.httpsUrl });
}
