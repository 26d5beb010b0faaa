/**
 * The daemon as an attacker on the node's network meets it: over 5,000
 * requests on real sockets against the built daemon (host mode, a static
 * token file, the tiny model loaded): malformed JSON, wrong types, 10 MB
 * bodies, deep nesting, leap seconds, path tricks, header floods, malformed
 * HTTP, and slow headers and bodies with the timeouts set short. No answer
 * may be a 5xx, carry a stack trace or a file path, and the process must
 * stay up; every slow connection is closed within its timeout.
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../daemon/api/auth/static-tokens.js';
import { type DaemonProcess, PROJECT_ROOT, startDaemon, tempDir } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const HEADERS_TIMEOUT_S = 2;
const REQUEST_TIMEOUT_S = 3;
/** Node checks the timeouts every quarter of the headers timeout; the rest is event-loop latency on a loaded 2-core machine. */
const SLACK_MS = 3000;

interface Req {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The server may close before reading it all (oversized bodies). */
  mayReset?: boolean;
}

let daemon: DaemonProcess;
let port: number;
let token: string;

beforeAll(async () => {
  const dir = tempDir();
  const tokens = join(dir, 'tokens');
  token = createToken(tokens, 'tester');
  const config = join(dir, 'nodesage.yaml');
  writeFileSync(
    config,
    [
      `limits:`,
      `  headersTimeoutSeconds: ${HEADERS_TIMEOUT_S}`,
      `  requestTimeoutSeconds: ${REQUEST_TIMEOUT_S}`,
      `  maxConnections: 1024`,
      `  requestsPerSecond: 100000`,
      `  burst: 100000`,
      `llm:`,
      `  maxTokens: 16`,
      `  contextSize: 2048`,
      '',
    ].join('\n'),
  );
  daemon = await startDaemon({
    env: {
      NODESAGE_CONFIG: config,
      NODESAGE_DATA_DIR: join(dir, 'data'),
      NODESAGE_HOST_ROOT: tempDir(),
      NODESAGE_AUTH_TOKEN_FILE: tokens,
      NODESAGE_MODEL: await ensureTinyModel(),
    },
  });
  port = Number(new URL(daemon.url).port);
}, 120_000);
afterAll(async () => {
  await daemon?.kill('SIGKILL');
});

type Answer = { status: number; body: string } | { error: string; reused?: boolean };

/** Sends one request; a reset of a reused keep-alive socket (the server closed it after its previous answer) is retried once, as Node's docs advise. */
async function send(agent: Agent, r: Req): Promise<Answer> {
  const first = await sendOnce(agent, r);
  return 'error' in first && first.reused && first.error === 'ECONNRESET' ? sendOnce(new Agent(), r) : first;
}

function sendOnce(agent: Agent, r: Req): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, agent, method: r.method, path: r.path, headers: r.headers ?? {}, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, reused: req.reusedSocket }));
    req.end(r.body);
  });
}

/** Sends raw bytes on a new connection and returns what came back before the server closed it. */
function sendRaw(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (out += c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(out));
    s.write(bytes);
    setTimeout(() => s.end(), 300);
  });
}

