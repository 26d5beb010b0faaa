/**
 * Request limits over real sockets: header and body timeouts (a trickled
 * request is closed near its limit), the connection cap, the per-identity
 * rate limit and model-use cap, `max_tokens` clamped to llm.maxTokens, schema
 * limits and uncompilable schemas (400, not 500), and leap-second dates.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, readTokenFile, StaticTokens } from '../daemon/api/auth/static-tokens.js';
import { registerAskRoutes } from '../daemon/api/ask-routes.js';
import { MAX_SCHEMA_DEPTH, registerOpenAiRoutes } from '../daemon/api/openai.js';
import { EngineGate } from '../daemon/ask/gate.js';
import { AskService } from '../daemon/ask/service.js';
import { LlmEngine } from '../daemon/diagnoser/engine.js';
import { type ServedApi, raw, serveApi } from './helpers/access-app.js';
import { tempDir } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const silent = pino({ level: 'silent' });

/** Opens a TCP connection and resolves when the server closes it, with how long that took. */
function openConnection(port: number): Promise<{ socket: Socket; closed: Promise<{ ms: number; data: string }> }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    const closed = new Promise<{ ms: number; data: string }>((r) => socket.on('close', () => r({ ms: Date.now() - t0, data })));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', (err) => {
      if (!socket.connecting) return;
      reject(err);
    });
  });
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(t);
    socket.write(text[i++]!);
  }, everyMs);
  socket.on('close', () => clearInterval(t));
}

