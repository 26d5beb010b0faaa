/**
 * Routes for people and tools beyond the findings API: the web page at `/`
 * (its assets ship inside the package; no CDN, for air-gapped sites), the
 * timeline, the host-metrics history, feedback on diagnoses and its JSONL
 * export (a site's own dataset for judging models), and the OpenAPI document
 * of every route.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { SINCE_PATTERN } from '../core/since.js';
import { ApiErrorSchema, FeedbackSchema, MetricsHistorySchema, TimelineSchema, responseSchema } from '../core/contract.js';
import type { DiagnosisInput, Finding, FindingFacts } from '../core/types.js';
import { buildPrompt } from '../diagnoser/prompt.js';
import { ruleHint } from '../diagnoser/rule-hint.js';
import type { Store } from '../store/store.js';
import { toDiagnosisInput } from '../tracker/tracker.js';
import { HistoryText } from './history-text.js';
import { type PageCache, sendCached } from './page-cache.js';
import { projectToSchema } from './schema-project.js';
import { sendBadDate, sendError, sinceToIso } from './server.js';

/** What the routes need. */
export interface SurfaceContext {
  store: Store;
  /** This node's name (commands in rebuilt prompts name it). */
  nodeName: () => string;
  /** Where bodies are kept between requests (shared with the findings listing). */
  pages: PageCache;
}

/** Host metric series the history serves, by their public name. */
const HISTORY_SERIES = {
  cpu: { metric: 'cpu_percent', unit: 'percent', help: 'CPU busy, all cores' },
  memory: { metric: 'memory_available_percent', unit: 'percent', help: 'memory in use (100 - available)' },
  disk: { metric: 'fs_used_percent', unit: 'percent', help: 'space used per filesystem' },
  inodes: { metric: 'inodes_used_percent', unit: 'percent', help: 'inodes used per filesystem' },
  load: { metric: 'load1', unit: 'load', help: '1-minute load average' },
} as const;

