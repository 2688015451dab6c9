// Cluster-wide network segment tags: each subscription's segment gets one number (1..65535), claimed in the admission transaction of its first group, that the overlay's hosts check on every packet (VXLAN-GBP), so it must mean the same segment on all of them.
import { BerthError, Codes } from '../lib/errors.js';
import type { Compare, Op, Store } from '../store/store.js';
import { SEGMENT_TAGS_PREFIX, segmentTagKey, segmentTagNumberKey } from './keys.js';

/** A segment's tag (`/segmenttags/{segment}`); `/segmenttagnums/{tag}` names the segment back. */
export interface SegmentTag {
  tag: number;
}

/** The largest tag: VXLAN-GBP carries 16 bits, and 0 is no tag. */
export const MAX_SEGMENT_TAG = 0xffff;

/**
 * The tag of `segment`: the one it has, or the lowest free one with the compares and ops that claim it in the
 * caller's transaction (a tag taken by another writer meanwhile fails it, and the caller decides again). Tags are
 * never given back: a subscription keeps its number while the cluster lives.
 */
export async function segmentTag(store: Store, segment: string): Promise<{ tag: number; compares: Compare[]; ops: Op[] }> {
  // a tag never changes once given; one given an instant ago and not seen yet is claimed again, which fails
  const own = await store.get<SegmentTag>(segmentTagKey(segment), { serializable: true });
  if (own) return { tag: own.value.tag, compares: [], ops: [] };
  const taken = new Set((await store.list<SegmentTag>(SEGMENT_TAGS_PREFIX)).map((kv) => kv.value.tag));
  let tag = 1;
  while (taken.has(tag)) tag++;
  if (tag > MAX_SEGMENT_TAG) throw new BerthError(Codes.SegmentTagsExhausted, `Every network segment tag of this cluster (${MAX_SEGMENT_TAG}, one per subscription) is taken.`, 409);
  return {
    tag,
    compares: [{ key: segmentTagKey(segment), modRevision: 0 }, { key: segmentTagNumberKey(tag), modRevision: 0 }],
    ops: [{ put: segmentTagKey(segment), value: { tag } satisfies SegmentTag }, { put: segmentTagNumberKey(tag), value: { segment } }],
  };
}