describe('timeouts and the connection cap', () => {
  let api: ServedApi;
  beforeAll(async () => {
    api = await serveApi({ limits: { headersTimeoutMs: 600, requestTimeoutMs: 1200, maxConnections: 8 } });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('closes a body trickled one byte at a time within the request timeout', async () => {
    const { socket, closed } = await openConnection(api.port);
    socket.write('POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    trickle(socket, `{"question":"${'a'.repeat(980)}"}`, 50);
    const { ms, data } = await closed;
    // Not before the limit; after it, within event-loop latency on a loaded machine (each connection keeps its own deadline).
    expect(ms).toBeGreaterThanOrEqual(1150);
    expect(ms).toBeLessThan(1200 + 500);
    expect(data).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'REQUEST_TIMEOUT', message: 'the request did not arrive in time' } });
  });

  it('answers malformed HTTP and oversized headers in the API error shape', async () => {
    for (const [bytes, status, code] of [
      ['GARBAGE\r\n\r\n', 400, 'MALFORMED_REQUEST'],
      [`GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ] as const) {
      const { socket, closed } = await openConnection(api.port);
      socket.write(bytes);
      const { data } = await closed;
      expect(data).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)).error.code).toBe(code);
    }
  });

  it('closes headers sent one byte at a time within the headers timeout', async () => {
    const { socket, closed } = await openConnection(api.port);
    trickle(socket, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ${'b'.repeat(200)}\r\n\r\n`, 40);
    const { ms, data } = await closed;
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(600 + 500);
    expect(data).toMatch(/^(HTTP\/1\.1 408 |$)/);
  });

  it('gives the next request on a kept-alive connection the keep-alive timeout to begin, then the headers timeout', async () => {
    const { socket, closed } = await openConnection(api.port);
    let data = '';
    socket.on('data', (c: string) => (data += c));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = Date.now();
    while (!/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n\{/.test(data)) await new Promise((r) => setTimeout(r, 5));
    // The second request begins at once and trickles its headers: it is cut off no later than the keep-alive
    // timeout (5 s, within which it could have begun) plus the headers timeout, and not before the headers timeout.
    trickle(socket, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ${'b'.repeat(400)}\r\n\r\n`, 40);
    const { data: all } = await closed;
    const ms = Date.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(600 - 50);
    expect(ms).toBeLessThan(5000 + 600 + 500);
    expect(all.slice(all.indexOf('\r\n\r\n{'))).toMatch(/HTTP\/1\.1 408 /);
  });

  it('refuses connections above the cap and serves again once they close', async () => {
    const open = await Promise.all(Array.from({ length: 8 }, () => openConnection(api.port)));
    const extra = await openConnection(api.port);
    const refused = await Promise.race([extra.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
    expect(refused).toBe(true);
    for (const c of open) c.socket.destroy();
    await Promise.all(open.map((c) => c.closed));
    expect((await raw(api, 'GET', '/v1/status')).status).toBe(200);
  });
});

describe('per-identity rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After past the burst, per identity', async () => {
    const file = join(tempDir(), 'tokens');
    const alice = createToken(file, 'alice');
    const bob = createToken(file, 'bob');
    let now = 1_000_000;
    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)), requestsPerSecond: 2, burst: 3, now: () => now } });
    try {
      const as = (t: string) => ({ authorization: `Bearer ${t}` });
      for (let i = 0; i < 3; i++) expect((await raw(api, 'GET', '/v1/status', as(alice))).status).toBe(200);
      const limited = await raw(api, 'GET', '/v1/status', as(alice));
      expect(limited.status).toBe(429);
      expect(limited.headers['retry-after']).toBe('1');
      expect(JSON.parse(limited.body).error.code).toBe('RATE_LIMITED');
      // Another identity has its own bucket; time refills alice's.
      expect((await raw(api, 'GET', '/v1/status', as(bob))).status).toBe(200);
      now += 500;
      expect((await raw(api, 'GET', '/v1/status', as(alice))).status).toBe(200);
      expect((await raw(api, 'GET', '/v1/status', as(alice))).status).toBe(429);
      // Failed authentications are limited per client address, before any check.
      for (let i = 0; i < 3; i++) expect((await raw(api, 'GET', '/v1/status', as('guess'))).status).toBe(401);
      const guessing = await raw(api, 'GET', '/v1/status', as('guess'));
      expect(guessing.status).toBe(429);
      expect(JSON.parse(guessing.body).error.message).toContain('failed authentications');
      // Probes are never limited.
      for (let i = 0; i < 10; i++) expect((await raw(api, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await api.close();
    }
  });
});

describe('dates a JavaScript Date cannot hold', () => {
  it('answers 400 BAD_DATE for a leap second or an out-of-range date on every route that takes a since', async () => {
    const store = (await import('../daemon/store/store.js')).Store.open({ dir: tempDir() });
    const ask = new AskService({ store, nodeName: 'n1', maxTokens: 32, timeoutMs: 10_000, logger: silent });
    const api = await serveApi({ extraRoutes: (a) => registerAskRoutes(a, { ask, gate: new EngineGate() }) });
    try {
      for (const since of ['2016-12-31T23:59:60Z', '9999-12-31T23:59:60Z', '0000-01-01T00:00:00+23:59']) {
        const f = await raw(api, 'GET', `/v1/findings?since=${encodeURIComponent(since)}`);
        expect(f.status, since).toBe(400);
        expect(JSON.parse(f.body).error.code, since).toMatch(/^(BAD_DATE|BAD_REQUEST)$/);
        const a = await raw(api, 'POST', '/v1/ask', { 'content-type': 'application/json' }, JSON.stringify({ question: 'disk?', since }));
        expect(a.status, since).toBe(400);
        expect(JSON.parse(a.body).error.code, since).toMatch(/^(BAD_DATE|BAD_REQUEST)$/);
      }
      // One check and one code for the same mistake wherever it is made.
      for (const path of ['/v1/findings', '/v1/timeline', '/v1/metrics/history?series=cpu&']) {
        const r = await raw(api, 'GET', `${path}${path.endsWith('&') ? '' : '?'}since=2016-12-31T23:59:60Z`);
        expect(r.status, path).toBe(400);
        expect(JSON.parse(r.body).error, path).toEqual({ code: 'BAD_DATE', message: expect.stringContaining('leap seconds') });
      }
      const leap = await raw(api, 'GET', '/v1/findings?since=2016-12-31T23:59:60Z');
      expect(JSON.parse(leap.body).error).toEqual({ code: 'BAD_DATE', message: expect.stringContaining('leap seconds') });
      expect((await raw(api, 'GET', '/v1/findings?since=2016-12-31T23:59:59Z')).status).toBe(200);
    } finally {
      await api.close();
      store.close();
    }
  });
});

describe('the model behind limits (in process, real engine)', () => {
  const CAP = 2000;
  let engine: LlmEngine;
  let api: ServedApi;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    engine = new LlmEngine({ modelPath: await ensureTinyModel(), memoryBudgetBytes: 512 * 1024 * 1024, contextSize: 4096, logger: silent });
    const file = join(tempDir(), 'tokens');
    alice = createToken(file, 'alice');
    bob = createToken(file, 'bob');
    const gate = new EngineGate({ maxWaiting: 4 });
    api = await serveApi({
      access: { authenticator: new StaticTokens(readTokenFile(file)), modelRequestsPerIdentity: 1 },
      extraRoutes: (a) => registerOpenAiRoutes(a, { engine, gate, maxTokens: CAP }),
    });
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    await engine?.dispose();
  });

  const client = (token: string) => new OpenAI({ baseURL: `${api.url}/v1`, apiKey: token, maxRetries: 0, timeout: 120_000 });

  it('generates at most llm.maxTokens without max_tokens, and lowers a larger max_tokens to it', async () => {
    // Greedy on this prompt the tiny model never samples an end token (4,060 tokens without a cap): only the cap stops it.
    const free = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'Describe the node.' }], temperature: 0 });
    expect(free.usage!.completion_tokens).toBe(CAP);
    expect(free.choices[0]!.finish_reason).toBe('length');
    const big = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'Describe the node.' }], temperature: 0, max_tokens: 5000 });
    expect(big.usage!.completion_tokens).toBe(CAP);
    const small = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'Describe the node.' }], temperature: 0, max_tokens: 7 });
    expect(small.usage!.completion_tokens).toBe(7);
  }, 120_000);

  it('lets one identity run one model request at a time (429), others queue as before', async () => {
    const stream = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'Describe the node.' }], temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const second = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(OpenAI.RateLimitError);
    expect((second as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('TOO_MANY_MODEL_REQUESTS');
    // Bob waits in the model's queue instead and is served.
    const other = await client(bob).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(other.usage!.completion_tokens).toBeGreaterThan(0);
    for (let c = await it.next(); !c.done; c = await it.next());
    // Alice's slot is free again once her stream ended.
    const again = await client(alice).chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(again.usage!.completion_tokens).toBeGreaterThan(0);
  }, 120_000);

  it('answers 400 for a schema too deep, too large, or that the grammar cannot compile', async () => {
    const ai = client(alice);
    // Built as text: JSON.stringify itself would overflow the stack on the deepest ones.
    const nested = (n: number) => `${'{"type":"array","items":'.repeat(n)}{"type":"string"}${'}'.repeat(n)}`;
    const deep = nested(2000);
    const tooLarge = { type: 'object', properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`field${i}`, { type: 'string' }])) };
    // node-llama-cpp's grammar builder throws on these ("Unrecognized literal type: object", a null property schema).
    const uncompilable = { type: 'object', properties: { when: { const: { at: {} } }, note: null } };
    const body = (schema: string) => `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${schema}}}}`;
    for (const [name, schema] of [['deep', deep], ['large', JSON.stringify(tooLarge)], ['uncompilable', JSON.stringify(uncompilable)]] as const) {
      const r = await raw(api, 'POST', '/v1/chat/completions', { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body(schema));
      expect(r.status, name).toBe(400);
      const e = JSON.parse(r.body).error;
      expect(e.code, name).toBe('invalid_response_format');
      if (name === 'deep') expect(e.message).toContain(`deeper than ${MAX_SCHEMA_DEPTH}`);
    }
    // 10,000 levels do not even fit in the body limit.
    const deepest = await raw(api, 'POST', '/v1/chat/completions', { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body(nested(10_000)));
    expect(deepest.status).toBe(413);
    // The model still answers afterwards.
    const ok = await ai.chat.completions.create({ model: engine.id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(ok.usage!.completion_tokens).toBeGreaterThan(0);
  }, 120_000);
});