const require = createRequire(import.meta.url);
const WEB_DIR = new URL('./web/', import.meta.url);
/** Files of the page, by the name it asks for, with their type. */
const WEB_FILES: Record<string, { file: () => string | URL; type: string }> = {
  'app.js': { file: () => new URL('app.js', WEB_DIR), type: 'text/javascript; charset=utf-8' },
  // The event-stream parser app.js imports (a module: browsers need a JavaScript type for it); the CLI imports it too.
  'sse.js': { file: () => new URL('sse.js', WEB_DIR), type: 'text/javascript; charset=utf-8' },
  'style.css': { file: () => new URL('style.css', WEB_DIR), type: 'text/css; charset=utf-8' },
  'uPlot.min.js': { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** Everything the page loads comes from the daemon itself; nothing inline runs. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Adds the page, timeline, metrics history, feedback and export routes. */
export function registerSurfaceRoutes(app: FastifyInstance, ctx: SurfaceContext): void {
  const errorBody = responseSchema(ApiErrorSchema);

  const cache = new Map<string, Buffer>();
  const asset = (name: string): Buffer => {
    let b = cache.get(name);
    if (!b) {
      const spec = WEB_FILES[name];
      b = readFileSync(spec ? spec.file() : new URL(name, WEB_DIR));
      cache.set(name, b);
    }
    return b;
  };
  const timelineSchema = responseSchema(TimelineSchema);
  const historySchema = responseSchema(MetricsHistorySchema);
  const { pages } = ctx;
  const history = new HistoryText();

  app.get('/', { schema: described('the web dashboard (HTML)') }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).header('cache-control', 'no-cache').send(asset('index.html')),
  );
  // One route per file (no parameter): each is an open path of the access check, by its exact name.
  for (const file of Object.keys(WEB_FILES)) {
    app.get(`/ui/${file}`, { schema: described(`a file of the web dashboard (${file})`) }, async (_req, reply) =>
      reply.type(WEB_FILES[file]!.type).header('cache-control', 'no-cache').send(asset(file)),
    );
  }

  app.get(
    '/v1/timeline',
    {
      schema: {
        summary: 'findings opened, resolved, reopened and diagnosed, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { since: { type: 'string', pattern: SINCE_PATTERN }, limit: { type: 'integer', minimum: 1, maximum: 1000 } },
        },
        response: { 200: timelineSchema, 400: errorBody },
      },
    },
    async (req, reply) => {
      const q = req.query as { since?: string; limit?: number };
      const asked = sinceToIso(q.since ?? '24h');
      if (asked === null) return sendBadDate(reply, 'since', q.since);
      // Honoured to the second (rounded down), so every request of one second asks the same query and the
      // dashboard's polling shares one body until the history changes.
      const since = new Date(Math.floor(Date.parse(asked) / 1000) * 1000).toISOString();
      const page = pages.get(JSON.stringify(['timeline', since, q.limit]), ctx.store.generation, () =>
        JSON.stringify(projectToSchema({ items: ctx.store.listTimeline({ since, ...(q.limit ? { limit: q.limit } : {}) }) }, timelineSchema)),
      );
      return sendCached(req, reply, page, 'application/json; charset=utf-8');
    },
  );

  app.get(
    '/v1/metrics/history',
    {
      schema: {
        summary: 'a host metric over time (1-minute means for up to 24 h, 15-minute beyond)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['series'],
          properties: { series: { type: 'string', enum: Object.keys(HISTORY_SERIES) }, since: { type: 'string', pattern: SINCE_PATTERN } },
        },
        response: { 200: historySchema, 400: errorBody },
      },
    },
    async (req, reply) => {
      const q = req.query as { series: keyof typeof HISTORY_SERIES; since?: string };
      const spec = HISTORY_SERIES[q.series];
      // One clock reading for both, so `since=24h` is always exactly 24 h (1-minute points), never 24 h and a millisecond.
      const nowMs = Date.now();
      const asked = sinceToIso(q.since ?? '24h', nowMs);
      if (asked === null) return sendBadDate(reply, 'since', q.since);
      const sinceMs = Date.parse(asked);
      const resolution = nowMs - sinceMs <= 86_400_000 ? 60 : 900;
      // Buckets start on multiples of the resolution: the first one shown is the first starting at or after since,
      // so every since up to that start gives the same answer (one body per bucket, until samples change).
      const firstBucket = Math.ceil(sinceMs / 1000 / resolution) * resolution;
      const page = pages.get(JSON.stringify(['history', q.series, resolution, firstBucket]), ctx.store.samplesGeneration, () => {
        const lines = history.lines(ctx.store, spec.metric, resolution, firstBucket, { label: (l) => l || q.series, invert: q.series === 'memory' });
        return `${JSON.stringify({ series: q.series, unit: spec.unit, help: spec.help, resolutionSeconds: resolution }).slice(0, -1)},"lines":${lines}}`;
      });
      return sendCached(req, reply, page, 'application/json; charset=utf-8');
    },
  );

  app.post(
    '/v1/findings/:id/feedback',
    {
      schema: {
        summary: "a person's verdict on a finding's diagnosis: helpful or not, with an optional note",
        params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } } },
        body: {
          type: 'object',
          required: ['helpful'],
          additionalProperties: false,
          properties: { helpful: { type: 'boolean' }, note: { type: 'string', maxLength: 2000 } },
        },
        response: { 201: responseSchema(FeedbackSchema), 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const body = req.body as { helpful: boolean; note?: string };
      const f = ctx.store.getFinding(id);
      if (!f) return sendError(reply, 404, 'FINDING_NOT_FOUND', `no finding with id ${id}`);
      const at = new Date().toISOString();
      const note = body.note?.trim() ? body.note.trim() : null;
      // The facts travel with the snapshot: the export rebuilds the prompt from them.
      const rowId = ctx.store.addFeedback({ findingId: id, at, helpful: body.helpful, note, finding: toDiagnosisInput(f) });
      return reply.code(201).send({ id: rowId, findingId: id, at, helpful: body.helpful, note });
    },
  );

  app.get(
    '/v1/export/feedback.jsonl',
    { schema: described('every feedback as one JSON line: the prompt, evidence, diagnosis and verdict (a dataset for judging models)') },
    async (req, reply) => {
      const nodeName = ctx.nodeName();
      const generation = ctx.store.feedbackGeneration;
      const type = 'application/x-ndjson; charset=utf-8';
      reply.header('content-disposition', 'attachment; filename="nodesage-feedback.jsonl"');
      // Until a verdict is added the export is the same bytes: a small one is kept, a large one streams each time.
      const kept = pages.peek(`feedback\0${nodeName}`, generation);
      if (kept) return sendCached(req, reply, kept, type);
      async function* lines() {
        for (const r of ctx.store.iterateFeedback()) {
          const stored = r.finding as Finding & { facts?: FindingFacts | null };
          const finding: DiagnosisInput = { ...stored, facts: stored.facts ?? null };
          const prompt = await buildPrompt(finding, { hint: ruleHint(finding, { nodeName }) });
          const { evidence, diagnosis, facts: _facts, ...headline } = finding;
          yield `${JSON.stringify({
            id: r.id,
            at: r.at,
            finding: headline,
            prompt: { system: prompt.system, user: prompt.user, promptVersion: prompt.promptVersion },
            evidence,
            diagnosis,
            feedback: { helpful: r.helpful, note: r.note },
          })}\n`;
        }
      }
      async function* keeping() {
        const parts: Buffer[] = [];
        let size = 0;
        for await (const line of lines()) {
          const bytes = Buffer.from(line);
          size += bytes.length;
          if (size <= pages.maxLength) parts.push(bytes);
          yield bytes;
        }
        if (size <= pages.maxLength) pages.set(`feedback\0${nodeName}`, generation, Buffer.concat(parts));
      }
      return reply.type(type).send(Readable.from(keeping()));
    },
  );
}

