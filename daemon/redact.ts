/**
 * Redaction of secrets in log text before it is stored, indexed, put in a
 * prompt, exported or answered. It runs on every log line as it arrives, so
 * the common line (no secret) must cost next to nothing: one pre-filter
 * regular expression made of every rule's trigger words decides whether any
 * rule runs at all, then each rule checks its own triggers before its regex.
 *
 * Families follow gitleaks' rules (github.com/gitleaks/gitleaks,
 * config/gitleaks.toml; each rule names the gitleaks rule id it follows); the
 * regexes are our own. A known token shape (AWS, GCP, GitHub, Stripe, ...) is
 * replaced wherever it appears; a generic secret only when a key names it
 * (`password=`, `"client_secret": "…"`, `X-Api-Key: …`). Only the secret part
 * becomes `[REDACTED:<kind>]`; the rest of the line stays readable.
 *
 * Choices on purpose (test/fixtures/redaction holds them):
 * - The key must *end* with the secret word: `password_reset_count=3`,
 *   `max_tokens: 512`, `secretName: db`, `token bucket` stay.
 * - `name:value` without a space after the colon counts only where an
 *   assignment can start (line start, after a space, `{`, `[`, `,`, `;`, `&`):
 *   `pam_unix(passwd:chauthtok)` stays, `map[password:hunter2]` does not.
 * - A key ending in `key` is a secret unless its first word says what kind of
 *   non-secret key it is (`cache_key`, `partition_key`, `public_key`, ...).
 * - Hex digests (git shas, sha256), UUIDs and plain base64 without a key are
 *   kept, except base64 that decodes to credentials (docker `auths`, a PEM
 *   private key, `user:password` after `Basic`) and a line that is nothing but
 *   base64 (the body lines of a PEM key printed line by line).
 * - A PEM key body line shorter than 20 characters (the last one of a key)
 *   cannot be told from a word and is kept: at most 14 bytes of a key.
 */
import { createHash } from 'node:crypto';
import { CodedError } from './errors.js';
import type { Diagnosis, FindingDraft, LogLine, Signal } from './core/types.js';

/** A configured redaction pattern is not a valid regular expression. */
export class RedactPatternError extends CodedError {
  /** Stable error code. */
  readonly code = 'REDACT_PATTERN_INVALID';
}

/** Replaces secrets in one text. */
export type Redactor = (text: string) => string;

/** Where a match sits, for rules that judge by context. */
interface MatchContext {
  groups: Record<string, string | undefined>;
  match: string;
  offset: number;
  input: string;
}

interface Rule {
  kind: string | ((secret: string) => string);
  /**
   * Groups: `pre` (kept text before the secret), `secret` (or `sq`/`secret2`
   * for single-quoted and bare values); without them the whole match is the
   * secret. Everything in the match outside the secret is kept.
   */
  re: RegExp;
  /**
   * Regex sources (case-sensitive) one of which must occur in the text before
   * `re` runs. Each must imply a word of ANCHORS, the pre-filter of every line.
   */
  triggers: string[];
  /** Values that are not secrets (placeholders, booleans, non-credentials) are left alone. */
  skip?: (secret: string, ctx: MatchContext) => boolean;
}

