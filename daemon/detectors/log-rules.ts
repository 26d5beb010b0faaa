/**
 * The log-rule detector: node-problem-detector's idea (log problems are data)
 * over every log source nodesage reads. Rules live in daemon/rules/*.json;
 * this file loads them once at start-up and runs them over each view's new
 * log lines (see log-rules/engine.ts for the matcher itself).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Detector, FindingDraft, LogLine, NodeView } from '../core/types.js';
import { z } from 'zod';
import { createRedactor } from '../redact.js';
import { type CompiledRule, checkUniqueIds, loadRuleFile, loadRuleFiles } from './log-rules/compile.js';
import { count, int, names, range } from './options.js';
import { type MatchContext, matchRule, newStreamBuffer, RULE_ENGINE_DEFAULTS, RuleEngine, type RuleEngineOptions } from './log-rules/engine.js';
import { CodedError } from '../errors.js';

export type { CompiledRule } from './log-rules/compile.js';
export { compileRule, compileRuleFile, loadRuleFile, loadRuleFiles, normalizeUnit } from './log-rules/compile.js';
export type { MatchContext, RuleEngineOptions } from './log-rules/engine.js';
export { RuleEngine, subjectFromCgroup } from './log-rules/engine.js';
export { type LogRuleSpec, RuleFileError } from './log-rules/schema.js';

/** `disabledRules` names a rule id that no loaded file defines (a typo would silently keep the rule on). */
export class UnknownRuleError extends CodedError {
  /** Stable error code. */
  readonly code = 'RULE_UNKNOWN';
}

/** Name of the detector, stored with each finding. */
export const LOG_RULES_DETECTOR = 'log-rules';

/** Options of the log-rule detector. */
export interface LogRuleDetectorOptions {
  /** Folder of rule files (`*.json`). Defaults to the rules shipped in daemon/rules. */
  ruleDir?: string;
  /** More rule files loaded after the folder (site rules); ids must stay unique. Defaults to none. */
  extraRuleFiles?: string[];
  /** Rule ids that are loaded and validated but not run. Defaults to none. */
  disabledRules?: string[];
  /** Evidence lines kept per finding. Defaults to 5. */
  maxEvidence?: number;
  /** Seconds within which the same kernel line from kmsg and journald counts once. Defaults to 60. */
  kernelDedupSeconds?: number;
  /** Streams whose recent lines are kept for multi-line rules. Defaults to 2000. */
  maxStreams?: number;
  /** Redacts evidence, titles and messages. Defaults to createRedactor() with no extra patterns. */
  redact?: (text: string) => string;
}

/** Schema of the config's LogRuleDetectorOptions (`redact` is set by the daemon, not the config): strict, so a mistyped key is an error. */
export const LOG_RULES_OPTIONS_SCHEMA = z
  .object({
    ruleDir: z.string({ error: 'a folder path' }).min(1, { error: 'a folder path' }),
    extraRuleFiles: names('rule file paths'),
    disabledRules: names('rule ids'),
    maxEvidence: int(1, 100),
    kernelDedupSeconds: range(0, 86_400, 'a number of seconds'),
    maxStreams: count,
  })
  .strict() satisfies z.ZodType<Omit<LogRuleDetectorOptions, 'redact'>>;

/**
 * The shipped rule folder: daemon/rules, found from the source tree
 * (daemon/detectors/) and from the build (dist/daemon/detectors/).
 */
export function defaultRuleDir(): string {
  const candidates = [new URL('../rules/', import.meta.url), new URL('../../../daemon/rules/', import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(p)) return p;
  }
  return fileURLToPath(candidates[0]!);
}

/** Loads the rule folder and the extra files (I/O: call at start-up only). */
export function loadRules(opts: Pick<LogRuleDetectorOptions, 'ruleDir' | 'extraRuleFiles'> = {}): CompiledRule[] {
  const rules = [...loadRuleFiles(opts.ruleDir ?? defaultRuleDir()), ...(opts.extraRuleFiles ?? []).flatMap((f) => loadRuleFile(f))];
  checkUniqueIds(rules);
  return rules;
}