/** A schema that only describes a route (its `summary` goes into the OpenAPI document). */
export function described(summary: string): FastifySchema {
  return { summary } as FastifySchema;
}

/** Collects every route as it is added (call before adding any), for the OpenAPI document. */
export function collectRoutes(app: FastifyInstance): RouteOptions[] {
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (r) => {
    if (r.method !== 'HEAD' && !(Array.isArray(r.method) && r.method.includes('HEAD') && r.method.length === 1)) routes.push(r);
  });
  return routes;
}

type Json = Record<string, unknown>;

/** Summaries of routes registered without one (their schemas predate the OpenAPI document). */
const SUMMARIES: Record<string, string> = {
  'GET /healthz': 'liveness',
  'GET /readyz': 'readiness: 200 once the store is open, the first collection ran and a source is healthy',
  'GET /v1/status': "the agent: mode, node, version, each source's health, the model, the store",
  'GET /v1/findings': 'a page of findings, newest first',
  'GET /v1/findings/{id}': 'one finding with its evidence and diagnosis',
  'GET /metrics': 'Prometheus metrics',
  'POST /v1/ask': 'a question about this node, answered with citations (server-sent events with Accept: text/event-stream)',
  'GET /v1/models': 'the local model, OpenAI-compatible',
  'POST /v1/chat/completions': 'chat with the local model, OpenAI-compatible',
  'POST /mcp': 'MCP over streamable HTTP (stateless JSON-RPC)',
  'GET /mcp': 'not allowed: the MCP endpoint is stateless',
};

/** The OpenAPI 3.1 document of the collected routes, built from their JSON schemas. */
export function openApiDocument(routes: readonly RouteOptions[], version: string): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const schema = (r.schema ?? {}) as Json & { querystring?: Json; params?: Json; body?: Json; response?: Record<string, Json>; summary?: string };
    const parameters: Json[] = [];
    for (const [where, s] of [['path', schema.params], ['query', schema.querystring]] as const) {
      const props = (s?.properties ?? {}) as Record<string, Json>;
      const required = new Set((s?.required as string[] | undefined) ?? []);
      for (const [name, p] of Object.entries(props)) parameters.push({ name, in: where, required: where === 'path' || required.has(name), schema: p });
    }
    if (/\{[A-Za-z_]+\}/.test(path) && !schema.params) {
      for (const m of path.matchAll(/\{([A-Za-z_]+)\}/g)) parameters.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
    }
    const responses: Record<string, Json> = {};
    for (const [code, s] of Object.entries(schema.response ?? {})) responses[code] = { description: Number(code) < 400 ? 'success' : 'error', content: { 'application/json': { schema: s } } };
    if (Object.keys(responses).length === 0) responses['200'] = { description: 'success' };
    const op: Json = { operationId: `${String(r.method).toLowerCase()}${path.replace(/[^A-Za-z0-9]+/g, '_')}`, parameters, responses };
    const summary = schema.summary ?? SUMMARIES[`${[r.method].flat().find((m) => m !== 'HEAD')} ${path}`];
    if (summary) op.summary = summary;
    if (schema.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema.body } } };
    for (const m of [r.method].flat()) {
      if (m === 'HEAD') continue;
      const entry = paths[path] ?? {};
      entry[m.toLowerCase()] = op;
      paths[path] = entry;
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'nodesage node API', version, description: 'The node-local API of a nodesage agent. Errors are {"error": {"code", "message"}}.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }, {}],
    paths,
  };
}
