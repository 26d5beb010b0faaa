/**
 * OpenAI-compatible endpoints over the node's local model, so existing tools
 * and SDKs (the official `openai` client, LangChain, editors) can talk to it:
 * `GET /v1/models`, `GET /v1/models/:model` and `POST /v1/chat/completions`
 * (plain and `stream: true` server-sent events ending with `data: [DONE]`).
 *
 * Decisions, where OpenAI's API leaves room or the engine differs:
 * - `model` may be omitted (the loaded model answers); any other id than the
 *   loaded one is 404 `model_not_found`, so a tool configured for a model
 *   this node does not have fails loudly instead of getting another model.
 * - Errors on these routes use OpenAI's shape `{error: {message, type, param,
 *   code}}`, which the SDKs parse; the rest of the API keeps nodesage's shape.
 * - Rules-only mode (no model, or a refused/failed one): 503 with the reason.
 * - One generation at a time (the engine's one sequence); the shared
 *   {@link EngineGate} admits a few waiting requests and answers 429 beyond.
 * - Honoured: `max_tokens` / `max_completion_tokens` (at most, and by
 *   default, `llm.maxTokens`, or what is left of the context when less),
 *   `temperature` (default 1, as OpenAI), `seed`, `stop`,
 *   `response_format` `json_object` and `json_schema` (through the engine's
 *   grammar; `anyOf` is read as `oneOf`), `stream_options.include_usage`.
 *   Accepted and ignored: `top_p`, penalties, `user`, `metadata`. Refused
 *   (400): `n` > 1, tools / tool messages, non-text content, `logprobs`.
 * - After a `stop` sequence the engine is interrupted, so `usage` then comes
 *   from counting the prompt and the returned text.
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { GbnfJsonSchema } from 'node-llama-cpp';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EngineGate } from '../ask/gate.js';
import type { ChatMessage, ChatRequest, CompletionResult, LlmEngineStatus } from '../diagnoser/engine.js';
import { GrammarError, LlmError, PromptTooLongError } from '../diagnoser/errors.js';

/** What the routes need from the LLM engine. */
export interface OpenAiEngine {
  readonly id: string;
  chat(request: ChatRequest): Promise<CompletionResult>;
  countTokens(text: string, signal?: AbortSignal): Promise<number>;
  status(): Pick<LlmEngineStatus, 'state' | 'contextSize' | 'reason' | 'path'>;
}

/** Options of {@link registerOpenAiRoutes}. */
export interface OpenAiRoutesOptions {
  /** The local model; absent in rules-only mode. */
  engine?: OpenAiEngine;
  /** Shared with `/v1/ask`: one bounded queue for the model. */
  gate: EngineGate;
  /** Most tokens one completion generates (`llm.maxTokens`, which the daemon passes); larger `max_tokens` are lowered to it. Defaults to what the context leaves. */
  maxTokens?: number;
  logger?: Logger;
}

/** Deepest nesting of a `response_format` JSON schema (objects and arrays). */
export const MAX_SCHEMA_DEPTH = 24;
/** Largest `response_format` JSON schema, in characters of JSON. */
export const MAX_SCHEMA_CHARS = 16 * 1024;

/** Nesting depth of a JSON value, walked without recursion so no input can overflow the stack. */
function depthOf(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** OpenAI's error body. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function sendOpenAiError(reply: FastifyReply, status: number, type: string, code: string | null, message: string, param: string | null = null): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { message, type, param, code } } satisfies OpenAiErrorBody);
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const message = z.looseObject({
  role: z.string(),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
});
const positiveInt = z.number().int().min(1).nullable().optional();
const bodySchema = z.looseObject({
  model: z.string().max(256).nullable().optional(),
  messages: z.array(message).min(1).max(512),
  max_tokens: positiveInt,
  max_completion_tokens: positiveInt,
  temperature: z.number().min(0).max(2).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullable().optional() }).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
  n: z.number().int().nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  tools: z.array(z.unknown()).nullable().optional(),
  functions: z.array(z.unknown()).nullable().optional(),
  response_format: z
    .union([
      z.looseObject({ type: z.literal('text') }),
      z.looseObject({ type: z.literal('json_object') }),
      z.looseObject({
        type: z.literal('json_schema'),
        json_schema: z.looseObject({ name: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional() }),
      }),
    ])
    .nullable()
    .optional(),
});

type ChatBody = z.infer<typeof bodySchema>;