/** A deterministic generator of hostile requests (about 5,000). */
function hostileRequests(): Req[] {
  const auth = { authorization: `Bearer ${token}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const out: Req[] = [];
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const deepObj = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  const bodies = [
    '', '{', '}', '{"question":', 'null', '[]', '"x"', '1e999', 'true', '{"question":null}', '{"question":1}', '{"question":[]}', '{"question":{}}',
    '{"question":""}', '{"question":"   "}', `{"question":"${'q'.repeat(5000)}"}`, '{"question":"ok","since":"2016-12-31T23:59:60Z"}',
    '{"question":"ok","since":"not a date"}', '{"question":"ok","since":"+275760-09-13T00:00:00Z"}', '{"question":"ok","since":"0000-01-01T00:00:00+23:59"}',
    '{"question":"ok","extra":1}', '{"question":"\\ud800"}', '{"question":"ok","__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}',
    deep(10_000), deepObj(5_000), `{"question":${deep(3000)}}`, '\u0000\u0001\u0002', '{"question":"ok"}garbage', '\uFEFF{"question":"ok"}',
  ];
  const chatBodies = [
    '{}', '{"messages":"hi"}', '{"messages":[]}', '{"messages":[{"role":"user"}]}', '{"messages":[{"role":"wizard","content":"x"}]}',
    '{"messages":[{"role":"tool","content":"x"}]}', '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}',
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":-1}', '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e20}',
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":"x"}', '{"messages":[{"role":"user","content":"hi"}],"temperature":5}',
    '{"messages":[{"role":"user","content":"hi"}],"n":3}', '{"messages":[{"role":"user","content":"hi"}],"tools":[{}]}',
    '{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4"}', '{"messages":[{"role":"user","content":"hi"}],"stop":[1,2]}',
    '{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}',
    '{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{}}}',
    `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"schema":${`${'{"type":"array","items":'.repeat(2000)}{}${'}'.repeat(2000)}`}}}}`,
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"schema":{"const":{"a":{}}}}}}',
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{"a":null}}}}}',
    `{"messages":[${Array.from({ length: 600 }, () => '{"role":"user","content":"x"}').join(',')}]}`,
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}',
  ];
  const getPaths = [
    '/v1/status', '/v1/findings', '/v1/findings?status=open', '/v1/findings?severity=loud', '/v1/findings?limit=-1', '/v1/findings?limit=abc',
    '/v1/findings?limit=1e9', '/v1/findings?cursor=%00%01', `/v1/findings?cursor=${'z'.repeat(600)}`, '/v1/findings?since=2016-12-31T23:59:60Z',
    '/v1/findings?since=9999-99-99', '/v1/findings?since=0000-01-01T00:00:00%2B23:59', '/v1/findings?since=%27%3B--', '/v1/findings?x=1',
    '/v1/findings?status=open&status=resolved', '/v1/findings?category[]=a', '/v1/findings/xyz', '/v1/findings/0123456789abcdef',
    `/v1/findings/${'f'.repeat(5000)}`, '/v1/models', '/v1/models/nope', `/v1/models/${'m'.repeat(300)}`, '/metrics', '/healthz', '/readyz',
    '/v1/../v1/status', '/v1/%2e%2e/v1/status', '/v1/findings/%2e%2e%2fstatus', '//v1/status', '/v1//status', '/v1/./status', '/v1/status/',
    '/v1\\status', '/%00', '/v1/status%00', '/v1/st%61tus', '/%u2215', '/\u00e9t\u00e9', `/${'a/'.repeat(2000)}`, '/*', '/?', '/v1/status?#frag',
  ];
  const authVariants: Record<string, string>[] = [
    {}, { authorization: 'Bearer' }, { authorization: 'Bearer ' }, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: `Bearer ${token}x` },
    { authorization: `bearer ${token}` }, { authorization: `Bearer ${token} extra` }, { authorization: `Bearer ${'t'.repeat(8000)}` }, auth,
  ];
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  for (let round = 0; round < 6; round++) {
    for (const path of getPaths) for (const a of authVariants) out.push({ method: 'GET', path, headers: a });
    for (const b of bodies) {
      for (const ct of ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data; boundary=x']) {
        out.push({ method: 'POST', path: '/v1/ask', headers: { ...auth, 'content-type': ct }, body: b });
      }
      out.push({ method: 'POST', path: '/v1/ask', headers: auth, body: b });
      out.push({ method: 'POST', path: '/v1/chat/completions', headers: json, body: b });
    }
    for (const b of chatBodies) for (let i = 0; i < 8; i++) out.push({ method: 'POST', path: '/v1/chat/completions', headers: json, body: b });
    for (const m of methods) for (const path of ['/v1/status', '/v1/findings', '/v1/ask', '/v1/chat/completions', '/metrics', '/nope']) out.push({ method: m, path, headers: json, body: m === 'GET' || m === 'HEAD' ? undefined : '{}' });
    // Header floods: many headers, huge headers, duplicate and odd ones.
    const many = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`x-flood-${i}`, 'v']));
    for (let i = 0; i < 10; i++) out.push({ method: 'GET', path: '/v1/status', headers: { ...auth, ...many } });
    // Above Node's 16 KiB header limit: 431, and the connection is closed, possibly while the client still writes.
    for (let i = 0; i < 10; i++) out.push({ method: 'GET', path: '/v1/status', headers: { ...auth, 'x-big': 'b'.repeat(20_000) }, mayReset: true });
    for (let i = 0; i < 10; i++) out.push({ method: 'GET', path: '/v1/status', headers: { ...auth, accept: 'text/event-stream', 'accept-encoding': 'gzip, br, zstd', 'x-forwarded-for': '1.2.3.4', host: 'evil.example' } });
    for (let i = 0; i < 10; i++) out.push({ method: 'POST', path: '/v1/ask', headers: { ...json, accept: 'text/event-stream' }, body: '{"question":"disk?","since":"2016-12-31T23:59:60Z"}' });
  }
  // 10 MB bodies, announced or chunked.
  const big = Buffer.alloc(10 * 1024 * 1024, 'a');
  for (let i = 0; i < 6; i++) {
    out.push({ method: 'POST', path: '/v1/ask', headers: json, body: big, mayReset: true });
    out.push({ method: 'POST', path: '/v1/chat/completions', headers: { ...json, 'transfer-encoding': 'chunked' }, body: big, mayReset: true });
    out.push({ method: 'POST', path: '/v1/ask', headers: { 'content-type': 'application/json' }, body: big, mayReset: true });
  }
  return out;
}

/** The API's error shape (nodesage's {error: {code, message}} or OpenAI's {error: {message, type, code}}). */
function hasErrorCode(body: string): boolean {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; type?: unknown; message?: unknown } }).error;
    return typeof e?.message === 'string' && (typeof e.code === 'string' || typeof e.type === 'string');
  } catch {
    return false;
  }
}

const RAW_GARBAGE = [
  'GARBAGE\r\n\r\n',
  'GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n',
  'GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
  'POST /v1/ask HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n0\r\n\r\n',
  'POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n',
  `GET /${'a'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'GET /v1/status HTTP/1.1\r\n\u0000\u0000\r\n\r\n',
  'GET /v1/status HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n',
  'GET  /v1/status  HTTP/1.1\r\n\r\n',
];

