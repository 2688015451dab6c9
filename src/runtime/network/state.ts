// The sandboxes' state on disk: one small JSON file each, the warm pool's apart from the groups'.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PublishedPort } from '../types.js';
import type { CniNetworkConfig, CniResult, CniRuntime } from './cni.js';

/** Written before ADD so a crash mid-setup leaves enough to tear it down. */
export interface SandboxState {
  id: string;
  netnsName: string;
  netnsPath: string;
  ports: PublishedPort[];
  /** The exact config used for ADD; DEL must see the same one. */
  network: CniNetworkConfig;
  runtime: CniRuntime;
  result?: CniResult;
  /** Our own host-port rules, not a CNI plugin's: removed by teardown (older states used portmap). */
  hostPorts?: boolean;
  /** Where its ports are published (absent in states from before: every local address). */
  hostAddress?: string;
  /** Its segment (isolation.ts); absent while in the pool, and in states from before segments. */
  segment?: string;
  /** Its segment's tag across the cluster's hosts (isolation.ts's isSegmentTag); absent: it reaches no other host. */
  segmentTag?: number;
}

export const POOL_ID_RE = /^pool-[0-9a-f]{12}$/;
export const SANDBOX_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

// A sandbox's state is one small file, read and written synchronously: a round trip through
// libuv's thread pool costs more than the I/O, and under load it queues behind everything else.
export class SandboxStates {
  constructor(private readonly dir: string) {}

  /** Pool sandboxes live apart, so ids() and the agent never see them. */
  private poolDir(): string {
    return join(this.dir, 'pool');
  }

  private path(id: string): string {
    return POOL_ID_RE.test(id) ? join(this.poolDir(), `${id}.json`) : join(this.dir, `${id}.json`);
  }

  async read(id: string): Promise<SandboxState | undefined> {
    try {
      return JSON.parse(readFileSync(this.path(id), 'utf8')) as SandboxState;
    } catch {
      return undefined;
    }
  }

  async write(st: SandboxState): Promise<void> {
    mkdirSync(POOL_ID_RE.test(st.id) ? this.poolDir() : this.dir, { recursive: true });
    const path = this.path(st.id);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(st));
    renameSync(tmp, path);
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  /** The groups' sandboxes, sorted. */
  async ids(): Promise<string[]> {
    return (await jsonFiles(this.dir)).filter((id) => SANDBOX_ID_RE.test(id)).sort();
  }

  async poolIds(): Promise<string[]> {
    return (await jsonFiles(this.poolDir())).filter((id) => POOL_ID_RE.test(id));
  }
}

async function jsonFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
  } catch {
    return [];
  }
}

/** Sandboxes set up without one share this segment. */
export const DEFAULT_SEGMENT = 'default';

/** A sandbox's segment and, on a cluster host, its tag. */
export interface Segment {
  segment: string;
  tag?: number;
}

/** `st` in `segment` (a tag it had goes when the new segment has none). */
export function withSegment(st: SandboxState, { segment, tag }: Segment): SandboxState {
  const { segmentTag: _, ...rest } = st;
  return { ...rest, segment, ...(tag !== undefined && { segmentTag: tag }) };
}
