/**
 * The local model inside the real daemon and CLI: a generated random-weight
 * GGUF (real llama.cpp path) diagnoses a CrashLoop end to end, and every kind
 * of unusable model leaves the daemon running rules-only with the reason in
 * /v1/status.
 */
import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Status } from '../daemon/core/contract.js';
import type { Diagnosis, Finding } from '../daemon/core/types.js';
import { type DaemonProcess, getJson, runCli, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { ensureTestModel, ensureTinyModel } from './helpers/test-model.js';

const CRASHLOOP_BUNDLE = join(import.meta.dirname, 'fixtures/bundles/crashloop-oom-memcg');
const TIMEOUT_S = 120;

function expectSchemaValid(d: Diagnosis | null): asserts d is Diagnosis {
  expect(d).not.toBeNull();
  expect(typeof d!.summary).toBe('string');
  expect(d!.summary.length).toBeGreaterThan(0);
  expect(typeof d!.probableCause).toBe('string');
  expect(Array.isArray(d!.nextSteps)).toBe(true);
  expect(Array.isArray(d!.commands)).toBe(true);
  expect(['low', 'medium', 'high']).toContain(d!.confidence);
  expect(d!.tokens.prompt).toBeGreaterThan(0);
  expect(d!.tokens.completion).toBeGreaterThan(0);
  expect(d!.latencyMs).toBeLessThan(TIMEOUT_S * 1000);
}

let daemon: DaemonProcess | undefined;
afterEach(async () => {
  await daemon?.kill('SIGKILL');
  daemon = undefined;
});

describe('diagnosis with the local model', () => {
  it('analyze --bundle --model explains the CrashLoop with llm:<model id>', async () => {
    const model = await ensureTinyModel();
    const id = model.split('/').pop()!.replace(/\.gguf$/, '');
    // The tiny model's made-up vocabulary spends about two tokens per word: give it room.
    const r = await runCli(['analyze', '--bundle', CRASHLOOP_BUNDLE, '--model', model, '--format', 'json'], {
      env: { NODESAGE_LLM_CONTEXT_SIZE: '4096', NODESAGE_LLM_TIMEOUT_SECONDS: String(TIMEOUT_S) },
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const findings = JSON.parse(r.stdout) as Finding[];
    const crash = findings.find((f) => f.category === 'CrashLoop')!;
    expectSchemaValid(crash.diagnosis);
    expect(crash.diagnosis.diagnoser).toBe(`llm:${id}`);
    // Only read-only commands survive, and they name the pod.
    for (const c of crash.diagnosis.commands) expect(c).not.toMatch(/\b(delete|drain|cordon|rm|kill|reboot|apply|patch|edit|scale)\b|[;&|`]|\$\(/);
    // Every cited evidence index exists.
    for (const i of crash.diagnosis.evidenceRefs ?? []) expect(i).toBeLessThan(crash.evidence.length);
  }, 300_000);

  it('the daemon stores an LLM diagnosis for a CrashLoop finding of a live node', async () => {
    const model = await ensureTinyModel();
    const dataDir = tempDir();
    // A host root with one crash-looping container is enough: no API server needed.
    const { FakeKubelet } = await import('./harness/fake-kubelet.js');
    const kubelet = await FakeKubelet.create({ bundleDir: join(import.meta.dirname, 'fixtures/kube') });
    try {
      writeFileSync(join(dataDir, 'token'), 'fake-kubelet-token\n');
      writeFileSync(join(dataDir, 'ca.crt'), kubelet.ca.certPem);
      daemon = await startDaemon({
        env: {
          NODESAGE_DATA_DIR: join(dataDir, 'data'),
          NODE_NAME: 'edge-node-1',
          NODESAGE_MODEL: model,
          NODESAGE_LLM_CONTEXT_SIZE: '4096',
          // Random weights rarely stop early: leave room for the whole (bounded) JSON answer.
          NODESAGE_LLM_MAX_TOKENS: '1200',
          NODESAGE_KUBELET_URL: kubelet.url,
          NODESAGE_KUBELET_TOKEN_FILE: join(dataDir, 'token'),
          NODESAGE_KUBELET_CA_FILE: join(dataDir, 'ca.crt'),
          NODESAGE_DETECT_INTERVAL_SECONDS: '0.5',
        },
      });
      const crash = await waitFor(
        async () => {
          const r = await getJson<{ items: Finding[] }>(`${daemon!.url}/v1/findings?category=CrashLoop`);
          const f = r.body.items[0];
          return f?.diagnosis ? f : null;
        },
        200_000,
        500,
      );
      expectSchemaValid(crash.diagnosis);
      expect(crash.diagnosis.diagnoser).toMatch(/^llm:tiny-/);
      const status = (await getJson<Status>(`${daemon.url}/v1/status`)).body;
      expect(status.model.state).toBe('ready');
      expect(status.model.backend).toBe('cpu');
      expect(status.rulesOnly).toBe(false);
    } finally {
      await kubelet.stop();
    }
  }, 300_000);
});

describe('an unusable model leaves the daemon running rules-only and says why', () => {
  async function broken(kind: string): Promise<{ path: string; env?: Record<string, string> }> {
    const dir = tempDir();
    const tiny = await ensureTinyModel();
    switch (kind) {
      case 'missing':
        return { path: join(dir, 'nope.gguf') };
      case 'truncated': {
        const p = join(dir, 'cut.gguf');
        copyFileSync(tiny, p);
        truncateSync(p, Math.floor(readFileSync(p).length / 2));
        return { path: p };
      }
      case 'not a GGUF': {
        const p = join(dir, 'model.gguf');
        writeFileSync(p, '<html>404 Not Found</html>\n'.repeat(100));
        return { path: p };
      }
      case 'wrong architecture':
        return { path: await ensureTestModel('arch-bert', { architecture: 'bert' }) };
      default:
        return { path: tiny, env: { NODESAGE_LLM_MEMORY_BUDGET_MB: '1' } };
    }
  }

  it.each([
    ['missing', /not found|no such file|does not exist/i],
    ['truncated', /truncat|shorter|incomplete/i],
    ['not a GGUF', /not a GGUF|magic/i],
    ['wrong architecture', /architecture|bert/i],
    ['too big for the budget', /budget|memory/i],
  ])('%s', async (kind, reason) => {
    const m = await broken(kind);
    daemon = await startDaemon({
      env: {
        NODESAGE_DATA_DIR: tempDir(),
        NODESAGE_MODEL: m.path,
        NODESAGE_DISK_WARN_PERCENT: '1',
        NODESAGE_DETECT_INTERVAL_SECONDS: '0.3',
        ...m.env,
      },
    });
    const status = await waitFor(async () => {
      const s = (await getJson<Status>(`${daemon!.url}/v1/status`)).body;
      return s.model.state === 'refused' || s.model.state === 'failed' ? s : null;
    });
    expect(status.model.reason).toMatch(reason);
    expect(status.rulesOnly).toBe(true);
    // Findings keep coming, explained by the rule hint.
    const f = await waitFor(async () => {
      const r = await getJson<{ items: Finding[] }>(`${daemon!.url}/v1/findings?category=DiskFull`);
      return r.body.items.find((x) => x.diagnosis) ?? null;
    });
    expect(f.diagnosis!.diagnoser).toBe('rule-hint');
  }, 60_000);
});
