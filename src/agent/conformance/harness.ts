// What the agent contract suite needs from a control plane and its agent under test, and the helpers its tests share.
import { test, type TestContext } from 'node:test';
import type { HostRuntime } from '../host-runtime.js';
import type { HostDataPlane } from '../link.js';
import type { PlacedHostSpec } from '../spec.js';
import { fakeRuntime, type FakeRuntime } from '../testing.js';
import type { GroupStatus } from '../types.js';

/** A control plane with one host, whose agent follows it over the link under test. */
export interface AgentHarness {
  /** Places `p` on the host (its spec put, as a control plane writes it with the group). */
  place(p: PlacedHostSpec): Promise<void>;
  /** Takes the group off the host (its spec deleted, its removal awaited). */
  unplace(uid: string): Promise<void>;
  /** The status the control plane holds for the group. */
  status(uid: string): Promise<GroupStatus | undefined>;
  /** Groups the host reported torn down, in order. */
  removed(): string[];
  /** The host's data plane as the control plane reaches it (its agent reads usage every 50 ms). */
  dataPlane(): HostDataPlane;
  /** Ends the agent as a crash would (its containers keep running on the runtime). */
  stopAgent(): Promise<void>;
  /** Starts an agent again on the same runtime and control plane; resolves once it has adopted what is placed. */
  startAgent(): Promise<void>;
  /**
   * A link over a network only: the control plane becomes unreachable to the agent (the store keeps taking what
   * the test places) until `back` brings it back where it was. Absent: the link cannot be cut (in-process).
   */
  controlPlaneAway?(): Promise<{ back(): Promise<void> }>;
  close(): Promise<void>;
}

export interface AgentUnderTest {
  /** Names the link in test titles. */
  name: string;
  /** A fresh control plane and an agent following it over `runtime`, started (its first set adopted). */
  start(runtime: HostRuntime): Promise<AgentHarness>;
}

/** A test with a fresh fake runtime and harness, closed even when it fails. */
export function agentTest(sut: AgentUnderTest, title: string, fn: (h: AgentHarness, fake: FakeRuntime, t: TestContext) => Promise<void>) {
  test(`${sut.name}: ${title}`, async (t) => {
    const fake = fakeRuntime();
    const h = await sut.start(fake.runtime);
    try {
      await fn(h, fake, t);
    } finally {
      await h.close();
    }
  });
}

/** Polls the control plane's copy of a status until `cond` holds for it. */
export async function statusWhere(h: AgentHarness, uid: string, what: string, cond: (s: GroupStatus) => boolean, timeoutMs = 10_000): Promise<GroupStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await h.status(uid);
    if (s && cond(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${uid} to be ${what} (last: ${JSON.stringify(s)?.slice(0, 300)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
