// iptables rules of berth's networks: a sandbox's published ports (one iptables-restore, where CNI portmap runs a dozen iptables), each network's masquerade and FORWARD accepts.
import { writeFile } from 'node:fs/promises';
import { BerthError, Codes } from '../../lib/errors.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { execCommand, runCommand } from '../../lib/spawner.js';
import type { PublishedPort } from '../types.js';

/** nat chains shared by every berth sandbox on the host; each rule carries its sandbox in a comment. */
export const DNAT_CHAIN = 'BERTH-HOSTPORTS';
export const MASQ_CHAIN = 'BERTH-HOSTPORTS-MASQ';
/** Jumps into our chains: DNAT for traffic to a local address (each rule names the one it publishes on), masquerade on the way out. */
const JUMPS = [
  `-A PREROUTING -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`,
  `-A OUTPUT -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`,
  `-A POSTROUTING -j ${MASQ_CHAIN}`,
];

/** A command's stdout; a failure is a NetworkError with its stderr. */
export async function execText(file: string, args: string[]): Promise<string> {
  const r = await execCommand(file, args, { timeoutMs: 30_000 });
  if (r.code !== 0 || r.error) throw new BerthError(Codes.NetworkError, `${file} ${args.join(' ')}: ${r.stderr.trim() || r.error || `exit ${r.code}`}`, 500);
  return r.stdout;
}

/** Feeds a ruleset to `iptables-restore --noflush`: all of it applies, or none (one atomic commit). */
export async function restore(rules: string): Promise<void> {
  const r = await execCommand('iptables-restore', ['--noflush', '-w', '5'], { input: rules, timeoutMs: 30_000 });
  if (r.error) throw new BerthError(Codes.NetworkError, `iptables-restore: ${r.error}`, 500);
  if (r.code !== 0) throw new BerthError(Codes.NetworkError, `iptables-restore: ${r.stderr.trim() || `exit ${r.code}`}\n${rules}`, 500);
}

/**
 * nat rule changes asked for while an iptables-restore runs go into the next one, so a burst of
 * creates (or deletes) costs a few restores instead of one each (each restore reads the nat table,
 * which grows with every published port).
 */
const natCommits = new GroupCommit<string[]>((batches) => restore(['*nat', ...batches.flat(), 'COMMIT', ''].join('\n')));
const restoreNat = (lines: string[]) => natCommits.submit(lines);

const comment = (id: string) => `berth:${id}`;
/** Whether an iptables-save line carries exactly the comment `c` (berth0's never matches berth01's). */
export const ownComment = (line: string, c: string) => line.includes(`--comment "${c}"`) || line.endsWith(`--comment ${c}`) || line.includes(`--comment ${c} `);
const ownRule = (line: string, id: string) => ownComment(line, comment(id));

/** Set once our chains and jumps are known to exist; cleared when they are pruned. */
let chainsReady: Promise<void> | undefined;

/** Creates the shared chains and their jumps when missing (declaring an existing chain under --noflush would flush it). */
function ensureChains(): Promise<void> {
  chainsReady ??= (async () => {
    const nat = (await execText('iptables-save', ['-t', 'nat'])).split('\n');
    const lines = ['*nat'];
    for (const c of [DNAT_CHAIN, MASQ_CHAIN]) if (!nat.some((l) => l.startsWith(`:${c} `))) lines.push(`:${c} - [0:0]`);
    for (const j of JUMPS) if (!nat.includes(j)) lines.push(j);
    if (lines.length > 1) await restore([...lines, 'COMMIT', ''].join('\n'));
  })().catch((e) => {
    chainsReady = undefined;
    throw e;
  });
  return chainsReady;
}

/** Publishing on every local address (what states written before per-address publishing have). */
export const ANY_ADDRESS = '0.0.0.0';

/**
 * DNATs each published port at `address` (ANY_ADDRESS: every local address) to the sandbox, and
 * masquerades what comes from 127.0.0.1 (after route_localnet lets it leave through the bridge), as
 * portmap with snat does; sandboxes reaching a published port through the host's address are
 * masqueraded by the network's rules. The caller records the sandbox on disk first, so a crash
 * leaves enough to unpublish.
 */
export async function publishPorts(id: string, ip: string, bridge: string, ports: PublishedPort[], address: string): Promise<void> {
  if (ports.length === 0) return;
  const rules = portRules(id, ip, ports, address).map((r) => `-A ${r}`);
  // loopback traffic may only leave through the bridge with route_localnet; no need for it otherwise
  if (address === ANY_ADDRESS || address.startsWith('127.')) await writeFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1').catch(() => undefined);
  await ensureChains();
  try {
    await restoreNat(rules);
  } catch {
    // someone pruned our chains since we last looked: make them again, once
    chainsReady = undefined;
    await ensureChains();
    await restoreNat(rules);
  }
}

