// Addresses as berth's flags give them.

/** `host:port` (`[v6]:port` too) split into its parts. */
export const splitHostPort = (hp: string) => {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)) };
};
