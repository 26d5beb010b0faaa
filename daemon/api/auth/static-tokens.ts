/**
 * Static bearer tokens for standalone and air-gapped sites. The file holds
 * one `<sha256 hex of the token> <name> [scopes]` line per token (`#` starts a
 * comment), the shape `sha256sum` prints, so a token can also be added by
 * hand: `printf %s "$TOKEN" | sha256sum | sed 's/ -$/ alice reader/' >> tokens`.
 * Tokens are never stored; a presented token is hashed and compared with
 * every line in constant time. Scopes are the shipped roles' short names,
 * comma-separated (`reader`, `model-user`, `metrics`): a token may use what
 * those roles grant, and a line without scopes (or `all`) may use every route.
 * The file is re-read when it changes (checked every few seconds).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { CodedError } from '../../errors.js';
import { ROLE_SCOPES, scopesAllow } from './policy.js';
import type { Authenticator, AuthnResult, AuthzResult, Identity } from './types.js';

/** One line of a token file. */
export interface TokenEntry {
  hash: Buffer;
  name: string;
  /** Roles the token has (short names); null for every route. */
  scopes: readonly string[] | null;
}

/** A token file that cannot be used; the daemon exits 2 with this message. */
export class TokenFileError extends CodedError {
  readonly code = 'TOKEN_FILE_INVALID';
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Parses a comma-separated scope list; null means every route. Throws TokenFileError naming the allowed values. */
export function parseScopes(text: string | undefined, where: string): readonly string[] | null {
  if (text === undefined || text === 'all') return null;
  const scopes = text.split(',');
  const bad = scopes.filter((s) => !ROLE_SCOPES.includes(s));
  if (bad.length > 0) throw new TokenFileError(`${where}: unknown scope ${bad.map((b) => `"${b}"`).join(', ')} (allowed: all, ${ROLE_SCOPES.join(', ')}, comma-separated)`);
  return Object.freeze([...new Set(scopes)]);
}

/** sha256 of a token, as stored. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Parses a token file's text. Throws TokenFileError naming the line. */
export function parseTokenFile(text: string, path: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([0-9a-fA-F]{64})\s+\*?(\S+)(?:\s+(\S+))?$/.exec(line);
    if (!m || !NAME.test(m[2]!)) {
      throw new TokenFileError(`${path}:${i + 1}: expected "<sha256 hex> <name> [scopes]" (name: letters, digits, . _ : @ -)`);
    }
    out.push({ hash: Buffer.from(m[1]!, 'hex'), name: m[2]!, scopes: parseScopes(m[3], `${path}:${i + 1}`) });
  }
  return out;
}

/** Reads a token file; refuses one that others may read or write. */
export function readTokenFile(path: string): TokenEntry[] {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o022) !== 0) throw new TokenFileError(`${path} is writable by group or others (chmod 600 it)`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof TokenFileError) throw err;
    throw new TokenFileError(`cannot read the token file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const entries = parseTokenFile(text, path);
  if (entries.length === 0) throw new TokenFileError(`${path} lists no token; add one with \`nodesage token create --token-file ${path} --name NAME\``);
  return entries;
}

/**
 * Makes a new random token, appends its hash line to `path` (created 0600 when
 * missing) and returns the token, which is shown once and stored nowhere.
 * `scopes` (comma-separated role short names, or `all`) limits what it may use.
 */
export function createToken(path: string, name: string, scopes = 'all'): string {
  if (!NAME.test(name)) throw new TokenFileError(`token name "${name}": letters, digits and . _ : @ - only, at most 128`);
  const parsed = parseScopes(scopes, 'scope');
  const existing = (() => {
    try {
      return parseTokenFile(readFileSync(path, 'utf8'), path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  })();
  if (existing.some((e) => e.name === name)) throw new TokenFileError(`${path} already has a token named ${name}`);
  const token = `nst_${randomBytes(32).toString('base64url')}`;
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  try {
    if ((fstatSync(fd).mode & 0o022) !== 0) throw new TokenFileError(`${path} is writable by group or others (chmod 600 it)`);
    writeSync(fd, `${hashToken(token).toString('hex')}  ${name}${parsed ? ` ${parsed.join(',')}` : ''}\n`);
  } finally {
    closeSync(fd);
  }
  return token;
}

/** Options of {@link StaticTokens}. */
export interface StaticTokensOptions {
  /** The file the entries came from: re-read when it changes, so tokens are added or revoked without a restart. Defaults to none. */
  path?: string;
  /** Milliseconds between checks of the file for changes. Defaults to 5000. */
  recheckMs?: number;
  /** Called when a changed file cannot be used (the previous tokens stay in force). Defaults to nothing. */
  onReloadError?: (err: Error) => void;
  /** Clock. Defaults to Date.now. */
  now?: () => number;
}

/** Authenticates tokens against a token file's hashes. */
export class StaticTokens implements Authenticator {
  #entries: readonly TokenEntry[];
  #checkedAt: number;
  #stamp: string;

  constructor(
    entries: readonly TokenEntry[],
    private readonly opts: StaticTokensOptions = {},
  ) {
    this.#entries = entries;
    this.#checkedAt = (opts.now ?? Date.now)();
    this.#stamp = this.#fileStamp();
  }

  #fileStamp(): string {
    if (!this.opts.path) return '';
    try {
      const st = statSync(this.opts.path);
      return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
    } catch {
      return 'missing';
    }
  }

  /** Re-reads the file when it changed; a file that became unusable keeps the previous tokens. */
  #refresh(): void {
    const now = (this.opts.now ?? Date.now)();
    if (!this.opts.path || now - this.#checkedAt < (this.opts.recheckMs ?? 5000)) return;
    this.#checkedAt = now;
    const stamp = this.#fileStamp();
    if (stamp === this.#stamp) return;
    this.#stamp = stamp;
    try {
      this.#entries = readTokenFile(this.opts.path);
    } catch (err) {
      this.opts.onReloadError?.(err as Error);
    }
  }

  async authenticate(token: string): Promise<AuthnResult> {
    this.#refresh();
    const presented = hashToken(token);
    let found: TokenEntry | undefined;
    // Compare with every entry, without stopping early, so timing says nothing about the list.
    for (const e of this.#entries) if (timingSafeEqual(presented, e.hash) && !found) found = e;
    if (!found) return { ok: false, status: 401, code: 'UNAUTHENTICATED', message: 'the bearer token is not in the token file' };
    // The scopes travel with the identity (none: every route), so a token narrowed in the file is narrowed at its next request.
    return { ok: true, identity: { name: found.name, groups: [], via: 'token-file', ...(found.scopes ? { extra: { scopes: [...found.scopes] } } : {}) } };
  }

  async authorize(identity: Identity, path: string, verb: string): Promise<AuthzResult> {
    const scopes = identity.extra?.scopes;
    if (!scopes || scopesAllow(scopes, path, verb)) return { ok: true };
    return { ok: false, status: 403, code: 'FORBIDDEN', message: `token ${identity.name} (scopes: ${scopes.join(', ')}) may not ${verb} ${path}` };
  }
}
