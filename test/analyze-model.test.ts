/**
 * `nodesage analyze --model` explains a finding with its detector's facts, as
 * the daemon does: an offline CrashLoop carries its exit code and OOM reason
 * into the rule hint and into the prompt the model is given.
 */
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { Diagnosis, Finding } from '../daemon/core/types.js';
import { LlmEngine } from '../daemon/diagnoser/engine.js';
import { type CompletionBackend, LlmDiagnoser } from '../daemon/diagnoser/llm-diagnoser.js';
import { ruleHint, RuleHintDiagnoser } from '../daemon/diagnoser/rule-hint.js';
import { runCli } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

const CRASH_BUNDLE = new URL('./fixtures/bundles/crashloop-oom-memcg', import.meta.url).pathname;
const OOM_STEP = 'Check whether the memory limit was hit (OOMKilled in the last state) or a liveness probe killed it.';
const engines: LlmEngine[] = [];

afterAll(async () => {
  for (const e of engines) await e.dispose();
});

describe('analyze --model on a CrashLoop bundle', () => {
  it('prints a diagnosis grounded in the exit code and the OOM reason', async () => {
    const model = await ensureTinyModel();
    const r = await runCli(['analyze', '--bundle', CRASH_BUNDLE, '--format', 'json', '--model', model], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    const findings = JSON.parse(r.stdout) as Finding[];
    const crash = findings.find((f) => f.category === 'CrashLoop')!;
    expect(crash.diagnosis).not.toBeNull();
    const d = crash.diagnosis as Diagnosis;
    // The model writes the first step; the rule hint's steps follow, and only the exit code 137 fact brings this one.
    expect(d.nextSteps).toContain(OOM_STEP);
    // The facts stay out of the printed Finding shape.
    expect(Object.keys(crash)).not.toContain('facts');
  });

  it('gives the model the exit code and reason in the facts line and the rule hint', async () => {
    const { findings } = await analyzeBundle(CRASH_BUNDLE);
    const crash = findings.find((f) => f.category === 'CrashLoop')!;
    const hint = ruleHint(crash, { nodeName: 'edge-01' });
    expect(hint.summary).toContain('last exit code 137');
    expect(hint.probableCause).toContain('(reason OOMKilled)');

    const engine = new LlmEngine({ modelPath: await ensureTinyModel(), memoryBudgetBytes: 1024 ** 3, contextSize: 4096, gpu: false, idleUnloadMs: 0, logger: pino({ level: 'silent' }) });
    engines.push(engine);
    // The real engine, with the user prompt of every request kept for the assertions.
    const prompts: string[] = [];
    const recording: CompletionBackend = {
      id: engine.id,
      countTokens: (t, s) => engine.countTokens(t, s),
      fill: (req) => {
        prompts.push(req.userPrompt);
        return engine.fill(req);
      },
    };
    const diagnoser = new LlmDiagnoser({ backend: recording, ruleHint: new RuleHintDiagnoser({ nodeName: 'edge-01' }), logger: pino({ level: 'silent' }) });
    await diagnoser.diagnose(crash);
    expect(prompts.length).toBeGreaterThan(0);
    const facts = prompts[0]!.split('\n').find((l) => l.startsWith('facts: '));
    expect(facts).toBeDefined();
    expect(facts).toContain('exitCode=137');
    expect(facts).toContain('lastReason=OOMKilled');
    expect(prompts[0]).toContain(`RULE HINT: ${hint.probableCause}`);
  });
});
