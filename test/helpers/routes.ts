// berth's ARM routes as the server registers them (built in this process, never listening): what route-wide tests walk.
import { Authenticator } from '../../src/arm/auth.js';
import { buildServer } from '../../src/instances/http.js';
import type { RouteInfo } from '../../src/arm/route-scope.js';
import type { Provider } from '../../src/instances/provider.js';

export function armRoutes(): RouteInfo[] {
  const auth = new Authenticator(['x'], [], Buffer.alloc(32));
  return buildServer({ provider: {} as Provider, auth, advertiseAddress: '127.0.0.1', subscriptions: [] }).routeTable;
}
