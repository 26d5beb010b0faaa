/**
 * What the access check decides on: the open paths, the verb of a request
 * and the ClusterRoles the DaemonSet ships. One list serves the daemon, the
 * manifests (daemonset/base/access-roles.yaml, compared by a test) and the
 * README.
 *
 * Callers are authorised the way kube-rbac-proxy does it
 * (brancz/kube-rbac-proxy pkg/authz/auth.go, pkg/filters/auth.go): a
 * SubjectAccessReview with `nonResourceAttributes` {path, verb}, the verb from
 * the HTTP method, so operators grant access with plain RBAC `nonResourceURLs`
 * rules, as they do for Prometheus scraping `/metrics`.
 */

/** The dashboard's page and files: no node data in them (the page fetches it with the user's token), so a browser can load the page before it has a token to present. */
export const PAGE_PATHS: readonly string[] = ['/', '/ui/app.js', '/ui/sse.js', '/ui/style.css', '/ui/uPlot.min.js', '/ui/uPlot.min.css'];

/** Paths served to anyone: the kubelet's probes carry no token, nor does a browser opening the dashboard. */
export const OPEN_PATHS: readonly string[] = ['/healthz', '/readyz', ...PAGE_PATHS];

/** One RBAC rule on non-resource URLs (a trailing `*` matches any rest of the path, as RBAC does). */
export interface NonResourceRule {
  verbs: string[];
  nonResourceURLs: string[];
}

/** A ClusterRole shipped in daemonset/base/access-roles.yaml. */
export interface AccessRole {
  name: string;
  /** Who it is for, one line. */
  purpose: string;
  rules: NonResourceRule[];
}

/** The ClusterRoles operators bind to grant access to the agent's API. */
export const ACCESS_ROLES: readonly AccessRole[] = [
  {
    name: 'nodesage-reader',
    purpose: 'read findings, status and history, and ask questions',
    rules: [
      {
        verbs: ['get'],
        nonResourceURLs: ['/v1/status', '/v1/findings', '/v1/findings/*', '/v1/timeline', '/v1/metrics/history', '/v1/export/feedback.jsonl', '/v1/openapi.json', '/mcp'],
      },
      // Questions, feedback on a diagnosis (POST /v1/findings/{id}/feedback) and the read-only MCP tools.
      { verbs: ['create'], nonResourceURLs: ['/v1/ask', '/v1/findings/*', '/mcp'] },
    ],
  },
  {
    name: 'nodesage-model-user',
    purpose: "use the node's model through the OpenAI-compatible routes",
    rules: [
      { verbs: ['get'], nonResourceURLs: ['/v1/models', '/v1/models/*'] },
      { verbs: ['create'], nonResourceURLs: ['/v1/chat/completions'] },
    ],
  },
  {
    name: 'nodesage-metrics',
    purpose: 'scrape Prometheus metrics',
    rules: [{ verbs: ['get'], nonResourceURLs: ['/metrics'] }],
  },
];

/** A role's short name (the ClusterRole name without `nodesage-`), as static tokens' scopes name it. */
const scopeOf = (role: AccessRole): string => role.name.replace(/^nodesage-/, '');

/** Short names of the roles, as static tokens' scopes name them. */
export const ROLE_SCOPES: readonly string[] = ACCESS_ROLES.map(scopeOf);

/** True when a rule's URL pattern covers `path` (a trailing `*` matches any rest, as RBAC does). */
function urlMatches(pattern: string, path: string): boolean {
  return pattern.endsWith('*') ? path.startsWith(pattern.slice(0, -1)) : pattern === path;
}

/** True when one of the roles named by `scopes` (see {@link ROLE_SCOPES}) grants `verb` on `path`. */
export function scopesAllow(scopes: readonly string[], path: string, verb: string): boolean {
  return ACCESS_ROLES.some(
    (role) =>
      scopes.includes(scopeOf(role)) &&
      role.rules.some((rule) => rule.verbs.includes(verb) && rule.nonResourceURLs.some((u) => urlMatches(u, path))),
  );
}

/** The verb a SubjectAccessReview carries for an HTTP method (HEAD reads like GET). */
export function verbFor(method: string): string {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return method.toLowerCase();
  }
}

// Unreserved characters plus a few sub-delimiters; no percent-encoding, so the
// path authorised is byte for byte the path the router matches.
const SEGMENT = /^[A-Za-z0-9._~@:+,!-]+$/;

/**
 * Why a path is not in canonical form, or null when it is. Dot segments,
 * empty segments (`//`), percent-encoding and backslashes are refused before
 * any check, so `/v1/findings/../status` can never be authorised as one path
 * and served as another.
 */
export function nonCanonicalPath(path: string): string | null {
  if (!path.startsWith('/')) return 'the path must start with /';
  if (path === '/') return null;
  const segments = path.slice(1).split('/');
  for (const [i, s] of segments.entries()) {
    if (s === '' && i === segments.length - 1) continue; // one trailing slash
    if (s === '') return 'empty path segments (//) are not allowed';
    if (s === '.' || s === '..') return 'dot segments (. and ..) are not allowed';
    if (!SEGMENT.test(s)) return 'only letters, digits and . _ ~ @ : + , ! - are allowed in a path (no percent-encoding)';
  }
  return null;
}