function parseChatBody(raw: unknown): ChatBody {
  const parsed = bodySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue?.path.join('.') || null;
    throw new RequestError(400, 'invalid_request_error', null, `invalid request: ${param ? `${param}: ` : ''}${issue?.message ?? 'bad body'}`, param);
  }
  return parsed.data;
}

/** Reads OpenAI JSON-schema idioms the grammar builder does not know: `anyOf` becomes `oneOf`. */
function toGrammarSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toGrammarSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k === 'anyOf' ? 'oneOf' : k] = toGrammarSchema(v);
  return out;
}

function textOf(content: z.infer<typeof message>['content'], i: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((p) => {
      if (p.type !== 'text' || typeof p.text !== 'string') {
        throw new RequestError(400, 'invalid_request_error', 'unsupported_content', `messages[${i}]: only text content is supported, not "${p.type}"`, `messages[${i}].content`);
      }
      return p.text;
    })
    .join('\n');
}

function toMessages(body: ChatBody): ChatMessage[] {
  const out = body.messages.map((m, i): ChatMessage => {
    const content = textOf(m.content, i);
    if (m.role === 'system' || m.role === 'developer') return { role: 'system', content };
    if (m.role === 'user' || m.role === 'assistant') return { role: m.role, content };
    if (m.role === 'tool' || m.role === 'function') {
      throw new RequestError(400, 'invalid_request_error', 'unsupported_role', `messages[${i}]: tool messages are not supported (the model has no tools)`, `messages[${i}].role`);
    }
    throw new RequestError(400, 'invalid_request_error', 'invalid_role', `messages[${i}]: unknown role "${m.role}"`, `messages[${i}].role`);
  });
  if (out[out.length - 1]?.role !== 'user') {
    throw new RequestError(400, 'invalid_request_error', null, 'the last message must be from the user', 'messages');
  }
  return out;
}

