/**
 * The one access check in front of every route (one fastify onRequest hook,
 * registered before any route, so routes added later are covered by default;
 * the model-use cap runs as a preHandler, once the body is validated):
 *
 * 1. the path must be canonical (400 BAD_PATH), so it is authorised as served;
 * 2. {@link OPEN_PATHS} pass;
 * 3. connections over the node-local socket are the identity "local socket";
 * 4. otherwise, with an authenticator, a bearer token is required (401
 *    UNAUTHENTICATED), its holder must be allowed the path and verb (403
 *    FORBIDDEN), and a failed check is 503 AUTH_UNAVAILABLE, never an allow;
 * 5. a token bucket per identity (taken before authorisation) and one per
 *    client address for failed authentications (checked before any review),
 *    so neither random tokens nor random paths can flood the API server with
 *    reviews (429 RATE_LIMITED with Retry-After);
 * 6. routes whose config says `modelUse` admit a few running requests per
 *    identity (429 TOO_MANY_MODEL_REQUESTS);
 * 7. a route that calls other routes in-process (MCP tools) makes those inner
 *    requests as its caller: {@link delegationHeaders} names the caller's
 *    identity, honoured only on injected requests, and the inner path is
 *    authorised for that identity like any other.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ConcurrencyLimiter, RateLimiter } from './limits.js';
import { nonCanonicalPath, OPEN_PATHS, verbFor } from './policy.js';
import type { ApiServing } from './serve.js';
import type { Authenticator, AuthzResult, Identity, Refusal } from './types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; null on open paths. */
    identity: Identity | null;
  }
  interface FastifyContextConfig {
    /** The route runs the local model (always, or when the function says so): capped per identity. */
    modelUse?: boolean | (() => boolean);
  }
}

/** Options of {@link installAccess}. */
export interface AccessOptions {
  /** How tokens are checked; null serves without authentication (host mode on loopback, or allowUnauthenticated). */
  authenticator: Authenticator | null;
  /** Sustained requests per second per identity (and failed authentications per client address). Defaults to 20. */
  requestsPerSecond?: number;
  /** Requests above the sustained rate allowed at once. Defaults to 60. */
  burst?: number;
  /** Model requests one identity may have running at once. Defaults to 1. */
  modelRequestsPerIdentity?: number;
  /** Clock for the rate limiter. Defaults to Date.now. */
  now?: () => number;
  logger?: Logger;
}

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

/** A route as registered: method and URL pattern. */
export interface RouteEntry {
  method: string;
  url: string;
}

const ROUTES = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route of an app built with {@link installAccess}, as registered (tests compare them with the shipped ClusterRoles). */
export function registeredRoutes(app: FastifyInstance): readonly RouteEntry[] {
  return ROUTES.get(app) ?? [];
}

/** Header of an inner request that acts for the outer request's caller. */
const DELEGATION_HEADER = 'x-nodesage-delegation';
/** Per app: delegation handle → the identity it stands for, while the outer request is open. */
const DELEGATIONS = new WeakMap<FastifyInstance, Map<string, Identity>>();

/**
 * Headers for in-process requests (`app.inject`) made on behalf of `req`'s
 * caller: they carry the caller's identity, so a caller on the node-local
 * socket (no token) gets the same answers from the inner routes as from the
 * outer one, and an authenticated caller is not reviewed again. The handle is
 * random, works only on injected requests, and ends when `req`'s connection closes.
 */
export function delegationHeaders(app: FastifyInstance, req: FastifyRequest): Record<string, string> {
  const identity = req.identity;
  const map = DELEGATIONS.get(app);
  if (!identity || !map) return {};
  const handle = randomBytes(18).toString('base64url');
  map.set(handle, identity);
  req.raw.once('close', () => map.delete(handle));
  return { [DELEGATION_HEADER]: handle };
}

/** The refusal when an access check itself fails: never an allow. */
const CHECK_FAILED: Refusal = { status: 503, code: 'AUTH_UNAVAILABLE', message: 'the access check failed; see the daemon log' };

const LOCAL_SOCKET: Identity = Object.freeze({ name: 'local socket', groups: [], via: 'socket' as const });

function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(h);
  return m ? m[1]! : null;
}

/** The key of an identity's limits: unauthenticated callers are told apart by address. */
function identityKey(req: FastifyRequest, identity: Identity): string {
  return identity.via === 'none' ? `address ${req.socket.remoteAddress ?? 'local'}` : `${identity.via} ${identity.name}`;
}

