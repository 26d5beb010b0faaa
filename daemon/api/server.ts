/**
 * The node-local HTTP API (fastify). Errors are JSON `{"error": {"code",
 * "message"}}` with stable codes; response schemas drop undeclared fields so
 * nothing leaks by accident.
 */
import Fastify, { type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from './prometheus.js';
import { SINCE_HELP, SINCE_PATTERN, parseSince } from '../core/since.js';
import { ApiErrorSchema, DiagnosisSchema, FindingPageSchema, FindingSchema, HealthSchema, ReadySchema, type Status, StatusSchema, responseSchema } from '../core/contract.js';
import { CATEGORIES, SEVERITIES } from '../core/types.js';
import { CursorError, type FindingQuery, type Store } from '../store/store.js';
import { toPublicFinding } from '../tracker/tracker.js';
import { type AccessOptions, installAccess } from './auth/access.js';
import { type ApiServing, clientError } from './auth/serve.js';
import { registerMcpRoute } from './mcp-route.js';
import { cutSince, listingPage } from './listing.js';
import { CachedBody, PageCache, sendCached } from './page-cache.js';
import { collectRoutes, described, openApiDocument, registerSurfaceRoutes } from './surfaces.js';
import { projectToSchema } from './schema-project.js';

const JSON_TYPE = 'application/json; charset=utf-8';

/** What the API needs from the daemon. */
export interface ApiContext {
  store: Store;
  status(): Status;
  /** Ready once the store is open, the first collection ran and at least one source is healthy. */
  ready(): boolean;
  metrics?: Registry;
  logger?: Logger;
  /** Routes added by later layers (ask, OpenAI-compatible). */
  extraRoutes?: (app: FastifyInstance) => void;
  /** Who may call (one hook in front of every route). Defaults to no authentication, as for in-process tests. */
  access?: AccessOptions;
  /** The HTTP servers (limits, node-local socket). Defaults to fastify's own server. */
  serving?: ApiServing;
}

/**
 * A `since` (RFC3339, or an age such as `1h`) as a normalised ISO time, or
 * null when JavaScript has no such instant (a leap second such as
 * 2016-12-31T23:59:60Z, or a year outside 0000-9999).
 */
export function sinceToIso(since: string, nowMs = Date.now()): string | null {
  try {
    return parseSince(since, nowMs);
  } catch {
    return null;
  }
}

/** 400 BAD_DATE for a time {@link sinceToIso} refused. */
export function sendBadDate(reply: FastifyReply, field: string, value: unknown): FastifyReply {
  return sendError(reply, 400, 'BAD_DATE', `${field}: ${JSON.stringify(value)} is not a time nodesage can use (leap seconds and dates outside years 0000-9999 are refused)`);
}

/** Sends an error in the one JSON shape the API uses. */
export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { code, message } });
}

