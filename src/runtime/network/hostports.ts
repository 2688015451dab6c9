// Publishes a sandbox's ports on the host with one iptables-restore call (what CNI portmap does with a dozen iptables runs).
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { BerthError, Codes } from '../../lib/errors.js';
import type { PublishedPort } from '../types.js';

/** nat chains shared by every berth sandbox on the host; each rule carries its sandbox in a comment. */
export const DNAT_CHAIN = 'BERTH-HOSTPORTS';
export const MASQ_CHAIN = 'BERTH-HOSTPORTS-MASQ';
/** Jumps into our chains: DNAT for traffic to any local address (remote and 127.0.0.1), masquerade on the way out. */
const JUMPS = [
  `-A PREROUTING -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`,
  `-A OUTPUT -m addrtype --dst-type LOCAL -j ${DNAT_CHAIN}`,
  `-A POSTROUTING -j ${MASQ_CHAIN}`,
];

function execText(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new BerthError(Codes.NetworkError, `${file} ${args.join(' ')}: ${String(stderr).trim() || err.message}`, 500));
      else resolve(String(stdout));
    });
  });
}

/** Feeds a ruleset to `iptables-restore --noflush`: all of it applies, or none (one atomic commit). */
function restore(rules: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('iptables-restore', ['--noflush', '-w', '5'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.on('error', (e) => reject(new BerthError(Codes.NetworkError, `iptables-restore: ${e.message}`, 500)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BerthError(Codes.NetworkError, `iptables-restore: ${err.trim() || `exit ${code}`}\n${rules}`, 500));
    });
    child.stdin.end(rules);
  });
}

const comment = (id: string) => `berth:${id}`;
const ownRule = (line: string, id: string) => line.includes(`--comment "${comment(id)}"`) || line.endsWith(`--comment ${comment(id)}`) || line.includes(`--comment ${comment(id)} `);

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

/**
 * DNATs each published port to the sandbox, and masquerades what comes from 127.0.0.1 (after
 * route_localnet lets it leave through the bridge) or from the sandbox itself (hairpin), as portmap
 * with snat does. The caller records the sandbox on disk first, so a crash leaves enough to unpublish.
 */
export async function publishPorts(id: string, ip: string, bridge: string, ports: PublishedPort[]): Promise<void> {
  if (ports.length === 0) return;
  const c = comment(id);
  const lines = ['*nat'];
  for (const p of ports) {
    const proto = p.protocol === 'UDP' ? 'udp' : 'tcp';
    const match = `-p ${proto} -m ${proto} --dport ${p.port}`;
    lines.push(`-A ${DNAT_CHAIN} ${match} -m comment --comment "${c}" -j DNAT --to-destination ${ip}:${p.port}`);
    lines.push(`-A ${MASQ_CHAIN} -s 127.0.0.0/8 -d ${ip}/32 ${match} -m comment --comment "${c}" -j MASQUERADE`);
    lines.push(`-A ${MASQ_CHAIN} -s ${ip}/32 -d ${ip}/32 ${match} -m comment --comment "${c}" -j MASQUERADE`);
  }
  const rules = [...lines, 'COMMIT', ''].join('\n');
  await writeFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1').catch(() => undefined);
  await ensureChains();
  try {
    await restore(rules);
  } catch {
    // someone pruned our chains since we last looked: make them again, once
    chainsReady = undefined;
    await ensureChains();
    await restore(rules);
  }
}

/** Removes every rule of the sandbox; idempotent (nothing to remove is fine). */
export async function unpublishPorts(id: string): Promise<void> {
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