/** Case-insensitive regex source for a word, for the case-sensitive trigger regexes. */
function ci(word: string): string {
  let out = '';
  for (const c of word) out += /[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return out;
}

const PLACEHOLDER = /^(?:\*{3,}|x{3,}$|<[^>]*>$|\$\{|\$\(|\{\{|%\(|\[REDACTED)/i;
const NOT_A_SECRET =
  /^(?:true|false|null|nil|none|undefined|yes|no|on|off|required|optional|enabled|disabled|set|unset|missing|invalid|expired|empty|present|provided|hidden|masked|redacted|changed|""|'')$/i;

function skipValue(v: string): boolean {
  return v.length === 0 || v.includes('[REDACTED:') || PLACEHOLDER.test(v) || NOT_A_SECRET.test(v);
}

/** Decodes the payload of a JWT to tell Kubernetes service-account tokens apart. */
function jwtKind(token: string): string {
  const payload = token.split('.')[1];
  if (!payload) return 'jwt';
  const json = Buffer.from(payload, 'base64url').toString('utf8');
  if (/"iss"\s*:\s*"(?:kubernetes\/serviceaccount|https:\/\/kubernetes\.default\.svc[^"]*)"/.test(json) || json.includes('"kubernetes.io"')) {
    return 'k8s-sa-token';
  }
  return 'jwt';
}

/** What a base64 (or base64url) text decodes to, as latin1 (never throws). */
function decode64(s: string): string {
  return Buffer.from(s.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/')), 'base64').toString('latin1');
}

// Decoded JSON that holds credentials: docker config (`auths`, `auth`), or a named secret field.
const DECODED_CREDENTIALS = /"(?:auths?|password|passwd|secret|token|identitytoken|client[-_]?secret|client-key-data|private_key|privateKey|credentials?)"\s*:/i;

/** The kind for a base64 JSON blob, or null when it holds no credentials. */
function base64JsonKind(b64: string): string | null {
  const text = decode64(b64);
  if (text.includes('PRIVATE KEY')) return 'private-key';
  if (!DECODED_CREDENTIALS.test(text)) return null;
  return /"auths"\s*:/.test(text) ? 'docker-config' : 'base64-credentials';
}

/** `user:password` (printable, both parts non-empty) after `Basic`. */
function isBasicCredential(b64: string): boolean {
  const text = decode64(b64);
  return /^[\x21-\x7e][\x20-\x7e]*:[\x20-\x7e]+$/.test(text);
}

// ---- Key names whose value is a secret -------------------------------------------------------------

// Words a secret key name ends with (case-insensitive), then an optional encoding suffix.
const SECRET_WORDS = ['password', 'passwd', 'passphrase', 'pwd', 'secret', 'token', 'credential', 'credentials', 'signature', 'apikey', 'privatekey', 'accesskey', 'secretkey', 'masterkey', 'licensekey'];
const KEY_SUFFIX = `(?:${['key', 'keydata', 'key_data', 'key-data'].map(ci).join('|')})`;
/**
 * A key name: word characters (and `. -`) ending with a secret word, or with
 * `key` after a separator or a lower-case letter (`restricted_key`,
 * `X-Api-Key`, `apiKey`, `tls.key`), optionally followed by an encoding
 * suffix (`SECRET_KEY_BASE`, `password_b64`).
 */
const SECRET_NAME = `(?<name>[A-Za-z0-9_.-]*?(?:${SECRET_WORDS.map(ci).join('|')}|[_.-]${KEY_SUFFIX}|[a-z0-9]Key(?:Data)?)(?:[_-]?(?:${['base64', 'b64', 'base', 'value', 'hex'].map(ci).join('|')}))?)`;

// First words of key names that are not secrets although they end in `key`.
const NOT_SECRET_KEY =
  /(?:^|[_.-])(?:public|pub|cache|partition|sort|primary|foreign|routing|idempotency|object|s3|hash|shard|sharding|row|dedup|dedupe|group|label|map|lookup|index|unique|composite|host|node|field|attr|attribute|metric|cursor|page|range|query|bucket|registry|annotation|lock|kid|config|ssh[_-]?public|storage[_-]?class)[_.-]?key$/i;

/** True when `name` ends in `key` but names a non-secret kind of key. */
function isNonSecretKeyName(name: string): boolean {
  return /key(?:[_-]?data)?$/i.test(name) && !/(?:api|access|secret|private|master|signing|encryption|license|auth|app|account|restricted|client|session|shared|storage|admin|service)[_.-]?key$/i.test(name) && NOT_SECRET_KEY.test(name.replace(/([a-z0-9])(?=[A-Z])/g, '$1_'));
}

// Where `name:value` (no quotes, no space after the colon) may start: line start or after these.
const ASSIGNMENT_START = /[\s{[,;&?|]/;

/** The key-name rule's judgement on a value in its context. */
function skipNamedValue(secret: string, ctx: MatchContext): boolean {
  if (skipValue(secret)) return true;
  const { groups, input, offset, match } = ctx;
  const name = groups.name ?? '';
  if (isNonSecretKeyName(name)) return true;
  // `Token: Token { kind: ... }`: a type printed after its field name, not a value.
  if (secret.toLowerCase() === name.toLowerCase()) return true;
  // A structure, not a value: its own fields are judged on their own.
  if (/^[{[]/.test(secret)) return true;
  // `PWD=/home/app`, `OLDPWD=/`: the shell's working directory.
  if (/pwd$/i.test(name) && !/passwd$/i.test(name) && secret.startsWith('/')) return true;
  if (groups.sep === ':' && groups.q1 === undefined && groups.sp === '') {
    // Unquoted `name:value`: only where an assignment can start, and not `(service:module)`.
    const before = offset > 0 ? input[offset - 1]! : '';
    if (before !== '' && !ASSIGNMENT_START.test(before)) return true;
    const after = input[offset + match.length] ?? '';
    if (after === ')') return true;
  }
  return false;
}

// ---- The rules ---------------------------------------------------------------------------------------

/** A vendor token shape (gitleaks rule id in the comment): replaced wherever it appears. */
function shape(kind: string, triggers: string[], re: RegExp): Rule {
  return { kind, triggers, re };
}

const RULES: Rule[] = [
  // gitleaks private-key: PEM private key blocks, real newlines or `\n` escapes, END marker optional (line cut).
  {
    kind: 'private-key',
    triggers: ['PRIVATE KEY'],
    re: /(?<pre>-----BEGIN (?<label>(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----)(?<secret>[\s\S]*?)(?<post>-----END \k<label>-----|$)/g,
  },
  // gitleaks jwt: JWTs (and Kubernetes service-account tokens, which are JWTs).
  { kind: jwtKind, triggers: ['eyJ'], re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  // gitleaks 1password-service-account-token: `ops_` + base64 JSON.
  shape('1password-token', ['ops_eyJ'], /\bops_eyJ[A-Za-z0-9+/=_-]{40,}/g),
  // Base64 JSON holding credentials: `.dockerconfigjson`, `.dockercfg`, a Secret's data dumped in a log.
  {
    kind: (s) => base64JsonKind(s) ?? 'base64-credentials',
    triggers: ['eyJ', 'eyAi', 'ewo'],
    re: /(?<![A-Za-z0-9+/_-])(?:eyJ|eyAi|ewo)[A-Za-z0-9+/_-]{16,}={0,2}/g,
    skip: (s) => base64JsonKind(s) === null,
  },
  // A base64 PEM private key (kubeconfig `client-key-data`, a Secret's `tls.key`); certificates stay.
  {
    kind: 'private-key',
    triggers: ['LS0tLS1CRUdJTi'],
    re: /LS0tLS1CRUdJTi[A-Za-z0-9+/]{16,}={0,2}/g,
    skip: (s) => !decode64(s).includes('PRIVATE KEY'),
  },
  // gitleaks aws-access-token: AWS access key ids.
  shape('aws-access-key-id', ['A3T', 'AKIA', 'ASIA', 'ABIA', 'ACCA'], /\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/g),
  // AWS secret access keys: 40 base64 chars, only next to a key that names them.
  {
    kind: 'aws-secret-access-key',
    triggers: [ci('access_key'), ci('accesskey'), ci('access-key')],
    re: /(?<pre>(?:aws_?secret_?access_?key|secret_?access_?key|SecretAccessKey|aws-secret-access-key)\\?["']?\s*[:=]\s*\\?["']?)(?<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/gi,
  },
  // gitleaks gcp-api-key.
  shape('gcp-api-key', ['AIza'], /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g),
  // GCP service-account key id (the private key itself is a PEM block).
  { kind: 'gcp-private-key-id', triggers: ['private_key_id'], re: /(?<pre>\\?"private_key_id\\?"\s*:\s*\\?")(?<secret>[0-9a-f]{40})/g },
  // Google OAuth client secrets and access tokens.
  shape('gcp-oauth', ['GOCSPX-', 'ya29\\.'], /\bGOCSPX-[A-Za-z0-9_-]{28}|\bya29\.[A-Za-z0-9_-]{30,}/g),
  // Azure storage and Service Bus keys in connection strings, and SAS signatures (Azure's documented formats; no gitleaks rule).
  { kind: 'azure-storage-key', triggers: ['AccountKey=', 'SharedAccessKey='], re: /(?<pre>(?:AccountKey|SharedAccessKey)=)(?<secret>[A-Za-z0-9+/]{40,88}={0,2})/g },
  { kind: 'azure-sas-signature', triggers: ['sig='], re: /(?<pre>[?&]sig=)(?<secret>[A-Za-z0-9%+/=]{20,})/g },
  // gitleaks azure-ad-client-secret: `xxx8Q~...`.
  shape('azure-ad-client-secret', ['Q~'], /(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])/g),
  // gitleaks github-pat, github-oauth, github-app-token, github-refresh-token, github-fine-grained-pat.
  shape('github-token', ['gh[pousr]_', 'github_pat_'], /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})\b/g),
  // gitleaks gitlab-pat, gitlab-ptt, gitlab-deploy-token, gitlab-runner-authentication-token, gitlab-rrt, ...
  shape(
    'gitlab-token',
    ['gl[a-z]{2,6}-', 'GR1348941'],
    /\b(?:glpat|glptt|gldt|glrt|glcbt|glsoat|glft|glimt|glagent|gloas)-[A-Za-z0-9_-]{20,}|\bGR1348941[A-Za-z0-9_-]{20,}/g,
  ),
  // gitleaks slack-bot-token, slack-user-token, slack-app-token, slack-config-access-token; slack-webhook-url.
  shape('slack-token', ['xox', 'xapp-'], /\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}/g),
  { kind: 'slack-webhook', triggers: ['hooks\\.slack\\.com'], re: /(?<pre>hooks\.slack\.com\/(?:services|workflows|triggers)\/)(?<secret>[A-Za-z0-9+/]{20,})/g },
  // Discord incoming webhooks carry their secret in the path.
  { kind: 'discord-webhook', triggers: ['discord(?:app)?\\.com/api/webhooks'], re: /(?<pre>discord(?:app)?\.com\/api\/webhooks\/\d+\/)(?<secret>[A-Za-z0-9_-]{30,})/g },
  // gitleaks stripe-access-token (sk_/rk_), plus publishable pk_ keys and webhook signing secrets.
  shape('stripe-key', ['[spr]k_(?:live|test|prod)_', 'whsec_'], /\b(?:[spr]k_(?:live|test|prod)_[A-Za-z0-9]{10,99}|whsec_[A-Za-z0-9+/=]{24,})\b/g),
  // gitleaks npm-access-token.
  shape('npm-token', ['npm_'], /\bnpm_[A-Za-z0-9]{36}\b/g),
  // gitleaks pypi-upload-token.
  shape('pypi-token', ['pypi-AgE'], /\bpypi-AgE[A-Za-z0-9_-]{50,}/g),
  // gitleaks rubygems-api-token.
  shape('rubygems-token', ['rubygems_'], /\brubygems_[a-f0-9]{48}\b/g),
  // gitleaks sendgrid-api-token.
  shape('sendgrid-key', ['SG\\.'], /\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}/g),
  // gitleaks twilio-api-key.
  shape('twilio-key', ['SK[0-9a-fA-F]{32}'], /\bSK[0-9a-fA-F]{32}\b/g),
  // gitleaks openai-api-key, anthropic-api-key, huggingface-access-token, huggingface-organization-api-token; Groq and Replicate prefixes.
  shape(
    'ai-api-key',
    ['sk-', 'hf_', 'api_org_', 'gsk_', 'r8_'],
    /\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|\bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{20,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b|\bsk-[A-Za-z0-9]{48}\b|\bhf_[A-Za-z]{34}\b|\bapi_org_[A-Za-z]{34}\b|\bgsk_[A-Za-z0-9]{52}\b|\br8_[A-Za-z0-9]{37}\b/g,
  ),
  // gitleaks shopify-access-token, shopify-custom-access-token, shopify-private-app-access-token, shopify-shared-secret.
  shape('shopify-token', ['shp(?:at|ca|pa|ss)_'], /\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b/g),
  // gitleaks digitalocean-pat, digitalocean-access-token, digitalocean-refresh-token.
  shape('digitalocean-token', ['do[opr]_v1_'], /\bdo[opr]_v1_[a-f0-9]{64}\b/g),
  // gitleaks mailgun-private-api-token; mailchimp-api-key.
  shape('mailgun-key', ['key-[0-9a-f]{32}'], /\bkey-[0-9a-f]{32}\b/g),
  shape('mailchimp-key', ['-us\\d'], /\b[0-9a-f]{32}-us\d{1,2}\b/g),
  // Docker Hub personal access tokens.
  shape('dockerhub-token', ['dckr_pat_'], /\bdckr_pat_[A-Za-z0-9_-]{20,}/g),
  // gitleaks age-secret-key.
  shape('age-secret-key', ['AGE-SECRET-KEY-1'], /AGE-SECRET-KEY-1[0-9A-Z]{58}/g),
  // gitleaks vault-service-token, vault-batch-token; hashicorp-tf-api-token.
  shape('vault-token', ['hv[sbr]\\.', 'atlasv1'], /\bhv[sbr]\.[A-Za-z0-9_-]{20,}|\b[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}/g),
  // gitleaks grafana-cloud-api-token, grafana-service-account-token, new-relic-user-api-key, sentry-org-token, sentry-user-token, dynatrace-api-token.
  shape(
    'observability-token',
    ['glc_', 'glsa_', 'NRAK-', 'sntry[su]_', 'dt0c01\\.'],
    /\bglc_[A-Za-z0-9+/]{32,}={0,2}|\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b|\bNRAK-[A-Z0-9]{27}\b|\bsntry[su]_[A-Za-z0-9+/=_-]{30,}|\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b/g,
  ),
  // gitleaks linear-api-key, postman-api-token, atlassian-api-token, doppler-api-token, databricks-api-token,
  // pulumi-api-token, telegram-bot-api-token, square-access-token, alibaba-access-key-id, artifactory-api-key,
  // planetscale-api-token, flyio-access-token, infracost-api-token; Buildkite's prefix.
  shape(
    'saas-token',
    ['lin_api_', 'PMAK-', 'ATATT3', 'dp\\.(?:pt|st|sa|ct)\\.', 'dapi[a-f0-9]', 'pul-[a-f0-9]', ':AA', 'sq0(?:atp|csp)-', 'LTAI', 'AKCp', 'pscale_', 'fo1_', 'fm2_', 'ico-', 'bkua_'],
    /\blin_api_[A-Za-z0-9]{40}\b|\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b|\bATATT3[A-Za-z0-9_=-]{100,}|\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}\b|\bdapi[a-f0-9]{32}(?:-\d)?\b|\bpul-[a-f0-9]{40}\b|(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}\b|\bsq0(?:atp|csp)-[A-Za-z0-9_-]{22,43}\b|\bLTAI[A-Za-z0-9]{20}\b|\bAKCp[A-Za-z0-9]{69}\b|\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,64}|\bf[om][12]_[A-Za-z0-9+/=_-]{40,}|\bico-[A-Za-z0-9]{32}\b|\bbkua_[a-f0-9]{40}\b/g,
  ),
  // Password hashes (bcrypt, sha-crypt, yescrypt: /etc/shadow, htpasswd): offline-crackable, so secret.
  shape(
    'password-hash',
    ['\\$(?:2[abxy]?|[156]|y)\\$'],
    /\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}|\$[156]\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{22,86}|\$y\$[./A-Za-z0-9]+\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{43}/g,
  ),
  // Authorization headers: Bearer/Basic/Token credentials.
  {
    kind: 'authorization',
    triggers: [ci('authorization')],
    skip: skipValue,
    re: /(?<pre>\bAuthorization\\?["']?\s*[:=]\s*\\?["']?\[?\\?["']?(?:Bearer|Basic|Token|Bot|Digest|Negotiate|AWS4-HMAC-SHA256|SharedKey)\s+)(?<secret>[^\s"'\\,;\]]+)/gi,
  },
  // A bare `Bearer <token>` (gitleaks curl-auth-header; client debug output).
  { kind: 'bearer-token', triggers: ['[Bb]earer'], re: /(?<pre>\b[Bb]earer\s+)(?<secret>[A-Za-z0-9._~+/-]{16,}=*)/g, skip: skipValue },
  // A bare `Basic <base64 user:password>`.
  { kind: 'basic-auth', triggers: ['Basic '], re: /(?<pre>\bBasic\s+)(?<secret>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])/g, skip: (s) => !isBasicCredential(s) },
  // Cookies carry sessions: every value after `Cookie:` / `Set-Cookie:`.
  { kind: 'cookie', triggers: [ci('cookie')], re: /(?<pre>\b(?:Set-)?Cookie\\?["']?\s*:\s*\\?["']?)(?<secret>[^\s"'\\;,]+=[^\s"'\\;,]+(?:;\s*[^\s"'\\;,]+=[^\s"'\\;,]+)*)/gi },
  // Passwords in URLs: scheme://user:pass@host (the last `@` before the host ends the password). A
  // password may hold an unescaped `/` (RFC 3986 wants it encoded; people paste it as is), but what
  // follows `host:` as a port (`https://host:8443/a/@me`) is not one.
  {
    kind: 'url-password',
    triggers: ['://[^\\s]*@'],
    re: /(?<pre>\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@"']*:)(?<secret>(?!\d{1,5}(?:[/?#]|$)|:)[^\s"']+)(?<post>@)(?=[A-Za-z0-9[][^\s@/"']*(?:[/?#\s"':]|$))/gi,
    skip: skipValue,
  },
  // DSNs without a scheme: Go's `user:pass@tcp(mysql-0:3306)/orders`, and `user:pass@host:5432`.
  {
    kind: 'dsn-password',
    triggers: ['@(?:tcp6?|udp|unix)\\(', ':[^\\s:@/]+@[A-Za-z0-9][\\w.-]*:\\d'],
    re: /(?<![\w.:/@%[-])(?<pre>[A-Za-z_][\w.-]*:)(?<secret>[^\s@/:"'()[\]]+)(?<post>@)(?=(?:tcp6?|udp|unix)\(|[A-Za-z0-9][\w.-]*:\d{2,5}\b)/g,
    skip: skipValue,
  },
  // Oracle JDBC: jdbc:oracle:thin:scott/tiger@//db:1521/orcl.
  { kind: 'dsn-password', triggers: ['jdbc:oracle:'], re: /(?<pre>jdbc:oracle:[a-z]+:[\w.$-]*\/)(?<secret>[^\s@/"']+)(?<post>@)/g, skip: skipValue },
  // docker config.json `"auth": "<base64 user:pass>"`.
  { kind: 'docker-auth', triggers: ['"auth\\\\?"'], re: /(?<pre>\\?"auth\\?"\s*:\s*\\?")(?<secret>[A-Za-z0-9+/]{8,}={0,2})/g },
  // Command lines that carry secrets: `--token abc`, `--db-password=abc`, `mysql -pabc`, `curl -u user:abc` (gitleaks curl-auth-user), `redis-cli -a abc`.
  {
    kind: 'flag-secret',
    triggers: ['--[\\w-]*(?:[Tt]oken|[Pp]assw(?:or)?d|[Ss]ecret|[Kk]ey)[= ]'],
    re: /(?<pre>(?:^|[\s"'])--[\w-]*(?:token|password|passwd|secret|api-key|apikey|access-key|secret-key|private-key|certificate-key)[= ])(?<secret>[^\s"']+)/gi,
    skip: skipValue,
  },
  {
    kind: 'cli-password',
    triggers: ['mysql', 'mariadb', 'sshpass', 'curl', 'redis-cli', 'wget'],
    re: /(?<pre>\b(?:mysql(?:dump|admin|sh)?|mariadb(?:-dump)?)\b[^\n|;&]*?\s-p)(?<secret>[^\s'"]+)|(?<pre2>\bsshpass\s+-p\s*)(?<secret2>\S+)|(?<pre3>\bcurl\b[^\n|;&]*?\s(?:-u|--user)\s+[^\s:'"]+:)(?<secret3>[^\s'"]+)|(?<pre4>\bredis-cli\b[^\n|;&]*?\s-a\s+)(?<secret4>\S+)|(?<pre5>\bwget\b[^\n|;&]*?\s--(?:http-|ftp-)?password[= ])(?<secret5>\S+)/g,
    skip: skipValue,
  },
  // .netrc lines; redis `requirepass`/`masterauth`.
  { kind: 'netrc-password', triggers: ['machine'], re: /(?<pre>\bmachine\s+\S+\s+login\s+\S+\s+password\s+)(?<secret>\S+)/g, skip: skipValue },
  { kind: 'redis-password', triggers: ['requirepass', 'masterauth'], re: /(?<pre>\b(?:requirepass|masterauth)\s+)(?<secret>["']?[^\s"']+["']?)/g, skip: skipValue },
  // YAML `name: value` holding the whole rest of the line (the value may have spaces).
  {
    kind: 'secret-value',
    triggers: [`(?:${SECRET_WORDS.map(ci).join('|')}|[Kk][Ee][Yy])[ \\t]*:[ \\t]`],
    re: new RegExp(`(?<=^[ \\t]*(?:-[ \\t]+)?)(?<pre>${SECRET_NAME}[ \\t]*(?<sep>:)(?<sp>[ \\t]+))(?<secret>[^\\s#"'|>{\\[&*!][^\\n#]*?)(?=[ \\t]*(?:[ \\t]#.*)?$)`, 'gm'),
    skip: skipNamedValue,
  },
  // gitleaks generic-api-key, kubernetes-secret-yaml: key=value, key: value, "key": "value", key="value", key => "value"
  // (also with escaped quotes inside JSON-in-logfmt).
  {
    kind: 'secret-value',
    triggers: [`(?:${SECRET_WORDS.map(ci).join('|')}|[Kk][Ee][Yy])(?:[_-]?[A-Za-z0-9]{1,6})?\\\\?["']?\\s*(?:=|:)`],
    re: new RegExp(
      `(?<pre>(?<![A-Za-z0-9_./-])(?<q1>\\\\?["'])?${SECRET_NAME}\\\\?["']?\\s*(?<sep>=>|:=|=|:(?!//))(?<sp>\\s*))(?:(?<dq>\\\\?")(?<secret>(?:[^"\\\\]|\\\\(?!"))*)(?=\\\\?")|'(?<sq>[^']*)'|(?![\\w.-]+=[^\\s=&"',;])(?<bare>[^\\s"',;}\\]\\\\)]+))`,
      'g',
    ),
    skip: skipNamedValue,
  },
];

// A whole line of base64 (upper, lower and digits, no spaces): the body lines of a PEM key printed line by line.
const BASE64_LINE = /^\s*(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[0-9])[A-Za-z0-9+/]{20,}={0,2}\s*$/;

/**
 * The pre-filter: literal words, lower case, at least one of which occurs in
 * any text that some rule's `triggers` match (matched against the lower-cased
 * text). A line without any of them runs no rule. Keep it in step with the
 * rules: a new rule needs one of its words here (the corpus test fails
 * otherwise). Literal alternatives only, so the check is one fast scan.
 */
const ANCHORS = [
  // Key names and header words.
  'pass', 'pwd', 'secret', 'token', 'key', 'cred', 'signature', 'auth', 'bearer', 'basic ', 'cookie', 'private', 'sig=',
  // Shapes: JWT / base64 JSON, base64 PEM, URLs and DSNs, flags, CLIs, hashes.
  'eyj', 'eyai', 'ewo', 'ls0tls1', '://', '@', '--', 'mysql', 'mariadb', 'sshpass', 'curl', 'redis-cli', 'wget', 'machine', 'requirepass', 'jdbc:', '$2', '$1$', '$5$', '$6$', '$y$',
  // Vendor prefixes.
  'akia', 'asia', 'abia', 'acca', 'a3t', 'aiza', 'gocspx', 'ya29.', 'q~', 'ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat', 'glpat-', 'glptt-', 'gldt-', 'glrt-', 'glcbt-',
  'glsoat-', 'glft-', 'glimt-', 'glagent-', 'gloas-', 'gr1348941', 'xox', 'xapp-', 'hooks.slack', 'discord', 'k_live_', 'k_test_', 'k_prod_', 'whsec_', 'npm_', 'pypi-', 'rubygems_',
  'sg.', 'sk-', 'hf_', 'api_org_', 'gsk_', 'r8_', 'shpat_', 'shpca_', 'shppa_', 'shpss_', '_v1_', '-us', 'dckr_pat', 'age-secret', 'hvs.', 'hvb.', 'hvr.', 'atlasv1', 'glc_', 'glsa_',
  'nrak-', 'sntry', 'dt0c01', 'lin_api', 'pmak-', 'atatt3', 'dp.', 'dapi', 'pul-', ':aa', 'sq0', 'ltai', 'akcp', 'pscale_', 'fo1_', 'fm2_', 'ico-', 'bkua_', 'ops_',
];
const PREFILTER = new RegExp(ANCHORS.map((a) => a.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|'));
// Twilio's `SK` + hex is the one upper-case-only prefix: checked on the text as it is.
const PREFILTER_UPPER = 'SK';

const TRIGGERS = new Map<Rule, RegExp>(RULES.map((r) => [r, new RegExp(r.triggers.join('|'))]));

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
    return { kind: 'custom', re, triggers: [], skip: skipValue };
  });
}

function apply(rule: Rule, text: string): string {
  rule.re.lastIndex = 0;
  return text.replace(rule.re, (...args: unknown[]) => {
    const match = args[0] as string;
    const last = args[args.length - 1];
    const hasGroups = typeof last === 'object' && last !== null;
    const groups = (hasGroups ? last : {}) as Record<string, string | undefined>;
    const input = args[args.length - (hasGroups ? 2 : 1)] as string;
    const offset = args[args.length - (hasGroups ? 3 : 2)] as number;
    let pre = groups.pre;
    let secret = groups.secret ?? groups.sq ?? groups.bare;
    for (const n of ['2', '3', '4', '5']) {
      if (secret === undefined && groups[`secret${n}`] !== undefined) {
        secret = groups[`secret${n}`];
        pre = groups[`pre${n}`];
      }
    }
    secret ??= match;
    // After `=` a bare value ends at `&` (query strings); after `:` it runs to the next space.
    if (groups.bare !== undefined && groups.sep === '=') secret = secret.split('&')[0]!;
    if (rule.skip?.(secret, { groups, match, offset, input })) return match;
    const kind = typeof rule.kind === 'function' ? rule.kind(secret) : rule.kind;
    // Where the secret sits in the match: after the named prefix (and opening quote) when the rule has one.
    let at: number;
    if (secret === match) at = 0;
    else if (pre !== undefined) at = pre.length + (groups.dq?.length ?? (groups.sq !== undefined ? 1 : 0));
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
  const custom = compileExtra(extra);
  return (text: string): string => {
    let out = text;
    if (out.length >= 20 && BASE64_LINE.test(out)) out = out.replace(/[A-Za-z0-9+/]{20,}={0,2}/, '[REDACTED:base64-line]');
    if (PREFILTER.test(out.toLowerCase()) || out.includes(PREFILTER_UPPER)) {
      for (const r of RULES) if (TRIGGERS.get(r)!.test(out)) out = apply(r, out);
    }
    for (const r of custom) out = apply(r, out);
    return out;
  };
}

/** Identifies the rules (built-in and `extra`): text stored under other rules is redacted again at start. */
export function redactionVersion(extra: string[] = []): string {
  const h = createHash('sha256');
  for (const r of RULES) h.update(`${r.re.source}\n`);
  h.update(ANCHORS.join('|'));
  h.update(JSON.stringify(extra));
  return h.digest('hex').slice(0, 16);
}

/** A log line with its text redacted (the same object when nothing changed). */
export function redactLogLine(line: LogLine, redact: Redactor): LogLine {
  const text = redact(line.text);
  return text === line.text ? line : { ...line, text };
}

/** Signals with every log line redacted; other signals reach sinks only through findings (see redactDraft). */
export function redactSignals(signals: Signal[], redact: Redactor): Signal[] {
  return signals.map((s) => {
    if (s.type !== 'log') return s;
    const line = redactLogLine(s.line, redact);
    return line === s.line ? s : { ...s, line };
  });
}

/** Redacts everything of a finding draft that is stored, prompted or exported: title, message, evidence, facts. */
export function redactDraft(d: FindingDraft, redact: Redactor): void {
  d.title = redact(d.title);
  d.message = redact(d.message);
  d.evidence = d.evidence.map((e) => {
    const text = redact(e.text);
    return text === e.text ? e : { ...e, text };
  });
  if (d.facts) {
    for (const [k, v] of Object.entries(d.facts)) if (typeof v === 'string') d.facts[k] = redact(v);
  }
}

/** A diagnosis with its texts redacted: the model only saw redacted text, this holds its answer to the same rules. */
export function redactDiagnosis(d: Diagnosis, redact: Redactor): Diagnosis {
  return {
    ...d,
    summary: redact(d.summary),
    probableCause: redact(d.probableCause),
    nextSteps: d.nextSteps.map(redact),
    commands: d.commands.map(redact),
  };
}

const NAMED_SECRET = new RegExp(`^${SECRET_NAME}$`);

/** True when a field or variable name says its value is a secret (`DB_PASSWORD`, `apiKey`, `restricted_key`). */
export function isSecretName(name: string): boolean {
  return NAMED_SECRET.test(name) && !isNonSecretKeyName(name);
}

/**
 * A deep copy of a Kubernetes object (or any JSON) with secrets redacted:
 * every string through `redact`, the value of a field whose name is a secret
 * name, the `value` of an env entry whose `name` is one, and JSON held in a
 * string (the `last-applied-configuration` annotation) redacted the same way.
 */
export function redactJson<T>(value: T, redact: Redactor): T {
  const walk = (v: unknown, key: string | undefined): unknown => {
    if (typeof v === 'string') {
      if (key !== undefined && isSecretName(key) && !skipValue(v)) return '[REDACTED:secret-value]';
      const t = v.trimStart();
      if (t.startsWith('{') || t.startsWith('[')) {
        try {
          return JSON.stringify(walk(JSON.parse(v) as unknown, undefined));
        } catch {
          // Not JSON after all: redacted as text.
        }
      }
      return redact(v);
    }
    if (Array.isArray(v)) return v.map((x) => walk(x, undefined));
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const envSecret = typeof o.name === 'string' && typeof o.value === 'string' && isSecretName(o.name) && !skipValue(o.value);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) out[k] = envSecret && k === 'value' ? '[REDACTED:secret-value]' : walk(x, k);
      return out;
    }
    return v;
  };
  return walk(value, undefined) as T;
}