/** One issue of fastify's (ajv's) validation error. */
interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * A validation failure in words a person can act on: the field, and for an
 * enum the values it takes (ajv alone says only "must be equal to one of the
 * allowed values").
 */
export function validationMessage(err: { validation: ValidationIssue[]; validationContext?: string; message: string }): string {
  const parts = err.validation.map((v) => {
    const field = (v.instancePath.replace(/^\//, '').replaceAll('/', '.') || (v.params.missingProperty as string | undefined)) ?? '';
    const name = field || err.validationContext || 'request';
    if (v.keyword === 'enum') return `${name} must be one of: ${(v.params.allowedValues as unknown[]).join(', ')}`;
    if (v.keyword === 'additionalProperties') return `${err.validationContext ?? 'request'} has an unknown field "${String(v.params.additionalProperty)}"`;
    if (v.keyword === 'required') return `${err.validationContext ?? 'request'} needs "${String(v.params.missingProperty)}"`;
    if (v.keyword === 'pattern' && field.endsWith('since')) return `${name} must be ${SINCE_HELP}`;
    return `${name} ${v.message ?? 'is invalid'}`;
  });
  return parts.length > 0 ? parts.join('; ') : err.message;
}

/** Builds the fastify app (not listening; tests use inject()). */
export function buildApi(ctx: ApiContext): FastifyInstance {
  const app = Fastify({
    ...(ctx.logger ? { loggerInstance: ctx.logger.child({ component: 'api' }) } : { logger: false }),
    bodyLimit: 64 * 1024,
    // Per-request lines would drown the node's log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    ...(ctx.serving ? { serverFactory: ctx.serving.factory } : {}),
    clientErrorHandler: clientError,
    // The router's own refusals (a bad URL, an over-long parameter) in the API's error shape.
    frameworkErrors: (err, _req, reply) =>
      err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? sendError(reply, 414, 'PATH_TOO_LONG', 'a path segment is longer than 100 characters')
        : sendError(reply, 400, 'BAD_PATH', 'the path is not a valid URL'),
  }) as unknown as FastifyInstance;
  // First, so that every route, including those added later, is behind it.
  installAccess(app, ctx.access ?? { authenticator: null, requestsPerSecond: 1e9, burst: 1e9, modelRequestsPerIdentity: 1e9 }, ctx.serving, sendError);
  // Before any route: the OpenAPI document is derived from every registered route's schema.
  const routes = collectRoutes(app);

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, _req, reply) => {
    if (err.validation) return sendError(reply, 400, 'BAD_REQUEST', validationMessage(err as Error & { validation: ValidationIssue[]; validationContext?: string }));
    if (err instanceof CursorError) return sendError(reply, 400, err.code, err.message);
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) ctx.logger?.error({ err }, 'request failed');
    const code = status === 413 ? 'BODY_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status >= 500 ? 'INTERNAL' : (err.code ?? 'BAD_REQUEST');
    return sendError(reply, status, code, status >= 500 ? 'internal error; see the daemon log' : err.message);
  });

  // Response schemas come from the contract (computed once, on the first build).
  const errorBody = responseSchema(ApiErrorSchema);
  const findingPage = responseSchema(FindingPageSchema);
  const diagnosisSchema = responseSchema(DiagnosisSchema);
  app.get('/healthz', { schema: { response: { 200: responseSchema(HealthSchema) } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { response: { 200: responseSchema(ReadySchema), 503: errorBody } } }, async (_req, reply) => {
    if (!ctx.ready()) return sendError(reply, 503, 'NOT_READY', 'store not open, first collection not finished, or no source is healthy');
    return { status: 'ready' };
  });

  app.get('/v1/status', { schema: { response: { 200: responseSchema(StatusSchema) } } }, async () => ctx.status());

  // One cache for every read route's bodies (listing pages, timeline, metrics history, feedback export).
  const pages = new PageCache();
  app.get(
    '/v1/findings',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { type: 'string', enum: ['open', 'resolved'] },
            severity: { type: 'string', enum: [...SEVERITIES] },
            category: { type: 'string', enum: [...CATEGORIES] },
            since: { type: 'string', pattern: SINCE_PATTERN },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
            cursor: { type: 'string', maxLength: 512 },
          },
        },
        response: { 200: findingPage, 400: errorBody },
      },
    },
    async (req, reply) => {
      const { since: asked, ...query } = req.query as FindingQuery;
      const since = asked ? sinceToIso(asked) : undefined;
      if (since === null) return sendBadDate(reply, 'since', asked);
      // One body per query without `since`; a page narrowed by `since` is cut from it (api/listing.ts).
      const key = JSON.stringify([query.status, query.severity, query.category, query.limit, query.cursor]);
      // SQLite writes each finding's JSON (store/findings.ts PUBLIC_HEAD); only a diagnosis is projected here.
      const { page, index } = listingPage(pages, key, ctx.store.generation, () => ctx.store.listFindingsJson(query), (d) =>
        JSON.stringify(projectToSchema(JSON.parse(d), diagnosisSchema)),
      );
      const body = since === undefined ? page : cutSince(page, index, since);
      return body instanceof CachedBody ? sendCached(req, reply, body, JSON_TYPE) : reply.type(JSON_TYPE).send(body);
    },
  );

  app.get(
    '/v1/findings/:id',
    {
      schema: {
        params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } } },
        response: { 200: responseSchema(FindingSchema), 404: errorBody, 400: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const f = ctx.store.getFinding(id);
      if (!f) return sendError(reply, 404, 'FINDING_NOT_FOUND', `no finding with id ${id}`);
      return toPublicFinding(f);
    },
  );

  app.get('/metrics', async (_req, reply) => {
    if (!ctx.metrics) return sendError(reply, 404, 'NOT_FOUND', 'metrics are disabled');
    const body = await ctx.metrics.metrics();
    return reply.type(ctx.metrics.contentType).send(body);
  });

  registerSurfaceRoutes(app, { store: ctx.store, nodeName: () => ctx.status().nodeName, pages });
  registerMcpRoute(app, () => ctx.status().version);
  ctx.extraRoutes?.(app);
  app.get('/v1/openapi.json', { schema: described('this document: every route with its parameters and answers') }, async () =>
    openApiDocument(routes, ctx.status().version),
  );
  return app;
}
