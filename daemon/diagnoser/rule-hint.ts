/**
 * The rule-hint diagnoser: a deterministic explanation for every category of
 * the problem catalog, filled with the finding's subject and facts.
 *
 * It is the diagnosis of rules-only mode (no model, or a model too big for the
 * node), the grounding the LLM prompt starts from, and the fallback when the
 * model answers badly. So it never fails and never waits for anything: every
 * hint is plain text plus read-only commands that name the finding's own
 * namespace, pod, container and node, so an operator can paste them as they are.
 *
 * The hints live by problem family in hints/ (workload, node, kernel,
 * hardware, services, logs) over a shared context (hints/context.ts); this
 * module composes them, and the compiler checks that every category has one.
 * `high` confidence only where the detector classified the cause from
 * structured data; `low` when the finding carries no evidence.
 */
import type { Category, Diagnosis, DiagnosisInput, Diagnoser } from '../core/types.js';
import { describeNode, type HintBuilder, makeCtx, type RuleHint, type RuleHintOptions } from './hints/context.js';
import { HARDWARE_HINTS } from './hints/hardware.js';
import { KERNEL_HINTS } from './hints/kernel.js';
import { LOGS_HINTS } from './hints/logs.js';
import { NODE_HINTS } from './hints/node.js';
import { SERVICES_HINTS } from './hints/services.js';
import { WORKLOAD_HINTS } from './hints/workload.js';

export { factsOf, type RuleHint, type RuleHintOptions } from './hints/context.js';
export { registryHost } from './hints/workload.js';

const HINTS: Record<Category, HintBuilder> = { ...WORKLOAD_HINTS, ...NODE_HINTS, ...KERNEL_HINTS, ...HARDWARE_HINTS, ...SERVICES_HINTS, ...LOGS_HINTS };

/** The deterministic hint for a finding. Never throws. */
export function ruleHint(finding: DiagnosisInput, options: RuleHintOptions): RuleHint {
  const c = makeCtx(finding, options.nodeName);
  const build = HINTS[finding.category];
  const h: RuleHint = build
    ? build(c)
    : {
        summary: finding.title,
        probableCause: finding.message,
        nextSteps: ['Look at the evidence of this finding and the state of its subject.'],
        commands: [describeNode(c)],
        confidence: 'low',
      };
  // A hint without evidence behind it is a guess from the category alone.
  if (finding.evidence.length === 0) h.confidence = 'low';
  return h;
}

/** Deterministic diagnoser: works without a model, in microseconds. */
export class RuleHintDiagnoser implements Diagnoser {
  /** Diagnoser id stored with each diagnosis. */
  readonly id = 'rule-hint';
  readonly #options: RuleHintOptions;

  constructor(options: RuleHintOptions) {
    this.#options = Object.freeze({ ...options });
  }

  /** The hint text alone (the LLM prompt's grounding). */
  hint(finding: DiagnosisInput): RuleHint {
    return ruleHint(finding, this.#options);
  }

  /** Diagnosis of one finding; `signal` is accepted for the interface, the work is synchronous. */
  async diagnose(finding: DiagnosisInput, signal?: AbortSignal): Promise<Diagnosis> {
    signal?.throwIfAborted();
    const started = performance.now();
    const h = this.hint(finding);
    return {
      ...h,
      diagnoser: this.id,
      tokens: { prompt: 0, completion: 0 },
      latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
    };
  }
}
