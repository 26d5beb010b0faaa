import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultRuleDir, loadRuleFiles } from '../daemon/detectors/log-rules.js';
import { ensureTinyModel } from './helpers/test-model.js';

interface Expected {
  expect: { category: string }[];
}

const run = promisify(execFile);
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A folder holding copies of some fixture bundles, as a user's scenario folder would. */
function scenarios(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodesage-eval-'));
  dirs.push(dir);
  for (const n of names) cpSync(join('test/fixtures/bundles', n), join(dir, n), { recursive: true });
  return dir;
}

interface EvalJson {
  expected: number;
  found: number;
  failedBundles: number;
  rows: { bundle: string; diagnoses?: { finding: string; fromModel: boolean; citesEvidence: boolean; namesSubject: boolean; evidenceWords: string[]; latencyMs: number }[] }[];
  model?: { diagnoses: number; fromModel: number; citesEvidence: number; namesSubject: number; usesEvidence: number; medianLatencyMs: number };
}

describe('eval:scenarios', () => {
  it('scores the detectors on every bundle with an expected.json and exits 0 when all are found', async () => {
    // Every fixture bundle of the project, so each one's expected.json stays satisfied.
    const all = readdirSync('test/fixtures/bundles').filter((n) => existsSync(join('test/fixtures/bundles', n, 'expected.json')));
    expect(all).toEqual(expect.arrayContaining(['crashloop-oom-memcg', 'image-pull-causes', 'disk-failing-sata-smart', 'k3s-agent-restart-loop']));
    const { stdout } = await run(process.execPath, ['scripts/eval-scenarios.ts', scenarios(...all), '--json']);
    const r = JSON.parse(stdout) as EvalJson;
    expect(r.rows.map((row) => row.bundle).sort()).toEqual([...all].sort());
    expect(r.failedBundles).toBe(0);
    expect(r.found).toBe(r.expected);
    expect(r.expected).toBeGreaterThanOrEqual(3);
    expect(r.model).toBeUndefined();
    // Every category a shipped log rule can report has a fixture bundle that expects it.
    const expected = new Set(all.flatMap((n) => (JSON.parse(readFileSync(join('test/fixtures/bundles', n, 'expected.json'), 'utf8')) as Expected).expect.map((e) => e.category)));
    for (const rule of loadRuleFiles(defaultRuleDir())) expect([...expected], `${rule.spec.id} (${rule.spec.category})`).toContain(rule.spec.category);
  });

  it('with --model, explains every expected finding with that GGUF and scores each explanation', async () => {
    const model = await ensureTinyModel();
    const { stdout } = await run(process.execPath, ['scripts/eval-scenarios.ts', scenarios('crashloop-oom-memcg'), '--json', '--model', model], {
      env: { ...process.env, NODESAGE_LLM_THREADS: '1' },
    });
    const r = JSON.parse(stdout) as EvalJson;
    const scores = r.rows.flatMap((row) => row.diagnoses ?? []);
    expect(scores.map((s) => s.finding).sort()).toEqual(['CrashLoop(container shop/cart-7c9f8d6b4-x2x9q/cart)', 'OOMKilled(container shop/cart-7c9f8d6b4-x2x9q/cart)']);
    for (const s of scores) {
      expect(s.fromModel).toBe(true);
      expect(s.latencyMs).toBeGreaterThan(0);
    }
    expect(r.model).toMatchObject({ diagnoses: 2, fromModel: 1 });
    // Random weights say nothing about the evidence: the semantic checks give them no credit.
    expect(r.model?.usesEvidence).toBe(0);
    expect(r.model?.namesSubject).toBe(0);
  });

  it('says how to call it when the model file is missing from the arguments', async () => {
    await expect(run(process.execPath, ['scripts/eval-scenarios.ts', scenarios('crashloop-oom-memcg'), '--model'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('usage: node scripts/eval-scenarios.ts DIR'),
    });
  });
});
