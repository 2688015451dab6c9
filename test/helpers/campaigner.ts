// Test helper: a process of its own that wins an election and holds the leadership until it is killed.
// Usage: node campaigner.js STORE-URL ELECTION-PREFIX TTL-SECONDS VALUE  (prints {"key","createRevision"} once it leads)
import { Election } from '../../src/store/election.js';
import { openStore } from '../../src/store/open.js';

const [url, prefix, ttl, value] = process.argv.slice(2);
const store = await openStore(url);
const leadership = await new Election(store, prefix).campaign(value, { ttlSeconds: Number(ttl) });
process.stdout.write(`${JSON.stringify({ key: leadership.key, createRevision: leadership.createRevision })}\n`);
leadership.signal.addEventListener('abort', () => process.exit(3));
// The lease's timers do not keep a process alive: this does, until the test kills it.
setInterval(() => undefined, 60_000);
