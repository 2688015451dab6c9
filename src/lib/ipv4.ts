// IPv4 addresses and CIDR blocks as numbers: parsing, containment and overlap, for subnets handed out to hosts and sandboxes.
import { isIPv4 } from 'node:net';

/** A CIDR block: its first address as an unsigned 32-bit number, and its prefix length. */
export interface Cidr {
  base: number;
  bits: number;
}

export const ipToNumber = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

export const numberToIp = (n: number): string => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

const size = (bits: number) => 2 ** (32 - bits);

/** `a.b.c.d/n` with the host bits cleared (10.1.2.3/24 is 10.1.2.0/24); undefined when it is not one. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1])) return undefined;
  const bits = Number(m[2]);
  if (bits > 32) return undefined;
  const n = ipToNumber(m[1]);
  return { base: n - (n % size(bits)), bits };
}

export const formatCidr = (c: Cidr): string => `${numberToIp(c.base)}/${c.bits}`;

/** Whether the address (a number) is in the block. */
export const cidrHas = (c: Cidr, ip: number): boolean => ip >= c.base && ip < c.base + size(c.bits);

/** Whether `inner` lies entirely inside `outer`. */
export const cidrWithin = (inner: Cidr, outer: Cidr): boolean => inner.bits >= outer.bits && cidrHas(outer, inner.base);

/** Whether the two blocks share an address. */
export const cidrsOverlap = (a: Cidr, b: Cidr): boolean => cidrHas(a, b.base) || cidrHas(b, a.base);

/** The block's first usable address (its base + 1: what the CNI bridge plugin gives its gateway). */
export const firstHost = (c: Cidr): string => numberToIp(c.base + 1);
