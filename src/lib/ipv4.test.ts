// Unit tests of the IPv4/CIDR helpers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrHas, cidrsOverlap, cidrWithin, firstHost, formatCidr, ipToNumber, numberToIp, parseCidr } from './ipv4.js';

describe('ipv4', () => {
  it('parses CIDR blocks and clears their host bits', () => {
    assert.deepEqual(parseCidr('10.252.1.0/24'), { base: ipToNumber('10.252.1.0'), bits: 24 });
    assert.equal(formatCidr(parseCidr('10.252.1.77/24')!), '10.252.1.0/24');
    assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
    assert.equal(formatCidr(parseCidr('255.255.255.255/32')!), '255.255.255.255/32');
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0/8', '300.1.1.1/8', '10.0.0.0/-1', 'fe80::/64', '10.0.0.0/8 ']) assert.equal(parseCidr(bad), undefined, bad);
  });

  it('tells containment and overlap', () => {
    const cluster = parseCidr('10.252.0.0/16')!;
    const host = parseCidr('10.252.3.0/24')!;
    assert.ok(cidrWithin(host, cluster));
    assert.ok(!cidrWithin(cluster, host));
    assert.ok(!cidrWithin(parseCidr('10.253.0.0/24')!, cluster));
    assert.ok(cidrsOverlap(host, cluster) && cidrsOverlap(cluster, host));
    assert.ok(!cidrsOverlap(host, parseCidr('10.252.4.0/24')!));
    assert.ok(cidrHas(host, ipToNumber('10.252.3.255')));
    assert.ok(!cidrHas(host, ipToNumber('10.252.4.0')));
  });

  it('round-trips addresses and finds the gateway', () => {
    assert.equal(numberToIp(ipToNumber('192.168.0.1')), '192.168.0.1');
    assert.equal(numberToIp(ipToNumber('255.255.255.255')), '255.255.255.255');
    assert.equal(firstHost(parseCidr('10.89.0.0/16')!), '10.89.0.1');
  });
});
