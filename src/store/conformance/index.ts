// The Store conformance suite: every Store backend (SQLite, etcd) must pass it unchanged.
import { admissionConformance } from './admission.js';
import { electionConformance } from './election.js';
import type { StoreUnderTest } from './harness.js';
import { kvConformance } from './kv.js';
import { leaseConformance } from './lease.js';
import { watchConformance } from './watch.js';

export type { StoreUnderTest } from './harness.js';

export function storeConformance(sut: StoreUnderTest) {
  kvConformance(sut);
  watchConformance(sut);
  leaseConformance(sut);
  admissionConformance(sut);
  electionConformance(sut);
}
