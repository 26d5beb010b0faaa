/**
 * `POST /v1/ask {question, since?}`: an answer about this node from its
 * findings, log templates and runbooks.
 *
 * With `Accept: text/event-stream` the answer streams as server-sent events:
 * `citations` (what was retrieved, each with its marker) at once, `token`
 * events as text is generated, then `done` with the whole answer and the ids
 * it actually cites (or `error`). Otherwise one JSON body. Errors before the
 * stream starts are the API's JSON errors: 400 BAD_REQUEST, 503 MODEL_BUSY
 * when the model already has a full queue of interactive requests.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { citationsOf, sourcesOf } from '../ask/answer.js';
import type { EngineGate } from '../ask/gate.js';
import type { AskService } from '../ask/service.js';
import { SINCE_PATTERN } from '../core/since.js';
import { sendBadDate, sendError, sinceToIso } from './server.js';

/** Options of {@link registerAskRoutes}. */
export interface AskRoutesOptions {
  ask: AskService;
  /** Shared with the OpenAI-compatible routes: one bounded queue for the model. */
  gate: EngineGate;
  logger?: Logger;
  /** Comment lines sent this often while the model reads the prompt, so proxies keep the stream open. Defaults to 15000. */
  heartbeatMs?: number;
}

/** Longest question accepted, in characters. */
export const MAX_QUESTION_CHARS = 2000;

const bodySchema = {
  type: 'object',
  required: ['question'],
  additionalProperties: false,
  properties: {
    question: { type: 'string', minLength: 1, maxLength: MAX_QUESTION_CHARS },
    since: { type: 'string', pattern: SINCE_PATTERN },
  },
} as const;

function sse(reply: FastifyReply, event: string, data: unknown): void {
  if (!reply.raw.writableEnded) reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** Adds `POST /v1/ask`. */
export function registerAskRoutes(app: FastifyInstance, o: AskRoutesOptions): void {
  const inFlight = new Set<AbortController>();
  // A stream can last minutes on a CPU node: stopping the daemon must not wait for it.
  app.addHook('preClose', async () => {
    for (const c of inFlight) c.abort(new Error('the daemon is stopping'));
  });

  app.post('/v1/ask', { schema: { body: bodySchema }, config: { modelUse: () => o.ask.usesModel() } }, async (req, reply) => {
    const body = req.body as { question: string; since?: string };
    const question = body.question.trim();
    if (question.length === 0) return sendError(reply, 400, 'BAD_REQUEST', 'question must not be blank');
    const since = body.since ? sinceToIso(body.since) : undefined;
    if (since === null) return sendBadDate(reply, 'since', body.since);

    let release: (() => void) | null = null;
    if (o.ask.usesModel()) {
      release = o.gate.tryEnter();
      if (!release) {
        reply.header('retry-after', '10');
        return sendError(reply, 503, 'MODEL_BUSY', 'the local model is busy with other questions; retry in a few seconds');
      }
    }
    const controller = new AbortController();
    inFlight.add(controller);
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort(new Error('the client went away'));
    };
    reply.raw.on('close', onClose);
    const done = () => {
      inFlight.delete(controller);
      reply.raw.off('close', onClose);
      release?.();
    };

    try {
      const retrieved = await o.ask.retrieveAsync(question, since);
      if (!/\btext\/event-stream\b/i.test(req.headers.accept ?? '')) {
        try {
          return reply.send(await o.ask.answer(question, retrieved, { signal: controller.signal }));
        } catch (err) {
          // Client gone (nobody reads this) or daemon stopping.
          if (controller.signal.aborted) return sendError(reply, 503, 'ABORTED', (controller.signal.reason as Error).message);
          throw err;
        }
      }

      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const sources = sourcesOf(retrieved);
      sse(reply, 'citations', { ...citationsOf(sources), sources, rulesOnly: !o.ask.usesModel() });
      const heartbeat = setInterval(() => {
        if (!reply.raw.writableEnded) reply.raw.write(': keepalive\n\n');
      }, o.heartbeatMs ?? 15_000);
      try {
        const result = await o.ask.answer(question, retrieved, { signal: controller.signal, onToken: (text) => sse(reply, 'token', { text }) });
        sse(reply, 'done', result);
      } catch (err) {
        if (!controller.signal.aborted) {
          o.logger?.error({ err }, 'answering a question failed');
          sse(reply, 'error', { error: { code: 'INTERNAL', message: 'the answer failed; see the daemon log' } });
        } else {
          sse(reply, 'error', { error: { code: 'ABORTED', message: (controller.signal.reason as Error).message } });
        }
      } finally {
        clearInterval(heartbeat);
        reply.raw.end();
      }
      return reply;
    } finally {
      done();
    }
  });
}
