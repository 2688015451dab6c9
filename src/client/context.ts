// What every operation group of the client shares: the transport, the subscription, the default api-version, and two request shapes.
import { LongRunningOperation, type WaitOptions } from './lro.js';
import { Paged, type Page } from './paging.js';
import type { ArmResponse, Query, Transport } from './transport.js';

export interface ClientContext {
  http: Transport;
  subscriptionId: string;
  /** The api-version of this group's calls unless a call names another. */
  apiVersion: string;
  /** Defaults for every LRO wait (e.g. pollIntervalMs). */
  wait: WaitOptions;
}

export interface CallOptions {
  /** This call's api-version instead of the client's. */
  apiVersion?: string;
  signal?: AbortSignal;
}

/** One request with the call's api-version (or the group's). */
export function call<T = unknown>(c: ClientContext, method: string, path: string, o: CallOptions & { query?: Query } = {}, body?: unknown): Promise<ArmResponse<T>> {
  return c.http.request<T>({ method, path, body, query: o.query, apiVersion: o.apiVersion ?? c.apiVersion, signal: o.signal });
}

/** Pages of a list URL: the first with the call's query, the next ones as their nextLink says. */
export function pagedList<T>(c: ClientContext, path: string, o: CallOptions & { query?: Query } = {}): Paged<T> {
  return new Paged<T>(async (next) => (await call<Page<T>>(c, 'GET', next ?? path, next ? { ...o, query: {} } : o)).body ?? {});
}

/** The long-running operation a response began, polled with the client's wait defaults; `result` reads what it made. */
export function operationOf<T = void>(c: ClientContext, r: ArmResponse<unknown>, result: () => Promise<T> = async () => undefined as T, initial?: T): LongRunningOperation<T> {
  return new LongRunningOperation<T>(c.http, r.status, r.headers, initial, result, c.wait);
}

/** Waits out a DELETE's operation: false when there was nothing to delete (204), true once it is gone. */
export async function deleted(op: LongRunningOperation<void>, o: WaitOptions = {}): Promise<boolean> {
  if (op.status === 204) return false;
  await op.wait(o);
  return true;
}

/** `/subscriptions/{s}[/resourceGroups/{rg}]/providers/Microsoft.ContainerInstance/{type}[/{name}]`: of a resource group, or of the whole subscription without one. */
export function providerPath(c: ClientContext, type: string, resourceGroup?: string, name?: string): string {
  const sub = `/subscriptions/${encodeURIComponent(c.subscriptionId)}`;
  const base = `${resourceGroup === undefined ? sub : `${sub}/resourceGroups/${encodeURIComponent(resourceGroup)}`}/providers/Microsoft.ContainerInstance/${type}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** The resource id of a resource of the client's subscription (what other resources name it by). */
export const providerId = (c: ClientContext, type: string, resourceGroup: string, name: string) =>
  `/subscriptions/${c.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.ContainerInstance/${type}/${name}`;