function jsonSchemaOf(body: ChatBody): GbnfJsonSchema | undefined {
  const f = body.response_format;
  if (!f || f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'object', additionalProperties: true };
  const schema = (f as { json_schema: { schema?: Record<string, unknown> } }).json_schema.schema;
  if (!schema) throw new RequestError(400, 'invalid_request_error', null, 'response_format.json_schema.schema is required', 'response_format');
  if (depthOf(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH) {
    throw new RequestError(400, 'invalid_request_error', 'invalid_response_format', `response_format.json_schema.schema is nested deeper than ${MAX_SCHEMA_DEPTH} levels`, 'response_format');
  }
  if (JSON.stringify(schema).length > MAX_SCHEMA_CHARS) {
    throw new RequestError(400, 'invalid_request_error', 'invalid_response_format', `response_format.json_schema.schema is larger than ${MAX_SCHEMA_CHARS} characters`, 'response_format');
  }
  return toGrammarSchema(schema) as GbnfJsonSchema;
}

/**
 * Finds the first of `stops` in streamed text, holding back a tail that could
 * be the start of one, so text after a stop sequence is never emitted.
 */
class StopMatcher {
  readonly #stops: string[];
  readonly #hold: number;
  #buf = '';
  stopped = false;

  constructor(stops: string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
    this.#hold = Math.max(0, ...this.#stops.map((s) => s.length - 1));
  }

  push(text: string): string {
    if (this.stopped) return '';
    this.#buf += text;
    let at = -1;
    for (const s of this.#stops) {
      const i = this.#buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.stopped = true;
      const out = this.#buf.slice(0, at);
      this.#buf = '';
      return out;
    }
    const keep = Math.min(this.#hold, this.#buf.length);
    const out = this.#buf.slice(0, this.#buf.length - keep);
    this.#buf = this.#buf.slice(this.#buf.length - keep);
    return out;
  }

  flush(): string {
    const out = this.stopped ? '' : this.#buf;
    this.#buf = '';
    return out;
  }
}

/** Adds the OpenAI-compatible routes (in their own scope, for OpenAI's error shape). */
export function registerOpenAiRoutes(app: FastifyInstance, o: OpenAiRoutesOptions): void {
  const engine = o.engine;
  const maxTokensCap = o.maxTokens ?? Number.MAX_SAFE_INTEGER;
  let created: number | null = null;
  const modelCreated = async (): Promise<number> => {
    if (created === null) {
      try {
        created = Math.floor((await stat(engine?.status().path ?? '')).mtimeMs / 1000);
      } catch {
        created = 0;
      }
    }
    return created;
  };
  const usable = () => {
    const s = engine?.status().state;
    return s !== undefined && s !== 'refused' && s !== 'failed';
  };
  const rulesOnlyMessage = () =>
    engine
      ? `the local model is not usable, so nodesage runs rules-only: ${engine.status().reason ?? 'unknown reason'}`
      : 'no model is configured on this node, so nodesage runs rules-only (set NODESAGE_MODEL to a GGUF file)';
  const inFlight = new Set<AbortController>();

  app.register(async (scope) => {
    scope.addHook('preClose', async () => {
      for (const c of inFlight) c.abort(new Error('the daemon is stopping'));
    });
    scope.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
      if (err instanceof RequestError) return sendOpenAiError(reply, err.status, err.type, err.code, err.message, err.param);
      if (err instanceof GrammarError) return sendOpenAiError(reply, 400, 'invalid_request_error', 'invalid_response_format', err.message, 'response_format');
      // The model failed to load (or was refused on a second look): the same answer as rules-only mode.
      if (err instanceof LlmError) return sendOpenAiError(reply, 503, 'server_error', 'model_unavailable', `the local model cannot answer: ${err.message}`);
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      if (status >= 500) {
        o.logger?.error({ err }, 'chat completion failed');
        return sendOpenAiError(reply, status, 'server_error', null, 'internal error; see the nodesage daemon log');
      }
      return sendOpenAiError(reply, status, 'invalid_request_error', err.code ?? null, err.message);
    });

    const modelObject = async () => ({ id: engine?.id ?? '', object: 'model' as const, created: await modelCreated(), owned_by: 'nodesage' });

    scope.get('/v1/models', async () => ({ object: 'list', data: usable() ? [await modelObject()] : [] }));

    scope.get('/v1/models/:model', async (req, reply) => {
      const { model } = req.params as { model: string };
      if (!usable() || model !== engine?.id) {
        return sendOpenAiError(reply, 404, 'invalid_request_error', 'model_not_found', `The model \`${model}\` does not exist on this node.`, 'model');
      }
      return modelObject();
    });

    // Parsed before the per-identity model cap (a preHandler), so a bad body is a 400 whatever else runs.
    scope.post('/v1/chat/completions', { config: { modelUse: true }, preValidation: async (req) => void parseChatBody(req.body) }, async (req, reply) => {
      const body = parseChatBody(req.body);
      if (!engine || !usable()) return sendOpenAiError(reply, 503, 'server_error', 'model_unavailable', rulesOnlyMessage());
      if (body.model && body.model !== engine.id) {
        return sendOpenAiError(
          reply,
          404,
          'invalid_request_error',
          'model_not_found',
          `The model \`${body.model}\` does not exist on this node; it serves \`${engine.id}\` (GET /v1/models).`,
          'model',
        );
      }
      if ((body.n ?? 1) !== 1) throw new RequestError(400, 'invalid_request_error', null, 'only n=1 is supported', 'n');
      if (body.logprobs) throw new RequestError(400, 'invalid_request_error', null, 'logprobs are not supported', 'logprobs');
      if ((body.tools?.length ?? 0) > 0 || (body.functions?.length ?? 0) > 0) {
        throw new RequestError(400, 'invalid_request_error', null, 'tools are not supported: the model on this node has none', 'tools');
      }
      const messages = toMessages(body);
      const jsonSchema = jsonSchemaOf(body);
      const stops = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
      const asked = body.max_completion_tokens ?? body.max_tokens ?? null;
      const requestedMax = asked === null ? null : Math.min(asked, maxTokensCap);

      const release = o.gate.tryEnter();
      if (!release) {
        reply.header('retry-after', '10');
        return sendOpenAiError(reply, 429, 'requests', 'rate_limit_exceeded', 'the local model is busy with other requests; retry in a few seconds');
      }
      const controller = new AbortController();
      inFlight.add(controller);
      const onClose = () => {
        if (!reply.raw.writableFinished) controller.abort(new Error('the client went away'));
      };
      reply.raw.on('close', onClose);
      try {
        return await complete(reply, { body, messages, jsonSchema, stops, requestedMax, controller });
      } finally {
        inFlight.delete(controller);
        reply.raw.off('close', onClose);
        release();
      }
    });
  });

  interface Job {
    body: ChatBody;
    messages: ChatMessage[];
    jsonSchema: GbnfJsonSchema | undefined;
    stops: string[];
    requestedMax: number | null;
    controller: AbortController;
  }

  async function complete(reply: FastifyReply, job: Job): Promise<FastifyReply> {
    const e = engine as OpenAiEngine;
    const { body, messages, controller } = job;
    const signal = controller.signal;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const stream = body.stream === true;
    const includeUsage = stream && body.stream_options?.include_usage === true;
    const contextSize = e.status().contextSize;

    // Prompt tokens as counted here: the default output budget, and usage after a stop sequence.
    let estimatedPrompt = 0;
    for (const m of messages) estimatedPrompt += (await e.countTokens(m.content, signal)) + 8;
    estimatedPrompt += 16;
    const maxTokens = job.requestedMax ?? Math.max(1, Math.min(maxTokensCap, contextSize - estimatedPrompt - 1));

    const stopper = new StopMatcher(job.stops);
    let content = '';
    let headersSent = false;
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id,
      object: 'chat.completion.chunk',
      created: createdAt,
      model: e.id,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
    const write = (data: unknown) => {
      if (reply.raw.writableEnded) return;
      if (!headersSent) {
        // Headers wait for the first token, so load and prompt errors can still be proper HTTP errors.
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        headersSent = true;
        reply.raw.write(`data: ${JSON.stringify(chunk({ role: 'assistant', content: '' }, null))}\n\n`);
      }
      reply.raw.write(data === '[DONE]' ? 'data: [DONE]\n\n' : `data: ${JSON.stringify(data)}\n\n`);
    };
    const emit = (text: string) => {
      if (!text) return;
      content += text;
      if (stream) write(chunk({ content: text }, null));
    };

    const run = (max: number) =>
      e.chat({
        messages,
        maxTokens: max,
        temperature: body.temperature ?? 1,
        ...(body.seed !== undefined && body.seed !== null ? { seed: body.seed } : {}),
        ...(job.jsonSchema ? { jsonSchema: job.jsonSchema } : {}),
        signal,
        onToken: (t) => {
          emit(stopper.push(t));
          if (stopper.stopped && !signal.aborted) controller.abort(new Error('stop sequence reached'));
        },
      });

    let result: CompletionResult | null = null;
    try {
      try {
        result = await run(maxTokens);
      } catch (err) {
        // The default budget came from an estimate; the engine knows the exact prompt size.
        if (!(err instanceof PromptTooLongError) || job.requestedMax !== null || content.length > 0) throw err;
        const exact = Math.min(maxTokensCap, err.contextSize - err.promptTokens - 1);
        if (exact < 1) throw err;
        result = await run(exact);
      }
      emit(stopper.flush());
    } catch (err) {
      if (!stopper.stopped) {
        if (err instanceof PromptTooLongError && !headersSent) {
          return sendOpenAiError(reply, 400, 'invalid_request_error', 'context_length_exceeded', `${err.message}; lower max_tokens or shorten the messages`, 'messages');
        }
        if (signal.aborted) {
          if (headersSent) {
            write({ error: { message: (signal.reason as Error).message, type: 'server_error', param: null, code: 'aborted' } });
            reply.raw.end();
            return reply;
          }
          return sendOpenAiError(reply, 503, 'server_error', 'aborted', (signal.reason as Error).message);
        }
        if (headersSent) {
          o.logger?.error({ err }, 'chat completion failed mid-stream');
          write({ error: { message: 'generation failed; see the nodesage daemon log', type: 'server_error', param: null, code: null } });
          reply.raw.end();
          return reply;
        }
        throw err;
      }
    }

    const finish = stopper.stopped ? 'stop' : result?.stopReason === 'maxTokens' ? 'length' : 'stop';
    const usage = result
      ? { prompt_tokens: result.tokens.prompt, completion_tokens: result.tokens.completion, total_tokens: result.tokens.prompt + result.tokens.completion }
      : await (async () => {
          const completion = content ? await e.countTokens(content) : 0;
          return { prompt_tokens: estimatedPrompt, completion_tokens: completion, total_tokens: estimatedPrompt + completion };
        })();
    if (stream) {
      write(chunk({}, finish));
      if (includeUsage) write({ id, object: 'chat.completion.chunk', created: createdAt, model: e.id, system_fingerprint: null, choices: [], usage });
      write('[DONE]');
      reply.raw.end();
      return reply;
    }
    return reply.send({
      id,
      object: 'chat.completion',
      created: createdAt,
      model: e.id,
      system_fingerprint: null,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: finish }],
      usage,
    });
  }
}
