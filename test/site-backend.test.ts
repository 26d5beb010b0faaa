/**
 * The opt-in site backend (BYOAI) against a loopback fake OpenAI-compatible
 * server over TLS: diagnoses come back through the same checks as the local
 * model's and are stored; the server sees only redacted text, with the bearer
 * token; and with the backend off it sees no connection at all.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { Status } from '../daemon/core/contract.js';
import { ConfigError, loadConfig } from '../daemon/config.js';
import type { Finding } from '../daemon/core/types.js';
import { LlmDiagnoser } from '../daemon/diagnoser/llm-diagnoser.js';
import { RuleHintDiagnoser } from '../daemon/diagnoser/rule-hint.js';
import { SiteBackend } from '../daemon/diagnoser/site-backend.js';
import { createRedactor } from '../daemon/redact.js';
import { createTestCa } from './harness/tls.js';
import { type DaemonProcess, getJson, runCli, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { criLine } from './helpers/host-root.js';

const SECRET_PASSWORD = 'Tr0ub4dor-and-3-more';
const SECRET_TOKEN = `ghp_${'A1b2C3d4E5'.repeat(3)}123456`;
const TOKEN = 'site-llm-token-0123456789';

interface Seen {
  path: string;
  authorization: string | undefined;
  body: string;
}

let server: Server;
let url: string;
let connections = 0;
const seen: Seen[] = [];
const dir = tempDir();
const caFile = join(dir, 'ca.crt');
const tokenFile = join(dir, 'token');

beforeAll(async () => {
  const ca = createTestCa();
  const pair = ca.issue();
  writeFileSync(caFile, ca.certPem);
  writeFileSync(tokenFile, `${TOKEN}\n`);
  server = createHttpsServer({ key: pair.keyPem, cert: pair.certPem }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
      const answer = {
        evidenceRefs: [0],
        summary: 'checkout crash-loops: it cannot reach its database.',
        probableCause: 'The container exits at start because the database refuses connections.',
        nextStep: 'Check the database service and its endpoints.',
        confidence: 'medium',
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: JSON.stringify(answer) }, finish_reason: 'stop' }], usage: { prompt_tokens: 321, completion_tokens: 45 } }));
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

let daemon: DaemonProcess | undefined;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = undefined;
});

describe('site backend', () => {
  it('diagnoses through the same checks, sends only redacted text, with the token, over TLS checked against the CA file', async () => {
    const { findings } = await analyzeBundle(join(import.meta.dirname, 'fixtures/bundles/crashloop-oom-memcg'));
    const crash = structuredClone(findings.find((f) => f.category === 'CrashLoop')!) as Finding;
    // Evidence as a misconfigured collector might hand it over: secrets not yet redacted.
    crash.evidence.unshift({ source: 'podLog', at: crash.lastSeen, text: `db connect failed password=${SECRET_PASSWORD} token ${SECRET_TOKEN}` });
    const site = new SiteBackend({ config: { url, model: 'qwen2.5-7b-instruct', caFile, tokenFile }, redact: createRedactor() });
    const diagnoser = new LlmDiagnoser({ backend: site, ruleHint: new RuleHintDiagnoser({ nodeName: 'edge-1' }), logger: pino({ level: 'silent' }) });
    const before = seen.length;
    const d = await diagnoser.diagnose(crash);
    await site.dispose();
    expect(d.diagnoser).toBe(`llm:qwen2.5-7b-instruct@127.0.0.1:${new URL(url).port}`);
    expect(d.fallback).toBeUndefined();
    expect(d.summary).toBe('checkout crash-loops: it cannot reach its database.');
    expect(d.tokens).toEqual({ prompt: 321, completion: 45 });
    expect(d.commands.length).toBeGreaterThan(0); // from the rule hint, never from the server
    const sent = seen.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.path).toBe('/v1/chat/completions');
    expect(sent[0]!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(sent[0]!.body).not.toContain(SECRET_PASSWORD);
    expect(sent[0]!.body).not.toContain(SECRET_TOKEN);
    expect(sent[0]!.body).toContain('[REDACTED:');
    const req = JSON.parse(sent[0]!.body) as { model: string; response_format: { type: string; json_schema: { schema: { required: string[] } } } };
    expect(req.model).toBe('qwen2.5-7b-instruct');
    expect(req.response_format.type).toBe('json_schema');
    expect(req.response_format.json_schema.schema.required).toEqual(['evidenceRefs', 'summary', 'probableCause', 'nextStep', 'confidence']);
  });

  it('falls back to the rule hint when the server certificate is not from the configured CA', async () => {
    const other = join(tempDir(), 'other-ca.crt');
    writeFileSync(other, createTestCa('another-ca').certPem);
    const { findings } = await analyzeBundle(join(import.meta.dirname, 'fixtures/bundles/crashloop-oom-memcg'));
    const site = new SiteBackend({ config: { url, model: null, caFile: other, tokenFile: null }, redact: createRedactor() });
    const d = await new LlmDiagnoser({ backend: site, ruleHint: new RuleHintDiagnoser({ nodeName: 'edge-1' }), logger: pino({ level: 'silent' }) }).diagnose(
      findings.find((f) => f.category === 'CrashLoop')!,
    );
    await site.dispose();
    expect(d).toMatchObject({ diagnoser: 'rule-hint', fallback: 'error' });
    expect(site.status()).toMatchObject({ state: 'failed', reason: expect.stringMatching(/certificate/i) });
  });

  it('is refused with a local model beside it, over plain http off the node, or without a url', () => {
    const env = (e: Record<string, string>) => () => loadConfig({ env: { NODE_NAME: 'n1', ...e }, serviceAccountDir: '/nonexistent' });
    expect(env({ NODESAGE_LLM_BACKEND_URL: url, NODESAGE_MODEL: '/m/x.gguf' })).toThrow(ConfigError);
    expect(env({ NODESAGE_LLM_BACKEND_URL: 'http://10.0.0.9:8080/v1' })).toThrow(/https/);
    expect(env({ NODESAGE_LLM_BACKEND_TOKEN_FILE: tokenFile })).toThrow(/needs a url/);
    expect(env({ NODESAGE_LLM_BACKEND_URL: 'http://127.0.0.1:8080/v1' })().llm.backend).toEqual({ url: 'http://127.0.0.1:8080/v1', model: null, caFile: null, tokenFile: null });
  });
});

describe('site backend in the daemon', () => {
  async function liveNode(env: Record<string, string>): Promise<DaemonProcess> {
    const { FakeKubelet } = await import('./harness/fake-kubelet.js');
    const kubelet = await FakeKubelet.create({ bundleDir: join(import.meta.dirname, 'fixtures/kube') });
    const root = tempDir();
    // The crash-looping container's log, with secrets in it.
    const logDir = join(root, 'host/var/log/pods/shop_checkout-6f9c7d8b5-q2xlm_7f3a9c1e-5b2d-4e8f-a6c0-1d9b3e5f7a2c/checkout');
    mkdirSync(logDir, { recursive: true });
    const at = new Date(Date.now() - 5000);
    writeFileSync(
      join(logDir, '0.log'),
      criLine(at, 'stderr', 'F', `level=error msg="db connect failed" dsn="postgres://app:${SECRET_PASSWORD}@orders-db:5432/orders" password=${SECRET_PASSWORD}`) +
        criLine(at, 'stderr', 'F', `FATAL: cannot start: auth token ${SECRET_TOKEN} rejected`),
    );
    writeFileSync(join(root, 'kubelet-token'), 'fake-kubelet-token\n');
    writeFileSync(join(root, 'kubelet-ca.crt'), kubelet.ca.certPem);
    const d = await startDaemon({
      env: {
        NODESAGE_DATA_DIR: join(root, 'data'),
        NODESAGE_HOST_ROOT: join(root, 'host'),
        NODE_NAME: 'edge-node-1',
        NODESAGE_KUBELET_URL: kubelet.url,
        NODESAGE_KUBELET_TOKEN_FILE: join(root, 'kubelet-token'),
        NODESAGE_KUBELET_CA_FILE: join(root, 'kubelet-ca.crt'),
        NODESAGE_DETECT_INTERVAL_SECONDS: '0.5',
        ...env,
      },
    });
    const kill = d.kill.bind(d);
    d.kill = async (signal) => {
      const r = await kill(signal);
      await kubelet.stop();
      return r;
    };
    return d;
  }

  const diagnosed = (d: DaemonProcess) =>
    waitFor(
      async () => {
        const f = (await getJson<{ items: Finding[] }>(`${d.url}/v1/findings?category=CrashLoop`)).body.items[0];
        return f?.diagnosis ? f : null;
      },
      60_000,
      200,
    );

  it('stores the site diagnosis, says in /v1/status that evidence leaves the node, and sends no secret', async () => {
    const before = seen.length;
    daemon = await liveNode({ NODESAGE_LLM_BACKEND_URL: url, NODESAGE_LLM_BACKEND_CA_FILE: caFile, NODESAGE_LLM_BACKEND_TOKEN_FILE: tokenFile });
    const f = await diagnosed(daemon);
    expect(f.diagnosis?.diagnoser).toMatch(/^llm:default@127\.0\.0\.1:/);
    expect(f.diagnosis?.summary).toBe('checkout crash-loops: it cannot reach its database.');
    const status = (await getJson<Status>(`${daemon.url}/v1/status`)).body;
    expect(status.model).toMatchObject({ state: 'ready', backend: 'site', endpoint: url, dataLeavesNode: true });
    expect(status.model.notice).toContain('leaves this node');
    expect(status.rulesOnly).toBe(false);
    const text = await runCli(['status'], { env: { NODESAGE_LISTEN: new URL(daemon.url).host } });
    expect(text.stdout).toContain(`each diagnosis prompt, with its redacted evidence, leaves this node`);
    const sent = seen.slice(before);
    expect(sent.length).toBeGreaterThan(0);
    const all = sent.map((s) => s.body).join('\n');
    expect(all).toContain('checkout');
    // The log lines with the secrets were in the prompt, redacted.
    expect(all).toContain('db connect failed');
    expect(all).toContain('[REDACTED:');
    expect(all).not.toContain(SECRET_PASSWORD);
    expect(all).not.toContain(SECRET_TOKEN);
  }, 90_000);

  it('with the backend off, the server sees no connection at all', async () => {
    const before = connections;
    daemon = await liveNode({});
    const f = await diagnosed(daemon);
    expect(f.diagnosis?.diagnoser).toBe('rule-hint');
    const status = (await getJson<Status>(`${daemon.url}/v1/status`)).body;
    expect(status.model.dataLeavesNode).toBeUndefined();
    expect(connections).toBe(before);
  }, 90_000);
});
