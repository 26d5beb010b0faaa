/**
 * Diagnoses a list of findings in place, worst first, one at a time (one
 * model, one sequence): `nodesage analyze --bundle DIR [--model FILE]`.
 * Without a model every finding gets the rule hint, as in the daemon.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type DiagnosisInput, severityRank } from '../core/types.js';
import { buildDiagnoser } from './build.js';

/** A step of diagnoseAll, for a progress line. */
export type OfflineProgress =
  | { stage: 'checking'; model: string }
  | { stage: 'loading'; model: string; sizeBytes: number }
  | { stage: 'diagnosing'; done: number; total: number };

/** Options of diagnoseAll. */
export interface DiagnoseAllOptions {
  /** Told each step (checking, loading, each diagnosis). Defaults to none. */
  onProgress?: (p: OfflineProgress) => void;
}

/**
 * Adds a diagnosis to every finding: with a model, warning and critical ones
 * are explained by it and info ones get the rule hint. The model is checked
 * and loaded first, so an unusable model rejects (ModelRefusedError or
 * ModelLoadError) before any finding is touched.
 */
export async function diagnoseAll(
  findings: DiagnosisInput[],
  config: Pick<Config, 'nodeName' | 'model' | 'llm'>,
  logger: Logger,
  opts: DiagnoseAllOptions = {},
): Promise<void> {
  const byId = new Map(findings.map((f) => [f.id, f]));
  const setup = buildDiagnoser({
    config,
    logger,
    checkNow: false,
    context: (f) => ({
      causes: (f.causes ?? []).flatMap((id) => {
        const c = byId.get(id);
        return c ? [{ category: c.category, title: c.title }] : [];
      }),
    }),
  });
  try {
    if (setup.engine) {
      opts.onProgress?.({ stage: 'checking', model: setup.engine.id });
      const summary = await setup.engine.check();
      opts.onProgress?.({ stage: 'loading', model: setup.engine.id, sizeBytes: summary.sizeBytes });
      await setup.engine.load();
    }
    const todo = [...findings].sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
    let done = 0;
    for (const f of todo) {
      opts.onProgress?.({ stage: 'diagnosing', done, total: todo.length });
      f.diagnosis = f.severity === 'info' ? await setup.ruleHint.diagnose(f) : await setup.diagnoser.diagnose(f);
      done++;
    }
  } finally {
    await setup.dispose();
  }
}
