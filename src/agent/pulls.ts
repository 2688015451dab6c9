// The images a group generation needs, from the local store or pulled (with progress in the containers' events).
import type { PulledImage } from '../runtime/types.js';
import type { ReconcileContext } from './group.js';
import type { Images } from './host-runtime.js';
import type { PlacedHostSpec } from './spec.js';
import type { GroupStatus } from './types.js';
import { addEvent, fmtBytes, viewOf } from './views.js';

/** Progress shows in the Pulling event's message at most this often. */
const PROGRESS_EVERY_MS = 250;

/**
 * A local copy only of images anyone could pull: a private image is pulled again (blobs stay cached), so the
 * registry re-checks this group's credentials.
 */
export const localImage = (images: Images, ref: string) => images.get(ref, { anonymousOnly: true });

/** Every image of `containers` (each pulled once, side by side), by reference. */
export async function pullImages(
  ctx: ReconcileContext, p: PlacedHostSpec, s: GroupStatus, containers: { name: string; image: string }[], signal: AbortSignal,
): Promise<Map<string, PulledImage>> {
  const images = new Map<string, PulledImage>();
  await Promise.all([...new Set(containers.map((c) => c.image))].map(async (ref) => {
    const views = containers.filter((c) => c.image === ref).map((c) => viewOf(s, c.name)).filter((v) => !!v);
    let img = await localImage(ctx.rt.images, ref);
    if (!img) {
      for (const v of views) addEvent(v.events, 'Pulling', `pulling image "${ref}"`);
      ctx.emit(s);
      let last = 0;
      const t0 = Date.now();
      img = await ctx.rt.images.pull(ref, {
        credentials: p.spec.registryCredentials,
        signal,
        onEvent: (e) => {
          if (e.type !== 'layer' || Date.now() - last < PROGRESS_EVERY_MS) return;
          last = Date.now();
          for (const v of views) {
            const ev = v.events.find((x) => x.name === 'Pulling');
            if (ev) ev.message = `pulling image "${ref}": layer ${e.digest.slice(7, 19)} ${fmtBytes(e.doneBytes)}/${fmtBytes(e.totalBytes)}`;
          }
          ctx.emit(s);
        },
      });
      for (const v of views) addEvent(v.events, 'Pulled', `Successfully pulled image "${ref}" in ${((Date.now() - t0) / 1000).toFixed(2)}s (${fmtBytes(img.size)})`);
    }
    images.set(ref, img);
  }));
  return images;
}
