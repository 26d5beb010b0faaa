/**
 * Builds the diagnoser from the configuration: the local LLM when a model is
 * configured (with the rule hint as its grounding and fallback), the rule hint
 * alone otherwise. Shared by the daemon and `analyze --model`.
 */
import { basename } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Diagnoser, Finding, ModelStatus } from '../core/types.js';
import { readCatalog } from '../models/catalog.js';
import { expectedDigest } from '../models/digest.js';
import { createRedactor, type Redactor } from '../redact.js';
import { LlmEngine } from './engine.js';
import { LlmDiagnoser } from './llm-diagnoser.js';
import type { PromptContext } from './prompt.js';
import { RuleHintDiagnoser } from './rule-hint.js';
import { SiteBackend } from './site-backend.js';

/** What buildDiagnoser returns. */
export interface DiagnosisSetup {
  diagnoser: Diagnoser;
  ruleHint: RuleHintDiagnoser;
  /** The engine, when a model is configured. */
  engine?: LlmEngine;
  /** The `model` part of /v1/status. */
  modelStatus(): ModelStatus;
  /** Disposes the model. */
  dispose(): Promise<void>;
}

/** Inputs of buildDiagnoser. */
export interface BuildDiagnoserInput {
  config: Pick<Config, 'nodeName' | 'model' | 'llm'>;
  logger: Logger;
  /** Correlated findings and runbook snippets of a finding. Defaults to none. */
  context?: (finding: Finding) => Omit<PromptContext, 'hint'> | Promise<Omit<PromptContext, 'hint'>>;
  /** Applied to everything a site backend is sent. Defaults to the built-in rules. */
  redact?: Redactor;
  /** Check the model file at once and log the outcome (the caller may check it itself). Defaults to true. */
  checkNow?: boolean;
}

/** Builds the diagnoser; never loads the model (that happens on first use). */
export function buildDiagnoser(input: BuildDiagnoserInput): DiagnosisSetup {
  const { config, logger } = input;
  const ruleHint = new RuleHintDiagnoser({ nodeName: config.nodeName });
  const llm = config.llm;
  const diagnoserFor = (backend: LlmEngine | SiteBackend) =>
    new LlmDiagnoser({
      backend,
      ruleHint,
      logger: logger.child({ component: 'diagnoser' }),
      maxPromptTokens: llm.promptTokens,
      timeoutMs: llm.timeoutSeconds * 1000,
      ...(input.context ? { context: input.context } : {}),
    });
  if (!config.model && llm.backend) {
    // Opt-in: evidence leaves the node, so say so where operators look.
    const site = new SiteBackend({ config: llm.backend, redact: input.redact ?? createRedactor() });
    logger.warn({ endpoint: llm.backend.url }, 'site backend enabled: diagnosis prompts with redacted evidence are sent off this node');
    return { diagnoser: diagnoserFor(site), ruleHint, modelStatus: () => site.status(), dispose: () => site.dispose() };
  }
  if (!config.model) {
    return {
      diagnoser: ruleHint,
      ruleHint,
      modelStatus: () => ({ state: 'none', id: null, reason: 'no model configured: rules-only mode (rule hints instead of LLM explanations)' }),
      dispose: async () => undefined,
    };
  }
  // Whatever was staged (hostPath, PVC, model image, pull, import) is verified before it loads: the configured
  // digest, else the catalog's pinned one, else the sidecar written when it was pulled or imported.
  const catalog = readCatalog();
  const digest = expectedDigest(config.model, llm.sha256, catalog);
  const engine = new LlmEngine({
    modelPath: config.model,
    modelId: basename(config.model).replace(/\.gguf$/i, ''),
    ...(digest ? { sha256: digest.sha256 } : {}),
    memoryBudgetBytes: llm.memoryBudgetMB * 1024 * 1024,
    contextSize: llm.contextSize,
    ...(llm.threads > 0 ? { threads: llm.threads } : {}),
    gpu: llm.gpu === 'off' ? false : llm.gpu,
    gpuLayers: llm.gpuLayers < 0 ? 'auto' : llm.gpuLayers,
    idleUnloadMs: llm.idleUnloadSeconds * 1000,
    loras: llm.loras.map((l) => ({ path: l.path, scale: l.scale, sha256: expectedDigest(l.path, l.sha256, [])?.sha256 ?? null })),
    logger: logger.child({ component: 'llm' }),
  });
  const diagnoser = diagnoserFor(engine);
  // Check the file now so /v1/status says at once why a model cannot be used.
  if (input.checkNow !== false) {
    engine.check().then(
      (s) => logger.info({ model: engine.id, architecture: s.architecture, threads: engine.status().threads }, 'model checked; loads on first use'),
      (err: Error) => logger.warn({ err: err.message, model: config.model }, 'model not usable; running rules-only'),
    );
  }
  return {
    diagnoser,
    ruleHint,
    engine,
    modelStatus: () => {
      const s = engine.status();
      return {
        state: s.state,
        id: s.id,
        reason: s.reason,
        backend: s.backend,
        threads: s.threads,
        sha256: digest?.sha256 ?? null,
        sha256Source: digest?.source ?? null,
        loras: s.loras,
      };
    },
    dispose: () => engine.dispose(),
  };
}
