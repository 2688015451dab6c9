// Names of what a group has on the host: runtime ids carry the group's uid and generation, so what is found on the host can be matched to what is placed.
export const containerId = (uid: string, gen: number, name: string) => `${uid}-g${gen}-${name}`;
export const sandboxId = (uid: string, gen: number) => `${uid}-g${gen}`;

/** The uid, generation and (for a container) name of a runtime id this agent made; undefined for any other. */
export const parseId = (id: string): { uid: string; gen: number; name?: string } | undefined => {
  const m = /^([0-9a-f]{12})-g(\d+)(?:-(.+))?$/.exec(id);
  return m ? { uid: m[1], gen: Number(m[2]), name: m[3] } : undefined;
};