/** The rules (without -A) that publish `ports` of the sandbox at `ip` on `address`, as iptables-save prints them. */
function portRules(id: string, ip: string, ports: PublishedPort[], address: string): string[] {
  const c = comment(id);
  const dst = address === ANY_ADDRESS ? '' : `-d ${address}/32 `;
  const out: string[] = [];
  for (const p of ports) {
    const proto = p.protocol === 'UDP' ? 'udp' : 'tcp';
    const match = `-p ${proto} -m ${proto} --dport ${p.port}`;
    out.push(`${DNAT_CHAIN} ${dst}${match} -m comment --comment "${c}" -j DNAT --to-destination ${ip}:${p.port}`);
    out.push(`${MASQ_CHAIN} -s 127.0.0.0/8 -d ${ip}/32 ${match} -m comment --comment "${c}" -j MASQUERADE`);
  }
  return out;
}

/**
 * Removes every rule of the sandbox; idempotent (nothing to remove is fine). With the address and
 * ports it published, deletes exactly those in one iptables-restore; if that fails (some are gone
 * already) or they are unknown (a state from before per-address publishing, which had a rule more),
 * finds its rules by comment in a dump of the nat table, which grows with every sandbox.
 */
export async function unpublishPorts(id: string, published?: { ip: string; ports: PublishedPort[]; address?: string }): Promise<void> {
  if (published?.address) {
    if (published.ports.length === 0) return;
    try {
      await restoreNat(portRules(id, published.ip, published.ports, published.address).map((r) => `-D ${r}`));
      return;
    } catch {
      /* some were not there: remove what is, by comment */
    }
  }
  const mine = (await execText('iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.startsWith('-A ') && ownRule(l, id));
  if (mine.length === 0) return;
  await restore(['*nat', ...mine.map((l) => `-D${l.slice(2)}`), 'COMMIT', ''].join('\n'));
}

/** Drops our chains and jumps once no sandbox has a rule in them, so an idle host has its original ruleset. */
export async function pruneHostportChains(): Promise<void> {
  const nat = (await execText('iptables-save', ['-t', 'nat'])).split('\n');
  const has = (c: string) => nat.some((l) => l.startsWith(`:${c} `));
  if (!has(DNAT_CHAIN) && !has(MASQ_CHAIN)) return;
  if (nat.some((l) => l.startsWith(`-A ${DNAT_CHAIN} `) || l.startsWith(`-A ${MASQ_CHAIN} `))) return;
  const lines = ['*nat'];
  for (const j of JUMPS) if (nat.includes(j)) lines.push(`-D${j.slice(2)}`);
  for (const c of [DNAT_CHAIN, MASQ_CHAIN]) if (has(c)) lines.push(`-X ${c}`);
  chainsReady = undefined;
  await restore([...lines, 'COMMIT', ''].join('\n'));
}

/** The nat chain of one bridge network's outbound masquerade. */
const masqChain = (bridge: string) => `BERTH-MASQ-${bridge}`;
const netComment = (bridge: string) => `berth-net:${bridge}`;

/** Per bridge: set once the network's rules are known to be in place; cleared when they are pruned. */
const networkRulesReady = new Map<string, Promise<void>>();

/**
 * Rules one bridge network needs, made once for all its sandboxes in one iptables-restore: masquerade
 * for what leaves the subnet and for sandboxes reaching a published port through the host's address
 * (the answer must come back through the host, not straight over the bridge), and FORWARD accepts
 * for the bridge (so a host whose FORWARD policy is DROP still passes the sandboxes' traffic and
 * what is published to them). They replace the per-sandbox rules of the CNI bridge plugin's ipMasq
 * and of the firewall plugin (a chain and 3-4 iptables runs per sandbox, each waiting for the
 * xtables lock). Other in-subnet traffic RETURNs, so later POSTROUTING rules still see it.
 */
export function ensureNetworkRules(bridge: string, subnet: string): Promise<void> {
  let ready = networkRulesReady.get(bridge);
  if (!ready) {
    ready = (async () => {
      const c = netComment(bridge);
      const chain = masqChain(bridge);
      const nat = (await execText('iptables-save', ['-t', 'nat'])).split('\n');
      const filter = (await execText('iptables-save', ['-t', 'filter'])).split('\n');
      const natLines = ['*nat'];
      if (!nat.some((l) => l.startsWith(`:${chain} `))) natLines.push(`:${chain} - [0:0]`);
      const inChain = (frag: string) => nat.some((l) => l.startsWith(`-A ${chain} `) && l.includes(frag));
      if (!inChain(' -j RETURN')) natLines.push(`-A ${chain} -d ${subnet} -j RETURN`, `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE`);
      if (!inChain('--ctstate DNAT')) natLines.push(`-I ${chain} 1 -d ${subnet} -m conntrack --ctstate DNAT -j MASQUERADE`);
      if (!nat.some((l) => l.startsWith('-A POSTROUTING ') && ownComment(l, c))) natLines.push(`-A POSTROUTING -s ${subnet} -m comment --comment "${c}" -j ${chain}`);
      const filterLines = ['*filter'];
      const has = (...frags: string[]) => filter.some((l) => l.startsWith('-A FORWARD ') && ownComment(l, c) && frags.every((f) => l.includes(f)));
      if (!has(`-o ${bridge} `, 'RELATED,ESTABLISHED')) filterLines.push(`-I FORWARD 1 -o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "${c}" -j ACCEPT`);
      if (!has(`-o ${bridge} `, '--ctstate DNAT')) filterLines.push(`-I FORWARD 1 -o ${bridge} -m conntrack --ctstate DNAT -m comment --comment "${c}" -j ACCEPT`);
      if (!has(`-i ${bridge} `)) filterLines.push(`-I FORWARD 1 -i ${bridge} -m comment --comment "${c}" -j ACCEPT`);
      const parts = [natLines, filterLines].filter((l) => l.length > 1).flatMap((l) => [...l, 'COMMIT']);
      if (parts.length > 0) await restore([...parts, ''].join('\n'));
    })().catch((e) => {
      networkRulesReady.delete(bridge);
      throw e;
    });
    networkRulesReady.set(bridge, ready);
  }
  return ready;
}

/** Removes one bridge network's rules (when it has no sandbox left); idempotent. */
export async function removeNetworkRules(bridge: string): Promise<void> {
  networkRulesReady.delete(bridge);
  const c = netComment(bridge);
  const chain = masqChain(bridge);
  const parts: string[] = [];
  const nat = (await execText('iptables-save', ['-t', 'nat'])).split('\n');
  const natDel = nat.filter((l) => l.startsWith('-A POSTROUTING ') && ownComment(l, c)).map((l) => `-D${l.slice(2)}`);
  if (nat.some((l) => l.startsWith(`:${chain} `))) natDel.push(`-F ${chain}`, `-X ${chain}`);
  if (natDel.length) parts.push('*nat', ...natDel, 'COMMIT');
  const filter = (await execText('iptables-save', ['-t', 'filter'])).split('\n');
  const filterDel = filter.filter((l) => l.startsWith('-A ') && ownComment(l, c)).map((l) => `-D${l.slice(2)}`);
  if (filterDel.length) parts.push('*filter', ...filterDel, 'COMMIT');
  if (parts.length) await restore([...parts, ''].join('\n'));
}

/**
 * portmap and firewall leave host-wide chains behind after their last DEL. Drop them when they hold
 * no per-sandbox rules (from any CNI user), so a host without sandboxes has the ruleset it began with;
 * the plugins recreate them on the next ADD.
 */
export async function pruneSharedChains(): Promise<void> {
  await pruneHostportChains().catch(() => undefined);
  for (const bin of ['iptables', 'ip6tables']) {
    const save = async (table: string) => {
      try {
        return (await runCommand(`${bin}-save`, ['-t', table])).stdout.split('\n');
      } catch {
        return [];
      }
    };
    const rulesOf = (lines: string[], chain: string) => lines.filter((l) => l.startsWith(`-A ${chain} `));
    const hasChain = (lines: string[], chain: string) => lines.some((l) => l.startsWith(`:${chain} `));
    const removeChains = async (table: string, lines: string[], chains: string[]) => {
      // first every jump into them, then the chains themselves
      for (const l of lines) {
        const m = /^-A (\S+) (.*)$/.exec(l);
        if (!m || chains.includes(m[1])) continue;
        if (chains.some((c) => l.includes(` -j ${c}`) && (l.endsWith(` -j ${c}`) || l.includes(` -j ${c} `)))) {
          await runCommand(bin, ['-t', table, '-D', m[1], ...splitRule(m[2])]).catch(() => undefined);
        }
      }
      for (const c of chains) await runCommand(bin, ['-t', table, '-F', c]).catch(() => undefined);
      for (const c of chains) await runCommand(bin, ['-t', table, '-X', c]).catch(() => undefined);
    };

    const nat = await save('nat');
    if (hasChain(nat, 'CNI-HOSTPORT-DNAT') && rulesOf(nat, 'CNI-HOSTPORT-DNAT').length === 0) {
      const chains = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'].filter((c) => hasChain(nat, c));
      await removeChains('nat', nat, chains);
    }
    const filter = await save('filter');
    if (hasChain(filter, 'CNI-FORWARD')) {
      const fwd = rulesOf(filter, 'CNI-FORWARD');
      const onlyAdmin = fwd.every((l) => / -j CNI-ADMIN$/.test(l));
      if (onlyAdmin && rulesOf(filter, 'CNI-ADMIN').length === 0) {
        await removeChains('filter', filter, ['CNI-FORWARD', 'CNI-ADMIN'].filter((c) => hasChain(filter, c)));
      }
    }
  }
}

/** Splits an iptables-save rule into argv, honouring double quotes (comments). */
export function splitRule(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rule))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}
