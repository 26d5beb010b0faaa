/**
 * Builds the diagnoser from the configuration: the local LLM when a model is
 * configured (with the rule hint as its grounding and fallback), the rule hint
 * alone otherwise. Shared by the daemon and `analyze --model`.
 */
import { basename } from 'node:path';
import type { Logger } from 'pino';
import type { StatusBody } from '../api/server.js';
import type { Config } from '../config.js';
import type { Diagnoser, Finding } from '../core/types.js';
import { LlmEngine } from './engine.js';
import { LlmDiagnoser } from './llm-diagnoser.js';
import type { PromptContext } from './prompt.js';
import { RuleHintDiagnoser } from './rule-hint.js';

/** What buildDiagnoser returns. */
export interface DiagnosisSetup {
  diagnoser: Diagnoser;
  ruleHint: RuleHintDiagnoser;
  /** The engine, when a model is configured. */
  engine?: LlmEngine;
  /** The `model` part of /v1/status. */
  modelStatus(): StatusBody['model'];
  /** Disposes the model. */
  dispose(): Promise<void>;
}

/** Inputs of buildDiagnoser. */
export interface BuildDiagnoserInput {
  config: Pick<Config, 'nodeName' | 'model' | 'llm'>;
  logger: Logger;
  /** Correlated findings and runbook snippets of a finding. Defaults to none. */
  context?: (finding: Finding) => Omit<PromptContext, 'hint'> | Promise<Omit<PromptContext, 'hint'>>;
}

/** Builds the diagnoser; never loads the model (that happens on first use). */
export function buildDiagnoser(input: BuildDiagnoserInput): DiagnosisSetup {
  const { config, logger } = input;
  const ruleHint = new RuleHintDiagnoser({ nodeName: config.nodeName });
  if (!config.model) {
    return {
      diagnoser: ruleHint,
      ruleHint,
      modelStatus: () => ({ state: 'none', id: null, reason: 'no model configured: rules-only mode (rule hints instead of LLM explanations)' }),
      dispose: async () => undefined,
    };
  }
  const llm = config.llm;
  const engine = new LlmEngine({
    modelPath: config.model,
    modelId: basename(config.model).replace(/\.gguf$/i, ''),
    ...(llm.sha256 ? { sha256: llm.sha256 } : {}),
    memoryBudgetBytes: llm.memoryBudgetMB * 1024 * 1024,
    contextSize: llm.contextSize,
    ...(llm.threads > 0 ? { threads: llm.threads } : {}),
    gpu: llm.gpu === 'off' ? false : llm.gpu,
    gpuLayers: llm.gpuLayers < 0 ? 'auto' : llm.gpuLayers,
    idleUnloadMs: llm.idleUnloadSeconds * 1000,
    logger: logger.child({ component: 'llm' }),
  });
  const diagnoser = new LlmDiagnoser({
    backend: engine,
    ruleHint,
    logger: logger.child({ component: 'diagnoser' }),
    maxPromptTokens: llm.promptTokens,
    timeoutMs: llm.timeoutSeconds * 1000,
    ...(input.context ? { context: input.context } : {}),
  });
  // Check the file now so /v1/status says at once why a model cannot be used.
  engine.check().then(
    (s) => logger.info({ model: engine.id, architecture: s.architecture, threads: engine.status().threads }, 'model checked; loads on first use'),
    (err: Error) => logger.warn({ err: err.message, model: config.model }, 'model not usable; running rules-only'),
  );
  return {
    diagnoser,
    ruleHint,
    engine,
    modelStatus: () => {
      const s = engine.status();
      return { state: s.state, id: s.id, reason: s.reason, backend: s.backend, threads: s.threads };
    },
    dispose: () => engine.dispose(),
  };
}
