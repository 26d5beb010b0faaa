/**
 * Callers checked by the Kubernetes API server: TokenReview
 * (authentication.k8s.io/v1) says who holds a bearer token,
 * SubjectAccessReview (authorization.k8s.io/v1) on the request's
 * non-resource URL and verb says whether they may. The agent's service
 * account needs `create` on both (ClusterRole system:auth-delegator).
 *
 * Answers are cached: allowed ones for `allowTtlMs`, rejected ones for
 * `denyTtlMs`. When the API server cannot answer, a cached answer up to
 * `staleMs` old still applies and anything else is refused with 503: an error
 * never turns into an allow.
 */
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpStatusError } from '../../collectors/kube/errors.js';
import { KubeTransport } from '../../collectors/kube/transport.js';
import type { Authenticator, AuthnResult, AuthzResult, Identity } from './types.js';

/** Options of {@link KubeReviewer}. */
export interface KubeReviewerOptions {
  /** Milliseconds an allowed answer is reused. Defaults to 60000. */
  allowTtlMs?: number;
  /** Milliseconds a rejected answer is reused. Defaults to 10000. */
  denyTtlMs?: number;
  /** With the API server unreachable, cached answers up to this old still apply. Defaults to 3600000. */
  staleMs?: number;
  /** Limit of one review call. Defaults to 5000. */
  timeoutMs?: number;
  /** Cached answers kept per kind (oldest dropped first). Defaults to 10000. */
  maxEntries?: number;
  /** Clock. Defaults to Date.now. */
  now?: () => number;
}

interface Entry<T> {
  value: T;
  at: number;
  ttl: number;
}

/** A bounded map of answers with their age; insertion order doubles as age order. */
class AnswerCache<T> {
  readonly #map = new Map<string, Entry<T>>();
  constructor(private readonly max: number) {}

  get(key: string): Entry<T> | undefined {
    return this.#map.get(key);
  }

  set(key: string, value: T, at: number, ttl: number): void {
    this.#map.delete(key);
    this.#map.set(key, { value, at, ttl });
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as string);
  }
}

/** Why a review call failed, in words for the 503 message. */
function describe(err: unknown): string {
  if (err instanceof HttpStatusError) {
    if (err.status === 401 || err.status === 403) {
      return `the API server refused the review (HTTP ${err.status}): the agent's service account needs the system:auth-delegator ClusterRole`;
    }
    return `the API server answered HTTP ${err.status}`;
  }
  const e = err as { code?: unknown; cause?: { code?: unknown }; name?: string };
  // An aborted fetch is a DOMException whose numeric `code` says nothing useful.
  const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const code = timedOut ? 'timeout' : (text(e.cause?.code) ?? text(e.code));
  return `the API server is unreachable${code ? ` (${code})` : ''}`;
}

type Authn = AuthnResult;

/** The fields of a TokenReview answer read here. */
interface TokenReviewAnswer {
  status?: { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}

/** The fields of a SubjectAccessReview answer read here. */
interface AccessReviewAnswer {
  status?: { allowed?: boolean; denied?: boolean };
}

/** TokenReview and SubjectAccessReview through @kubernetes/client-node's KubeConfig and fetch, with caching. */
export class KubeReviewer implements Authenticator {
  readonly #api: KubeTransport;
  readonly #allowTtl: number;
  readonly #denyTtl: number;
  readonly #stale: number;
  readonly #now: () => number;
  readonly #tokens: AnswerCache<Authn>;
  readonly #access: AnswerCache<AuthzResult>;
  readonly #pending = new Map<string, Promise<unknown>>();

  constructor(kc: KubeConfig, opts: KubeReviewerOptions = {}) {
    this.#api = new KubeTransport(kc, { requestTimeoutMs: opts.timeoutMs ?? 5_000 });
    this.#allowTtl = opts.allowTtlMs ?? 60_000;
    this.#denyTtl = opts.denyTtlMs ?? 10_000;
    this.#stale = opts.staleMs ?? 3_600_000;
    this.#now = opts.now ?? Date.now;
    this.#tokens = new AnswerCache(opts.maxEntries ?? 10_000);
    this.#access = new AnswerCache(opts.maxEntries ?? 10_000);
  }

  authenticate(token: string): Promise<AuthnResult> {
    // The cache holds a digest, never the token itself.
    const key = createHash('sha256').update(token).digest('hex');
    return this.#cached(this.#tokens, key, 'the token', async () => {
      const r = await this.#api.send<TokenReviewAnswer>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token },
      });
      const user = r.status?.user;
      if (!r.status?.authenticated || !user?.username) {
        return { ok: false, status: 401, code: 'UNAUTHENTICATED', message: 'the bearer token was rejected by the Kubernetes API server (TokenReview)' } as const;
      }
      const identity: Identity = { name: user.username, groups: user.groups ?? [], via: 'kubernetes' };
      if (user.uid) identity.uid = user.uid;
      if (user.extra) identity.extra = user.extra;
      return { ok: true, identity } as const;
    });
  }

  authorize(identity: Identity, path: string, verb: string): Promise<AuthzResult> {
    const key = JSON.stringify([identity.name, identity.uid ?? '', [...identity.groups].sort(), identity.extra ?? {}, path, verb]);
    return this.#cached(this.#access, key, `${identity.name}'s access`, async () => {
      const r = await this.#api.send<AccessReviewAnswer>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: identity.name,
          groups: identity.groups,
          ...(identity.uid ? { uid: identity.uid } : {}),
          ...(identity.extra ? { extra: identity.extra } : {}),
          nonResourceAttributes: { path, verb },
        },
      });
      if (r.status?.allowed === true && r.status.denied !== true) return { ok: true } as const;
      return {
        ok: false,
        status: 403,
        code: 'FORBIDDEN',
        message: `${identity.name} may not ${verb} ${path}: grant it with a ClusterRole rule {nonResourceURLs: ["${path}"], verbs: ["${verb}"]} (see the nodesage-* ClusterRoles)`,
      } as const;
    });
  }

  /** Fresh cached answer, else one review call per key at a time, else a stale answer when the server fails, else 503. */
  async #cached<T extends { ok: boolean }>(cache: AnswerCache<T>, key: string, what: string, review: () => Promise<T>): Promise<T> {
    const hit = cache.get(key);
    const now = this.#now();
    if (hit && now - hit.at < hit.ttl) return hit.value;
    const pending = this.#pending.get(key) as Promise<T> | undefined;
    if (pending) return pending;
    const call = (async (): Promise<T> => {
      try {
        const value = await review();
        cache.set(key, value, this.#now(), value.ok ? this.#allowTtl : this.#denyTtl);
        return value;
      } catch (err) {
        const stale = cache.get(key);
        if (stale && this.#now() - stale.at <= this.#stale) return stale.value;
        return {
          ok: false,
          status: 503,
          code: 'AUTH_UNAVAILABLE',
          message: `cannot check ${what}: ${describe(err)}; only callers checked in the last ${Math.round(this.#stale / 1000)} s are served until it answers`,
        } as unknown as T;
      } finally {
        this.#pending.delete(key);
      }
    })();
    this.#pending.set(key, call);
    return call;
  }
}