/** A detector over compiled rules; keeps the bounded matcher state across cycles. */
export function createLogRuleDetectorFromRules(rules: readonly CompiledRule[], opts: Omit<LogRuleDetectorOptions, 'ruleDir' | 'extraRuleFiles'> = {}): Detector {
  const disabled = new Set(opts.disabledRules ?? []);
  const known = new Set(rules.map((r) => r.spec.id));
  for (const id of disabled) if (!known.has(id)) throw new UnknownRuleError(`disabledRules: no rule has the id ${JSON.stringify(id)}`);
  const engineOpts: Partial<RuleEngineOptions> = {
    redact: opts.redact ?? createRedactor(),
    detector: LOG_RULES_DETECTOR,
  };
  if (opts.maxEvidence !== undefined) engineOpts.maxEvidence = opts.maxEvidence;
  if (opts.kernelDedupSeconds !== undefined) engineOpts.kernelDedupSeconds = opts.kernelDedupSeconds;
  if (opts.maxStreams !== undefined) engineOpts.maxStreams = opts.maxStreams;
  const engine = new RuleEngine(
    rules.filter((r) => !disabled.has(r.spec.id)),
    engineOpts,
  );
  return {
    name: LOG_RULES_DETECTOR,
    detect(view: NodeView): FindingDraft[] {
      return engine.run(view.logs, contextOf(view));
    },
  };
}

/**
 * Creates the log-rule detector: loads, validates and compiles the rule files
 * now (a bad file throws RuleFileError naming file, rule and field).
 */
export function createLogRuleDetector(opts: LogRuleDetectorOptions = {}): Detector {
  return createLogRuleDetectorFromRules(loadRules(opts), opts);
}

function contextOf(view: NodeView): MatchContext {
  const ctx: MatchContext = { nodeName: view.nodeName, now: view.now };
  if (view.bootTime) ctx.bootTime = view.bootTime;
  if (view.pods) ctx.pods = view.pods;
  return ctx;
}

/**
 * Runs rules over lines once, from a clean state (CLI `rules test`, tests).
 * @param ctx node name, "now" (defaults to the newest line's time), boot time and pods
 */
export function matchRules(
  rules: readonly CompiledRule[],
  lines: readonly LogLine[],
  ctx: Partial<MatchContext> & { nodeName?: string } = {},
  opts: Partial<RuleEngineOptions> = {},
): FindingDraft[] {
  const newest = lines.reduce<string | undefined>((acc, l) => (acc === undefined || l.at > acc ? l.at : acc), undefined);
  const full: MatchContext = { nodeName: ctx.nodeName ?? 'node', now: ctx.now ?? newest ?? new Date(0).toISOString() };
  if (ctx.bootTime) full.bootTime = ctx.bootTime;
  if (ctx.pods) full.pods = ctx.pods;
  const engine = new RuleEngine(rules, { ...RULE_ENGINE_DEFAULTS, redact: createRedactor(), detector: LOG_RULES_DETECTOR, ...opts });
  return engine.run(lines, full);
}

/**
 * True when the rule's pattern matches an example (lines joined by `\n`),
 * through the same prefilter, window and exclude path as live lines. Ignores
 * thresholds, boot grace and pending time: examples test the pattern.
 */
export function ruleMatchesExample(rule: CompiledRule, example: string): boolean {
  const buffer = rule.window > 1 ? newStreamBuffer(rule.window) : undefined;
  for (const text of example.split('\n')) {
    const line: LogLine = { source: rule.kernel ? 'kmsg' : rule.podLog ? 'podLog' : 'journald', at: '1970-01-01T00:00:00.000Z', text };
    buffer?.push(line);
    const hay = rule.spec.ignoreCase ? text.toLowerCase() : text;
    if (rule.keywords.length > 0 && !rule.keywords.some((k) => hay.includes(k))) continue;
    if (matchRule(rule, line, buffer)) return true;
  }
  return false;
}
