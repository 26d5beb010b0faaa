/**
 * The OpenAI-compatible endpoints, driven by the official `openai` npm client:
 * against the real daemon with the generated tiny model (plain and streamed
 * completions, JSON-schema output through the grammar, unknown model), in
 * rules-only mode (503), and in process for the bounded queue shared with
 * `/v1/ask` (429 / 503 MODEL_BUSY), stop sequences and context overflow.
 */
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineGate } from '../daemon/ask/gate.js';
import { AskService } from '../daemon/ask/service.js';
import { registerAskRoutes } from '../daemon/api/ask-routes.js';
import { registerOpenAiRoutes } from '../daemon/api/openai.js';
import { buildApi } from '../daemon/api/server.js';
import type { Status } from '../daemon/core/contract.js';
import { LlmEngine } from '../daemon/diagnoser/engine.js';
import { Store } from '../daemon/store/store.js';
import { type DaemonProcess, startDaemon, tempDir } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const silent = pino({ level: 'silent' });

function client(url: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
}

describe('OpenAI client against the daemon with a local model', () => {
  let daemon: DaemonProcess;
  let openai: OpenAI;
  let modelId: string;

  beforeAll(async () => {
    const model = await ensureTinyModel();
    modelId = model.split('/').pop()!.replace(/\.gguf$/, '');
    daemon = await startDaemon({
      env: { NODESAGE_DATA_DIR: tempDir(), NODESAGE_MODEL: model, NODESAGE_LLM_CONTEXT_SIZE: '4096' },
    });
    openai = client(daemon.url);
  }, 120_000);
  afterAll(async () => {
    await daemon?.kill('SIGKILL');
  });

  it('lists the loaded model', async () => {
    const page = await openai.models.list();
    expect(page.data).toEqual([{ id: modelId, object: 'model', created: expect.any(Number), owned_by: 'nodesage' }]);
    expect((await openai.models.retrieve(modelId)).id).toBe(modelId);
  });

  it('completes a chat', async () => {
    const r = await openai.chat.completions.create({
      model: modelId,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Why is the kubelet restarting?' },
      ],
      max_tokens: 24,
      temperature: 0,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe(modelId);
    expect(r.id).toMatch(/^chatcmpl-/);
    const choice = r.choices[0]!;
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(r.usage!.prompt_tokens).toBeGreaterThan(5);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(24);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
    expect(choice.finish_reason).toBe(r.usage!.completion_tokens === 24 ? 'length' : 'stop');
  }, 60_000);

  it('streams a chat as chunks ending with the finish reason and usage', async () => {
    const stream = await openai.chat.completions.create({
      messages: [{ role: 'user', content: 'List the pods on this node.' }],
      model: modelId,
      max_completion_tokens: 16,
      temperature: 0.7,
      seed: 42,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.id).toBe(chunks[0]!.id);
    }
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const finishes = chunks.flatMap((c) => c.choices.map((x) => x.finish_reason)).filter((f) => f !== null);
    expect(finishes).toHaveLength(1);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBeLessThanOrEqual(16);
    expect(finishes[0]).toBe(last.usage!.completion_tokens === 16 ? 'length' : 'stop');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text.length).toBeGreaterThan(0);
    // Same seed and temperature, same text.
    const again = await openai.chat.completions.create({
      messages: [{ role: 'user', content: 'List the pods on this node.' }],
      model: modelId,
      max_completion_tokens: 16,
      temperature: 0.7,
      seed: 42,
    });
    expect(again.choices[0]!.message.content).toBe(text);
  }, 60_000);

  it('returns JSON that matches a json_schema response format', async () => {
    const schema = {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['healthy', 'degraded', 'down'] },
        reason: { type: 'string', maxLength: 40 },
        pressure: { type: 'boolean' },
      },
      required: ['status', 'reason', 'pressure'],
      additionalProperties: false,
    } as const;
    const r = await openai.chat.completions.create({
      model: modelId,
      messages: [{ role: 'user', content: 'Report the node state.' }],
      max_tokens: 300,
      temperature: 0,
      response_format: { type: 'json_schema', json_schema: { name: 'node_state', schema, strict: true } },
    });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const v = JSON.parse(r.choices[0]!.message.content!) as Record<string, unknown>;
    expect(Object.keys(v).sort()).toEqual(['pressure', 'reason', 'status']);
    expect(schema.properties.status.enum).toContain(v.status);
    expect(typeof v.reason).toBe('string');
    expect((v.reason as string).length).toBeLessThanOrEqual(40);
    expect(typeof v.pressure).toBe('boolean');

    const obj = await openai.chat.completions.create({
      model: modelId,
      messages: [{ role: 'user', content: 'Any JSON object.' }],
      max_tokens: 200,
      // Sampled output may run past max_tokens (finish_reason length, JSON cut): greedy is deterministic.
      temperature: 0,
      response_format: { type: 'json_object' },
    });
    expect(obj.choices[0]!.finish_reason).toBe('stop');
    const parsed = JSON.parse(obj.choices[0]!.message.content!) as unknown;
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
  }, 60_000);

  it('answers 404 model_not_found in OpenAI shape for another model, and 400 for what it cannot do', async () => {
    const err = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    const nf = err as InstanceType<typeof OpenAI.NotFoundError>;
    expect(nf.status).toBe(404);
    expect(nf.code).toBe('model_not_found');
    expect(nf.type).toBe('invalid_request_error');
    expect(nf.message).toContain(modelId);
    await expect(openai.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const bad = [
      { model: modelId, messages: [] },
      { model: modelId, messages: [{ role: 'tool', content: 'x', tool_call_id: '1' }] },
      { model: modelId, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] },
      { model: modelId, messages: [{ role: 'user', content: 'hi' }], n: 2 },
      { model: modelId, messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'kubectl' } }] },
      { model: modelId, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'prefill' }] },
    ];
    for (const body of bad) {
      const e = await openai.chat.completions.create(body as never).catch((x: unknown) => x);
      expect(e, JSON.stringify(body)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((e as InstanceType<typeof OpenAI.BadRequestError>).type).toBe('invalid_request_error');
    }
    // Not even JSON: still OpenAI's error shape on these routes.
    const raw = await fetch(`${daemon.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages":' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });
});

describe('OpenAI client in rules-only mode', () => {
  it('lists no model and answers 503 with the reason', async () => {
    const store = Store.open({ dir: tempDir() });
    const app = buildApi({ store, status: () => ({ rulesOnly: true }) as Status, ready: () => true, extraRoutes: (a) => registerOpenAiRoutes(a, { gate: new EngineGate() }) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const openai = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
      expect((await openai.models.list()).data).toEqual([]);
      const err = await openai.chat.completions.create({ model: 'any', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      const e = err as InstanceType<typeof OpenAI.APIError>;
      expect(e.status).toBe(503);
      expect(e.code).toBe('model_unavailable');
      expect(e.message).toMatch(/rules-only/);
    } finally {
      await app.close();
    }
  });
});

describe('one bounded queue for the model (in process, real engine)', () => {
  let engine: LlmEngine;
  let url: string;
  let close: () => Promise<unknown>;

  beforeAll(async () => {
    engine = new LlmEngine({ modelPath: await ensureTinyModel(), memoryBudgetBytes: 512 * 1024 * 1024, contextSize: 4096, logger: silent });
    const store = Store.open({ dir: tempDir() });
    // Nobody may wait: a second request while one runs is refused at once.
    const gate = new EngineGate({ maxWaiting: 0 });
    const ask = new AskService({ store, engine, nodeName: 'n1', maxTokens: 32, timeoutMs: 60_000, logger: silent });
    const app = buildApi({
      store,
      status: () => ({ rulesOnly: false }) as Status,
      ready: () => true,
      extraRoutes: (a) => {
        registerAskRoutes(a, { ask, gate });
        registerOpenAiRoutes(a, { engine, gate });
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    close = async () => {
      await app.close();
      await engine.dispose();
    };
  }, 60_000);
  afterAll(async () => {
    await close?.();
  });

  it('refuses with 429 (OpenAI) and 503 MODEL_BUSY (ask) while a generation runs, then serves again', async () => {
    const openai = client(url);
    const stream = await openai.chat.completions.create({
      model: engine.id,
      messages: [{ role: 'user', content: 'Tell me everything.' }],
      // Greedy: this prompt never samples an end token, so the generation surely outlasts the requests below.
      temperature: 0,
      max_tokens: 1500,
      stream: true,
    });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    // The first is generating now.
    const busy = await openai.chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(OpenAI.RateLimitError);
    expect((busy as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('rate_limit_exceeded');
    const ask = await fetch(`${url}/v1/ask`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'disk?' }) });
    expect(ask.status).toBe(503);
    expect(ask.headers.get('retry-after')).toBe('10');
    expect(((await ask.json()) as { error: { code: string } }).error.code).toBe('MODEL_BUSY');
    let finish: string | null = null;
    for (let c = await it.next(); !c.done; c = await it.next()) finish = c.value.choices[0]?.finish_reason ?? finish;
    expect(finish).toBe('length');
    const ok = await openai.chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    expect(ok.choices[0]!.finish_reason).toBeDefined();
  }, 120_000);

  it('ends at a stop sequence without sending it', async () => {
    const openai = client(url);
    const messages = [{ role: 'user' as const, content: 'Describe the node.' }];
    const full = (await openai.chat.completions.create({ model: engine.id, messages, max_tokens: 60, temperature: 0 })).choices[0]!.message.content!;
    // A stop string from the middle of the greedy answer: the same greedy run must end just before it.
    const at = Math.floor(full.length / 2);
    const stop = full.slice(at, at + 3);
    expect(stop.length).toBe(3);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await openai.chat.completions.create({ model: engine.id, messages, max_tokens: 60, temperature: 0, stop: [stop] });
    expect(r.choices[0]!.message.content).toBe(expected);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBeGreaterThanOrEqual(0);
    const streamed = await openai.chat.completions.create({ model: engine.id, messages, max_tokens: 60, temperature: 0, stop, stream: true });
    let text = '';
    for await (const c of streamed) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe(expected);
  }, 60_000);

  it('answers 400 context_length_exceeded when the prompt and max_tokens do not fit', async () => {
    const err = await client(url)
      .chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
  });
});
