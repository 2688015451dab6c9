// Who may speak for a host: a join token (configured on the server, presented once by a new host) buys an agent
// credential, random and stored only as its hash, that authenticates that host's agent and no other. The hashes are
// followed from the store (a watch), so an agent's requests (a heartbeat every quarter second) read nothing.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AgentAuthenticator } from '../../arm/auth.js';
import { BerthError, Codes } from '../../lib/errors.js';
import { Mirror } from '../../store/mirror.js';
import type { Store } from '../../store/store.js';
import { AGENT_CREDENTIALS_PREFIX, agentCredentialKey } from '../keys.js';

interface CredentialRecord {
  sha256: string;
  issuedAt: string;
}

const sha = (s: string) => createHash('sha256').update(s).digest();
const bearer = (header: string | undefined) => /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
const refused = (why: string) => new BerthError(Codes.AuthenticationFailed, `Authentication failed: ${why}.`, 401);
/** Whether `given` (a SHA-256) is the record's, in the same time whether there is a record or not. */
const matches = (rec: CredentialRecord | undefined, given: Buffer) => {
  const want = rec ? Buffer.from(rec.sha256, 'hex') : sha('no such host');
  return timingSafeEqual(want, given) && rec !== undefined;
};

export class AgentCredentials implements AgentAuthenticator {
  private joinDigests: Buffer[];
  private known: Mirror<CredentialRecord>;

  constructor(
    private store: Store,
    joinTokens: string[],
  ) {
    this.joinDigests = joinTokens.map(sha);
    this.known = new Mirror<CredentialRecord>(store, AGENT_CREDENTIALS_PREFIX);
  }

  /** Stops following the store. */
  stop() {
    this.known.stop();
  }

  /** Whether hosts can join at all (a server without join tokens takes no new hosts). */
  get joinable() {
    return this.joinDigests.length > 0;
  }

  authenticateJoin(header: string | undefined): void {
    const token = bearer(header);
    if (!token) throw refused('a join token is required');
    const d = sha(token);
    if (!this.joinDigests.some((j) => timingSafeEqual(j, d))) throw refused('the join token is not one this cluster accepts');
  }

  async authenticateAgent(host: string, header: string | undefined): Promise<void> {
    const credential = bearer(header);
    if (!credential) throw refused('an agent credential is required');
    const given = sha(credential);
    // as the watch last told it; what does not match is read from the store (a credential issued an instant ago
    // on another replica). One replaced is refused once either knows of its successor.
    if (matches(this.known.get(agentCredentialKey(host)), given)) return;
    if (!matches((await this.store.get<CredentialRecord>(agentCredentialKey(host)))?.value, given)) throw refused(`the credential is not host '${host}''s`);
  }

  /** A new credential for `host` (the one it had, if any, stops working): returned once, kept only as a hash. */
  async issue(host: string): Promise<string> {
    const credential = randomBytes(32).toString('base64url');
    await this.store.put(agentCredentialKey(host), { sha256: sha(credential).toString('hex'), issuedAt: new Date().toISOString() } satisfies CredentialRecord);
    return credential;
  }
}