describe('hostile requests against the daemon', () => {
  it('gives no 5xx, no stack trace, no file path, and stays up; slow connections are closed within their timeouts', async () => {
    const requests = hostileRequests();
    expect(requests.length).toBeGreaterThanOrEqual(5000);
    const agent = new Agent({ keepAlive: true, maxSockets: 12 });
    const statuses = new Map<number, number>();
    const problems: string[] = [];
    let resets = 0;
    let i = 0;
    const worker = async () => {
      for (let r = requests[i++]; r; r = requests[i++]) {
        const res = await send(agent, r);
        if ('error' in res) {
          if (r.mayReset) resets++;
          else problems.push(`${r.method} ${r.path.slice(0, 80)}: connection error ${res.error}`);
          continue;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const where = `${r.method} ${r.path.slice(0, 80)} → ${res.status} ${res.body.slice(0, 200)}`;
        if (res.status >= 500) problems.push(`5xx: ${where}`);
        if (res.status >= 400 && r.method !== 'HEAD' && !hasErrorCode(res.body)) problems.push(`not a JSON error with a code: ${where}`);
        if (/\n\s+at \S+ \(|node:internal|\.ts:\d+|\.js:\d+/.test(res.body)) problems.push(`stack trace: ${where}`);
        const mayShowStorePath = res.status === 200 && r.path.startsWith('/v1/status');
        if (res.body.includes(PROJECT_ROOT) || res.body.includes('node_modules') || (!mayShowStorePath && /(^|["\s(])\/(tmp|home|root|var|usr|work)\//.test(res.body))) {
          problems.push(`file path: ${where}`);
        }
      }
    };

    // Slow clients at the same time: headers one byte at a time, bodies one byte at a time.
    const slow = Array.from({ length: 60 }, (_, n) =>
      new Promise<{ kind: string; ms: number }>((resolve) => {
        const kind = n % 2 === 0 ? 'headers' : 'body';
        const s = connect(port, '127.0.0.1');
        const t0 = Date.now();
        const text =
          kind === 'headers'
            ? `GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-Pad: ${'p'.repeat(500)}\r\n\r\n`
            : `POST /v1/ask HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{"question":"${'q'.repeat(1980)}"}`;
        let at = kind === 'headers' ? 0 : text.indexOf('\r\n\r\n') + 4;
        if (at > 0) s.write(text.slice(0, at));
        const timer = setInterval(() => {
          if (!s.destroyed && at < text.length) s.write(text[at++]!);
        }, 100);
        s.on('error', () => undefined);
        s.on('close', () => {
          clearInterval(timer);
          resolve({ kind, ms: Date.now() - t0 });
        });
      }),
    );

    const t0 = Date.now();
    await Promise.all(Array.from({ length: 12 }, worker));
    const rawAnswers = await Promise.all(RAW_GARBAGE.map(sendRaw));
    const slowResults = await Promise.all(slow);
    agent.destroy();
    const seconds = (Date.now() - t0) / 1000;

    for (const [n, a] of rawAnswers.entries()) {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(a)?.[1] ?? 0);
      if (status >= 500) problems.push(`5xx on raw request ${n}: ${a.slice(0, 200)}`);
      // The first answer's body (a kept-alive connection may carry a second answer after it).
      const head = a.slice(0, a.indexOf('\r\n\r\n'));
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? -1);
      const body = a.slice(head.length + 4, length >= 0 ? head.length + 4 + length : undefined);
      if (status >= 400 && !hasErrorCode(body)) problems.push(`raw request ${n}: not a JSON error: ${a.slice(0, 200)}`);
      if (/\n\s+at \S+ \(/.test(a) || a.includes(PROJECT_ROOT)) problems.push(`leak on raw request ${n}`);
    }
    const worst = { headers: 0, body: 0 } as Record<string, number>;
    const earliest = { headers: Number.POSITIVE_INFINITY, body: Number.POSITIVE_INFINITY } as Record<string, number>;
    for (const s of slowResults) {
      worst[s.kind] = Math.max(worst[s.kind]!, s.ms);
      earliest[s.kind] = Math.min(earliest[s.kind]!, s.ms);
    }

    const summary = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ');
    process.stdout.write(
      `hostile requests: ${requests.length} in ${seconds.toFixed(1)} s (${summary}; ${resets} oversized bodies cut off); ` +
        `${RAW_GARBAGE.length} malformed; slow headers closed after ≤ ${worst.headers} ms, slow bodies ≤ ${worst.body} ms\n`,
    );
    expect(problems.slice(0, 20)).toEqual([]);
    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(100);
    // Each slow connection is closed within its timeout (and never before it).
    expect(earliest.headers).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_S * 1000 - 50);
    expect(earliest.body).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_S * 1000 - 50);
    expect(worst.headers).toBeLessThan(HEADERS_TIMEOUT_S * 1000 + SLACK_MS);
    expect(worst.body).toBeLessThan(REQUEST_TIMEOUT_S * 1000 + SLACK_MS);
    // Still alive and serving.
    expect(daemon.proc.exitCode).toBeNull();
    const after = await send(new Agent(), { method: 'GET', path: '/v1/status', headers: { authorization: `Bearer ${token}` } });
    expect('status' in after && after.status).toBe(200);
  }, 120_000);
});
