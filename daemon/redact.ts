/**
 * Redaction of secrets in log text before it is stored, served or put in a
 * prompt. Patterns follow gitleaks' rules: a known token shape (AWS, GCP,
 * GitHub, GitLab, Slack, JWT, PEM) is replaced wherever it appears; a generic
 * secret (password, token, api key) only when a key names it. Only the secret
 * part becomes `[REDACTED:<kind>]`; the rest of the line stays readable.
 *
 * Choices on purpose (tests hold them):
 * - `password_reset_count=3`, `max_tokens: 512`, `tokens=12`, `token bucket`
 *   stay: the key must *end* with the secret word and be followed by `=` or `:`.
 * - Hex digests (git shas, sha256), UUIDs and plain base64 without a key are
 *   kept: without context they are far more often ids than secrets.
 * - A PEM key whose lines arrive as separate log lines can only be redacted
 *   from the BEGIN line on (the body lines alone look like any base64).
 */

/** A configured redaction pattern is not a valid regular expression. */
export class RedactPatternError extends Error {
  /** Stable error code. */
  readonly code = 'REDACT_PATTERN_INVALID';
  override readonly name = 'RedactPatternError';
}

/** Replaces secrets in one text. */
export type Redactor = (text: string) => string;

interface Rule {
  kind: string | ((secret: string) => string);
  /**
   * Groups: `pre` (kept text before the secret), `secret` (or `sq`/`secret2`
   * for single-quoted and bare values); without them the whole match is the
   * secret. Everything in the match outside the secret is kept.
   */
  re: RegExp;
  /** Values that are not secrets (placeholders, booleans) are left alone. */
  skip?: (secret: string) => boolean;
  /** Cheap test that must pass before the regex runs (most lines hold no secret). */
  quick?: (text: string) => boolean;
}

const has =
  (...needles: string[]) =>
  (t: string): boolean => {
    for (const n of needles) if (t.includes(n)) return true;
    return false;
  };
const hasI =
  (re: RegExp) =>
  (t: string): boolean =>
    re.test(t);