/** Registers the access hooks. Call before any route is added. */
export function installAccess(app: FastifyInstance, opts: AccessOptions, serving: ApiServing | undefined, sendError: SendError): void {
  const rate = new RateLimiter(opts.requestsPerSecond ?? 20, opts.burst ?? 60, opts.now);
  // Failed authentications per client address, so random tokens cannot make the agent flood the API server with reviews.
  const failures = new RateLimiter(opts.requestsPerSecond ?? 20, opts.burst ?? 60, opts.now);
  const models = new ConcurrencyLimiter(opts.modelRequestsPerIdentity ?? 1);
  const refuse = (reply: FastifyReply, r: Refusal) => {
    if (r.status === 401) reply.header('www-authenticate', 'Bearer realm="nodesage"');
    if (r.status === 503) reply.header('retry-after', '10');
    return sendError(reply, r.status, r.code, r.message);
  };
  const tooMany = (reply: FastifyReply, wait: number, message: string) => {
    reply.header('retry-after', String(Math.max(1, Math.ceil(wait))));
    return sendError(reply, 429, 'RATE_LIMITED', message);
  };

  const limit = (req: FastifyRequest, reply: FastifyReply, identity: Identity): FastifyReply | undefined => {
    const wait = rate.take(identityKey(req, identity));
    return wait > 0 ? tooMany(reply, wait, `too many requests from ${identity.name}; retry later`) : undefined;
  };

  const routes: RouteEntry[] = [];
  ROUTES.set(app, routes);
  const delegations = new Map<string, Identity>();
  DELEGATIONS.set(app, delegations);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method: String(method), url: r.url });
  });
  app.decorateRequest('identity', null);
  // Authenticators answer refusals rather than throw; if one throws anyway it is a refusal too.
  const authorize = async (authenticator: Authenticator, identity: Identity, path: string, method: string): Promise<AuthzResult> => {
    try {
      return await authenticator.authorize(identity, path, verbFor(method));
    } catch (err) {
      opts.logger?.error({ err }, 'access check failed');
      return { ok: false, ...CHECK_FAILED };
    }
  };
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const bad = nonCanonicalPath(path);
    if (bad) return sendError(reply, 400, 'BAD_PATH', bad);
    if (OPEN_PATHS.includes(path)) return;

    const address = req.socket.remoteAddress ?? 'local';
    const handle = req.headers[DELEGATION_HEADER];
    // A real connection never acts for someone else, whatever it sends.
    const delegated = typeof handle === 'string' && !(req.raw.socket instanceof Socket) ? delegations.get(handle) : undefined;
    let identity: Identity;
    if (delegated) {
      identity = delegated;
      if (opts.authenticator && delegated.via !== 'socket' && delegated.via !== 'none') {
        const authz = await authorize(opts.authenticator, delegated, path, req.method);
        if (!authz.ok) return refuse(reply, authz);
      }
    } else if (serving?.isLocal(req.raw.socket)) {
      identity = LOCAL_SOCKET;
    } else if (!opts.authenticator) {
      identity = { name: `anonymous ${address}`, groups: [], via: 'none' };
    } else {
      const wait = failures.wait(address);
      if (wait > 0) return tooMany(reply, wait, `too many failed authentications from ${address}; retry later`);
      const token = bearerToken(req);
      if (!token) {
        failures.take(address);
        return refuse(reply, { status: 401, code: 'UNAUTHENTICATED', message: 'a bearer token is required (Authorization: Bearer <token>)' });
      }
      try {
        const authn = await opts.authenticator.authenticate(token);
        if (!authn.ok) {
          if (authn.status === 401) failures.take(address);
          return refuse(reply, authn);
        }
        // Limited before authorisation: a caller trying many paths cannot flood the API server with reviews.
        const limited = limit(req, reply, authn.identity);
        if (limited) return limited;
        const authz = await authorize(opts.authenticator, authn.identity, path, req.method);
        if (!authz.ok) return refuse(reply, authz);
        req.identity = authn.identity;
        return;
      } catch (err) {
        opts.logger?.error({ err }, 'access check failed');
        return refuse(reply, CHECK_FAILED);
      }
    }
    const limited = limit(req, reply, identity);
    if (limited) return limited;
    req.identity = identity;
  });

  // After the body is parsed and validated, so bad input is a 400 whatever else runs.
  app.addHook('preHandler', async (req, reply) => {
    const identity = req.identity;
    if (!identity) return;
    const key = identityKey(req, identity);
    const modelUse = req.routeOptions.config?.modelUse;
    if (modelUse === true || (typeof modelUse === 'function' && modelUse())) {
      const release = models.tryAcquire(key);
      if (!release) {
        reply.header('retry-after', '10');
        return sendError(reply, 429, 'TOO_MANY_MODEL_REQUESTS', `${identity.name} already has ${opts.modelRequestsPerIdentity ?? 1} model request(s) running; wait for them to finish`);
      }
      reply.raw.once('close', release);
    }
  });
}
