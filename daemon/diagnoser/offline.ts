/**
 * Diagnoses a list of findings in place, worst first, one at a time (one
 * model, one sequence): `nodesage analyze --bundle DIR --model FILE`.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type Finding, severityRank } from '../core/types.js';
import { buildDiagnoser } from './build.js';

/** Adds a diagnosis to every warning or critical finding; info findings keep null. */
export async function diagnoseAll(findings: Finding[], config: Pick<Config, 'nodeName' | 'model' | 'llm'>, logger: Logger): Promise<void> {
  const byId = new Map(findings.map((f) => [f.id, f]));
  const setup = buildDiagnoser({
    config,
    logger,
    context: (f) => ({
      causes: (f.causes ?? []).flatMap((id) => {
        const c = byId.get(id);
        return c ? [{ category: c.category, title: c.title }] : [];
      }),
    }),
  });
  try {
    const todo = findings.filter((f) => f.severity !== 'info').sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
    for (const f of todo) f.diagnosis = await setup.diagnoser.diagnose(f);
  } finally {
    await setup.dispose();
  }
}