const PLACEHOLDER = /^(?:\*{3,}|x{3,}$|<[^>]*>$|\$\{|\{\{|%\()/i;
const NOT_A_SECRET = /^(?:true|false|null|nil|none|undefined|yes|no|on|off|required|optional|enabled|disabled|""|'')$/i;

function skipValue(v: string): boolean {
  return v.length === 0 || v.includes('[REDACTED:') || PLACEHOLDER.test(v) || NOT_A_SECRET.test(v);
}

/** Decodes the payload of a JWT to tell Kubernetes service-account tokens apart. */
function jwtKind(token: string): string {
  const payload = token.split('.')[1];
  if (!payload) return 'jwt';
  try {
    const json = Buffer.from(payload, 'base64url').toString('utf8');
    if (/"iss"\s*:\s*"(?:kubernetes\/serviceaccount|https:\/\/kubernetes\.default\.svc[^"]*)"/.test(json) || json.includes('"kubernetes.io"')) {
      return 'k8s-sa-token';
    }
  } catch {
    // Not base64url: still a JWT-shaped token, still redacted.
  }
  return 'jwt';
}

// Key names whose value is a secret; the key must end with one of these words.
const SECRET_KEY =
  '[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|credentials?)';

const RULES: Rule[] = [
  // PEM private key blocks, real newlines or `\n` escapes, END marker optional (line cut).
  {
    kind: 'private-key',
    quick: has('PRIVATE KEY'),
    re: /(?<pre>-----BEGIN (?<label>(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----)(?<secret>[\s\S]*?)(?<post>-----END \k<label>-----|$)/g,
  },
  // JWTs (and Kubernetes service-account tokens, which are JWTs).
  { kind: jwtKind, re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, quick: has('eyJ') },
  // AWS access key ids.
  { kind: 'aws-access-key-id', re: /\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|A3T[A-Z0-9])[A-Z0-9]{16}\b/g },
  // AWS secret access keys: 40 base64 chars, only next to a key that names them.
  {
    kind: 'aws-secret-access-key',
    quick: hasI(/access_?key/i),
    re: /(?<pre>(?:aws_?secret_?access_?key|secret_?access_?key|SecretAccessKey)\\?["']?\s*[:=]\s*\\?["']?)(?<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
  },
  // GCP API keys.
  { kind: 'gcp-api-key', re: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g, quick: has('AIza') },
  // GCP service-account key id (the private key itself is a PEM block).
  { kind: 'gcp-private-key-id', re: /(?<pre>\\?"private_key_id\\?"\s*:\s*\\?")(?<secret>[0-9a-f]{40})/g, quick: has('private_key_id') },
  // Azure storage account keys in connection strings, and SAS signatures.
  { kind: 'azure-storage-key', re: /(?<pre>AccountKey=)(?<secret>[A-Za-z0-9+/]{86}==)/g, quick: has('AccountKey=') },
  { kind: 'azure-sas-signature', re: /(?<pre>[?&]sig=)(?<secret>[A-Za-z0-9%+/=]{20,})/g, quick: has('sig=') },
  // GitHub tokens (classic, OAuth, app, refresh) and fine-grained PATs.
  { kind: 'github-token', re: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b/g, quick: hasI(/gh[pousr]_|github_pat_/) },
  // GitLab personal/project/deploy/runner tokens and runner registration tokens.
  { kind: 'gitlab-token', re: /\b(?:glpat|glptt|gldt|glrt|glcbt|glsoat|glft|glimt|glagent)-[A-Za-z0-9_-]{20,}|\bGR1348941[A-Za-z0-9_-]{20,}/g, quick: has('gl', 'GR1348941') },
  // Slack bot/user/app tokens and incoming-webhook URLs.
  { kind: 'slack-token', re: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, quick: has('xox') },
  { kind: 'slack-webhook', re: /(?<pre>https:\/\/hooks\.slack\.com\/services\/)(?<secret>T[A-Z0-9]+\/B[A-Z0-9]+\/[A-Za-z0-9]+)/g, quick: has('hooks.slack.com') },
  // Authorization headers: Bearer/Basic/Token credentials.
  {
    kind: 'authorization',
    quick: hasI(/authorization/i),
    skip: skipValue,
    re: /(?<pre>\bAuthorization\\?["']?\s*[:=]\s*\\?["']?\[?\\?["']?(?:Bearer|Basic|Token|Bot|Digest|Negotiate)\s+)(?<secret>[^\s"'\\,;\]]+)/gi,
  },
  // A bare `Bearer <token>` (curl -H, client debug output).
  { kind: 'bearer-token', re: /(?<pre>\bBearer\s+)(?<secret>[A-Za-z0-9._~+/-]{16,}=*)/g, quick: has('Bearer'), skip: skipValue },
  // Passwords in URLs: scheme://user:pass@host.
  { kind: 'url-password', re: /(?<pre>\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@"']*:)(?<secret>[^\s@/"']+)(?<post>@)/gi, quick: (t) => t.includes('://') && t.includes('@'), skip: skipValue },
  // docker config.json `"auth": "<base64 user:pass>"`.
  { kind: 'docker-auth', re: /(?<pre>\\?"auth\\?"\s*:\s*\\?")(?<secret>[A-Za-z0-9+/]{8,}={0,2})/g, quick: has('auth') },
  // Command-line flags that carry secrets (`--token abc`, `--password=abc`).
  {
    kind: 'flag-secret',
    quick: has('--'),
    re: /(?<pre>(?:^|\s)--(?:token|password|client-secret|secret|api-key|certificate-key)[= ])(?<secret>[^\s"']+)/g,
  },
  // key=value, key: value, "key": "value", key="value" (also with escaped quotes inside JSON-in-logfmt).
  {
    kind: 'secret-value',
    quick: hasI(/pass|pwd|secret|token|key|credential/i),
    re: new RegExp(
      `(?<pre>(?<![A-Za-z0-9_./-])${SECRET_KEY}\\\\?["']?\\s*(?<sep>=|:(?!//))\\s*)(?:(?<dq>\\\\?")(?<secret>(?:[^"\\\\]|\\\\(?!"))*)(?=\\\\?")|'(?<sq>[^']*)'|(?![\\w.-]+=[^\\s=&"',;])(?<secret2>[^\\s"',;}\\]\\\\]+))`,
      'gi',
    ),
    skip: skipValue,
  },
];

function compileExtra(patterns: string[]): Rule[] {
  return patterns.map((p, i) => {
    let re: RegExp;
    try {
      re = new RegExp(p, 'g');
    } catch (err) {
      throw new RedactPatternError(`redaction pattern #${i + 1} ${JSON.stringify(p)}: ${(err as Error).message}`);
    }
    if (re.test('')) throw new RedactPatternError(`redaction pattern #${i + 1} ${JSON.stringify(p)} matches the empty string`);
    re.lastIndex = 0;
    return { kind: 'custom', re, skip: skipValue };
  });
}

function apply(rule: Rule, text: string): string {
  if (rule.quick && !rule.quick(text)) return text;
  rule.re.lastIndex = 0;
  return text.replace(rule.re, (...args: unknown[]) => {
    const match = args[0] as string;
    const last = args[args.length - 1];
    const groups = (typeof last === 'object' && last !== null ? last : {}) as Record<string, string | undefined>;
    let secret = groups.secret ?? groups.sq ?? groups.secret2 ?? match;
    // After `=` a bare value ends at `&` (query strings); after `:` it runs to the next space.
    if (groups.secret2 !== undefined && groups.sep === '=') secret = secret.split('&')[0]!;
    if (rule.skip?.(secret)) return match;
    const kind = typeof rule.kind === 'function' ? rule.kind(secret) : rule.kind;
    // Where the secret sits in the match: after the named prefix (and opening quote) when the rule has one.
    let at: number;
    if (secret === match) at = 0;
    else if (groups.pre !== undefined) at = groups.pre.length + (groups.dq?.length ?? (groups.sq !== undefined ? 1 : 0));
    else at = match.indexOf(secret);
    return `${match.slice(0, at)}[REDACTED:${kind}]${match.slice(at + secret.length)}`;
  });
}

/**
 * Builds a redactor.
 * @param extra more regular expressions (from config) whose matches are
 *   secrets; a named group `secret` limits the replacement to that group.
 *   Defaults to none.
 */
export function createRedactor(extra: string[] = []): Redactor {
  const rules = [...RULES, ...compileExtra(extra)];
  return (text: string): string => {
    let out = text;
    for (const r of rules) out = apply(r, out);
    return out;
  };
}
