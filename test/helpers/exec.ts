// Test helper: exec and attach sessions over berth's WebSocket, as ACI's clients open them.
import WebSocket from 'ws';
import type { Api } from './berth.js';

/** An exec or attach WebSocket as ACI's clients use it: the password first (or as Authorization), then frames. */
export function wsSession(uri: string, password: string, o: { header?: boolean } = {}) {
  const ws = new WebSocket(uri, o.header ? { headers: { authorization: password } } : {});
  let text = '';
  ws.on('message', (d) => (text += d.toString()));
  const opened = new Promise<void>((res) => ws.on('open', () => {
    if (!o.header) ws.send(password);
    res();
  }));
  const closed = new Promise<{ code: number; reason: string }>((res, rej) => {
    ws.on('close', (code, reason) => res({ code, reason: reason.toString() }));
    ws.on('error', rej);
  });
  const waitFor = async (re: RegExp, ms = 15_000) => {
    const t0 = Date.now();
    while (!re.test(text)) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re} in ${JSON.stringify(text)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return text;
  };
  return { ws, opened, closed, output: () => text, waitFor };
}

/** Starts `command` in a container through the ARM exec API (with a terminal when given a size) and opens its session. */
export async function execSession(api: Api, rg: string, group: string, container: string, command: string, terminalSize?: { rows: number; cols: number }) {
  const r = await api.req('POST', `${api.groupPath(rg, group)}/containers/${container}/exec`, { command, ...(terminalSize && { terminalSize }) });
  if (r.status !== 200) throw new Error(`exec ${command}: ${r.status} ${r.text}`);
  const s = wsSession(r.body.webSocketUri, r.body.password);
  await s.opened;
  return s;
}
