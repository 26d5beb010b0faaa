/**
 * The LLM diagnoser: asks the local model to explain a finding, then trusts
 * nothing it says until checked.
 *
 * The model writes only the values of its answer, field by field, each under
 * a grammar and a token cap (`answerParts`, `LlmEngine.fill`): evidence
 * numbers it may cite are the ones in the prompt, free text cannot hold
 * quotes or control characters, and a field at its cap is closed rather than
 * cut off, so every answer is whole JSON. It is still parsed again and
 * bounded, and citations are mapped to evidence indexes. Commands and the
 * further next steps come from the rule hint: no command the model wrote
 * reaches an operator. When the prompt does not fit the context it is
 * rebuilt to fit; when the engine fails or the answer is unusable the
 * diagnoser falls back to the rule hint and says so in `fallback`.
 */
import type { Logger } from 'pino';
import type { Diagnosis, DiagnosisInput, Diagnoser, Finding } from '../core/types.js';
import { type AnswerFieldSpec, answerParts, buildPrompt, DEFAULT_PROMPT_TOKENS, DIAGNOSIS_LIMITS, type PromptContext, type PromptEvidence } from './prompt.js';
import type { FillRequest as EngineFillRequest, FillResult } from './engine.js';
import type { RuleHint, RuleHintDiagnoser } from './rule-hint.js';

/** A structured-answer request as the diagnoser makes it: `LlmEngine.fill`'s, with the answer's own fields. */
export type FillRequest = Pick<EngineFillRequest, 'systemPrompt' | 'userPrompt' | 'signal'> & {
  parts: readonly (string | AnswerFieldSpec)[];
};

/** What the diagnoser reads of `LlmEngine.fill`'s result. */
export type FillResponse = Pick<FillResult, 'text' | 'fields' | 'latencyMs'> & { tokens: Pick<FillResult['tokens'], 'prompt' | 'completion'> };

/**
 * The model as the diagnoser needs it. `LlmEngine` (engine.ts) satisfies it;
 * tests use a scripted fake.
 */
export interface CompletionBackend {
  /** Model id; the diagnoser's id is `llm:<id>`. */
  readonly id: string;
  /** Tokens of `text` as the model counts them. */
  countTokens(text: string, signal?: AbortSignal): number | Promise<number>;
  /** Writes a structured answer. */
  fill(request: FillRequest): Promise<FillResponse>;
}

/** Why a diagnosis fell back to the rule hint. */
export type FallbackReason = 'unparseable' | 'invalid' | 'timeout' | 'error';


/** A diagnosis from this diagnoser: `fallback` is set when the rule hint stands in for the model. */
export interface LlmDiagnosis extends Diagnosis {
  /** Set when the model's answer could not be used; `diagnoser` is then `rule-hint`. */
  fallback?: FallbackReason;
}

/** Options of {@link LlmDiagnoser}. */
export interface LlmDiagnoserOptions {
  /** The model. */
  backend: CompletionBackend;
  /** Grounding for the prompt and the fallback. */
  ruleHint: RuleHintDiagnoser;
  logger: Logger;
  /** Correlated findings and runbook snippets for a finding. Defaults to none. */
  context?: (finding: Finding) => Omit<PromptContext, 'hint'> | Promise<Omit<PromptContext, 'hint'>>;
  /** Wall-clock limit of one diagnosis, both attempts included, in ms. Defaults to 120000. */
  timeoutMs?: number;
  /** Token budget of the user part of the prompt. Defaults to {@link DEFAULT_PROMPT_TOKENS}. */
  maxPromptTokens?: number;
  /** Share of the prompt budget used by the retry after an unusable answer. Defaults to 0.5. */
  retryBudgetFactor?: number;
}

/** Counters for /metrics. */
export interface LlmDiagnoserStats {
  /** Diagnoses returned (model or fallback). */
  diagnoses: number;
  /** Diagnoses that came from the model. */
  fromModel: number;
  /** Second attempts. */
  retries: number;
  /** Answer fields the model filled up to their token cap (closed with `…`). */
  cutFields: number;
  /** Fallbacks to the rule hint by reason. */
  fallbacks: Record<FallbackReason, number>;
  /** Evidence references dropped because they did not exist. */
  droppedRefs: number;
  /** Prompt and generated tokens spent. */
  promptTokens: number;
  completionTokens: number;
}

// ---------------------------------------------------------------------------
// Commands.
//
// The node agent only suggests; a person decides. But the model reads
// attacker-influenced log text, and suggested commands get pasted into root
// shells on the node. So a command survives only if it is a read-only
// diagnostic: an allow-list of tools (and, for multi-purpose tools, of
// subcommands and flags), no mutating verbs anywhere, and no shell syntax that
// could chain, substitute or redirect (`;`, `&`, `|`, `$`, backticks, `<`, `>`,
// `\`, unquoted parentheses, history `!`). Anything the filter does not
// understand is dropped: failing closed only costs a suggestion.

const SHELL_META = /[;&|$`<>\\\n\r]|!(?!=)/;

const MUTATING = new Set([
  'delete', 'drain', 'cordon', 'uncordon', 'rm', 'rmi', 'rmp', 'kill', 'killall', 'pkill', 'reboot', 'shutdown', 'poweroff',
  'halt', 'apply', 'patch', 'edit', 'scale', 'replace', 'create', 'set', 'label', 'annotate', 'taint', 'exec', 'run', 'cp',
  'debug', 'attach', 'restart', 'stop', 'start', 'mkfs', 'dd', 'truncate', 'chmod', 'chown', 'mv', 'wipefs', 'prune', 'evict',
  'autoscale', 'expose', 'rollback', 'undo', 'flush', 'reset', 'format', 'remove', 'purge', 'update', 'upgrade', 'install',
]);

/** Splits a command line into words, honouring '…' and "…"; null when quotes do not balance or parentheses appear unquoted. */
function splitWords(cmd: string): string[] | null {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (const ch of cmd) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (ch === '(' || ch === ')') {
      return null;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) return null;
  if (inWord) words.push(cur);
  return words;
}

/** The words that are neither flags nor the value of one of `valueFlags`, in order. */
function positionals(args: string[], valueFlags: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a.startsWith('-')) {
      if (valueFlags.has(a)) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

function firstIn(args: string[], allowed: ReadonlySet<string>, valueFlags?: ReadonlySet<string>): boolean {
  const p = positionals(args, valueFlags)[0];
  return p !== undefined && allowed.has(p);
}

const KUBECTL_VALUE_FLAGS = new Set(['-n', '--namespace', '--context', '--cluster', '--user', '--kubeconfig', '-s', '--server', '-l', '--selector', '-o', '--output', '-c', '--container', '--field-selector', '--sort-by', '--tail', '--since']);
const KUBECTL_VERBS = new Set(['get', 'describe', 'logs', 'top', 'explain', 'version', 'cluster-info', 'api-resources', 'api-versions', 'events']);
const CRICTL_VALUE_FLAGS = new Set(['-r', '--runtime-endpoint', '-i', '--image-endpoint', '-t', '--timeout', '-c', '--config']);
const CRICTL_VERBS = new Set(['ps', 'pods', 'images', 'img', 'logs', 'inspect', 'inspecti', 'inspectp', 'info', 'stats', 'statsp', 'version', 'imagefsinfo']);
const DOCKER_VERBS = new Set(['ps', 'logs', 'inspect', 'info', 'images', 'stats', 'version']);
const SYSTEMCTL_VERBS = new Set(['status', 'show', 'is-active', 'is-failed', 'is-enabled', 'list-units', 'list-unit-files', 'list-timers', 'cat']);
const CHRONYC_VERBS = new Set(['tracking', 'sources', 'sourcestats', 'activity', 'ntpdata', 'serverstats', 'rtcdata', 'smoothing', 'selectdata', 'authdata']);
const TIMEDATECTL_VERBS = new Set(['status', 'show', 'timesync-status', 'show-timesync', 'list-timezones']);
const NVSMI_FLAGS = /^(?:-q|--query|-L|--list-gpus|-x|--xml-format|-u|--unit|-d|-i|--display(?:=\S+)?|--id(?:=\S+)?|--query-gpu=\S+|--format=\S+|-m|--matrix|-s|--status)$/;
const ETHTOOL_FLAGS = /^(?:-S|-i|-k|-g|-a|-c|-l|-m|-T|--statistics|--driver|--show-\S+|--module-info)$/;
const SMARTCTL_FLAGS = /^(?:-a|-H|-i|-A|-x|-l|--all|--health|--info|--attributes|--xall|--log=\S+|-d|--device=\S+)$/;
const IPTABLES_FLAGS = /^(?:-L|-S|-n|-v|-x|-t|--list|--list-rules|--numeric|--verbose|--exact|--line-numbers|--table)$/;

type ArgCheck = (args: string[]) => boolean;

const READ_ONLY_TOOLS: Record<string, ArgCheck> = {
  kubectl: (a) => {
    const p = positionals(a, KUBECTL_VALUE_FLAGS);
    const verb = p[0];
    if (verb === undefined) return false;
    if (KUBECTL_VERBS.has(verb)) return true;
    if (verb === 'auth') return p[1] === 'can-i' || p[1] === 'whoami';
    if (verb === 'rollout') return p[1] === 'status' || p[1] === 'history';
    if (verb === 'config') return p[1] === 'view' || p[1] === 'get-contexts' || p[1] === 'current-context';
    return false;
  },
  crictl: (a) => firstIn(a, CRICTL_VERBS, CRICTL_VALUE_FLAGS),
  docker: (a) => firstIn(a, DOCKER_VERBS),
  journalctl: (a) => !a.some((x) => /^--(?:vacuum|rotate|flush|sync|relinquish|smart-relinquish|setup-keys|update-catalog|new-id128)/.test(x)),
  systemctl: (a) => firstIn(a, SYSTEMCTL_VERBS),
  chronyc: (a) => firstIn(a, CHRONYC_VERBS),
  timedatectl: (a) => positionals(a).length === 0 || firstIn(a, TIMEDATECTL_VERBS),
  dmesg: (a) => !a.some((x) => /^--(?:clear|read-clear|console)/.test(x) || (/^-[A-Za-z]+$/.test(x) && /[cCDEn]/.test(x))),
  ip: (a) => !a.some((x) => /^(?:add|del|delete|set|flush|change|replace|append|prepend|exec|save|restore|update)$/.test(x)),
  ethtool: (a) => a.filter((x) => x.startsWith('-')).every((x) => ETHTOOL_FLAGS.test(x)) && positionals(a).length <= 1,
  sysctl: (a) => !a.some((x) => x.includes('=') || /^(?:-w|--write|-p|--load|--system)$/.test(x)),
  conntrack: (a) => a.length > 0 && /^(?:-S|-C|-L|--stats|--count|--dump)$/.test(a[0] as string) && !a.some((x) => /^(?:-D|-F|-U|-I|--delete|--flush|--update|--create)$/.test(x)),
  'nvidia-smi': (a) => {
    const p = positionals(a, new Set(['-d', '-i']));
    if (p.length > 0 && !(p.length === 1 && (p[0] === 'topo' || p[0] === 'nvlink'))) return false;
    return a.filter((x) => x.startsWith('-')).every((x) => NVSMI_FLAGS.test(x));
  },
  smartctl: (a) => a.filter((x) => x.startsWith('-')).every((x) => SMARTCTL_FLAGS.test(x)),
  openssl: (a) => a[0] === 'x509' && a.includes('-noout') && !a.some((x) => /^-(?:out|signkey|req|CA\S*|set_serial)$/.test(x)),
  kubeadm: (a) => a.length === 2 && a[0] === 'certs' && a[1] === 'check-expiration',
  find: (a) => !a.some((x) => /^-(?:delete|exec|execdir|ok|okdir|fprint0?|fprintf|fls)$/.test(x)),
  iptables: (a) => a.filter((x) => x.startsWith('-')).every((x) => IPTABLES_FLAGS.test(x)) && a.some((x) => /^(?:-L|-S|--list|--list-rules)$/.test(x)),
  nft: (a) => a[0] === 'list',
  top: (a) => a.includes('-b'),
  ...Object.fromEntries(
    [
      'df', 'du', 'free', 'uptime', 'uname', 'lscpu', 'lsblk', 'findmnt', 'lspci', 'lsmod', 'ps', 'vmstat', 'iostat', 'mpstat', 'pidstat',
      'sensors', 'ss', 'netstat', 'ls', 'stat', 'cat', 'head', 'tail', 'grep', 'wc', 'getent', 'nslookup', 'dig', 'host', 'ping', 'date',
      'xfs_info', 'iptables-save', 'readlink', 'realpath', 'file', 'id', 'nproc', 'hostname',
    ].map((t): [string, ArgCheck] => [t, (a) => !(t === 'hostname' && a.length > 0) && !(t === 'iptables-save' && a.some((x) => x.startsWith('-f')))]),
  ),
};

/**
 * True when `cmd` is a read-only diagnostic command a node agent may suggest:
 * an allow-listed tool with read-only arguments and no shell syntax.
 */
export function isReadOnlyCommand(cmd: string): boolean {
  const s = cmd.trim();
  if (s === '' || s.length > DIAGNOSIS_LIMITS.commandChars || SHELL_META.test(s)) return false;
  const words = splitWords(s);
  if (!words || words.length === 0) return false;
  if (words[0] === 'sudo') words.shift();
  const tool = words[0];
  if (tool === undefined) return false;
  const check = Object.hasOwn(READ_ONLY_TOOLS, tool) ? READ_ONLY_TOOLS[tool] : undefined;
  if (!check) return false;
  const args = words.slice(1);
  if (args.some((w) => MUTATING.has(w.toLowerCase()))) return false;
  return check(args);
}

// ---------------------------------------------------------------------------
// Parsing and validating the answer.

/** Parses the model's text as one JSON object (also when wrapped in prose or a fence). */
export function parseModelJson(text: string): Record<string, unknown> | null {
  const attempt = (t: string): Record<string, unknown> | null => {
    try {
      const v: unknown = JSON.parse(t);
      return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  const direct = attempt(text.trim());
  if (direct) return direct;
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  return start >= 0 && end > start ? attempt(text.slice(start, end + 1)) : null;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;

function cleanText(v: unknown, max: number): string | null {
  if (typeof v !== 'string') return null;
  const s = v.replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();
  if (s === '') return null;
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const CONFIDENCES = ['low', 'medium', 'high'] as const;

function lower(c: Diagnosis['confidence']): Diagnosis['confidence'] {
  return c === 'high' ? 'medium' : 'low';
}

/** Outcome of checking one answer. */
export type ValidationResult =
  | {
      ok: true;
      value: Pick<Diagnosis, 'summary' | 'probableCause' | 'nextSteps' | 'commands' | 'confidence' | 'evidenceRefs'>;
      /** Cited numbers that did not exist in the prompt. */
      droppedRefs: number;
    }
  | { ok: false; reason: string };

/**
 * Checks a parsed answer against the schema's rules (again: the grammar does
 * not enforce all of them), maps `[E<n>]` numbers to indexes of the finding's
 * evidence, and removes what is not allowed.
 */
export function validateAnswer(raw: Record<string, unknown>, evidence: readonly PromptEvidence[], hint: RuleHint): ValidationResult {
  const L = DIAGNOSIS_LIMITS;
  const summary = cleanText(raw.summary, L.summaryChars);
  if (!summary) return { ok: false, reason: 'summary missing or empty' };
  const probableCause = cleanText(raw.probableCause, L.probableCauseChars);
  if (!probableCause) return { ok: false, reason: 'probableCause missing or empty' };
  // The model writes the step specific to its evidence; the rule hint's steps and commands follow.
  const own = cleanText(raw.nextStep, L.stepChars);
  const nextSteps = [...new Set([...(own ? [own] : []), ...hint.nextSteps.map((x) => cleanText(x, L.stepChars)).filter((x): x is string => x !== null)])].slice(
    0,
    L.steps,
  );
  if (nextSteps.length === 0) return { ok: false, reason: 'nextStep missing and the rule hint has none' };
  const commands = hint.commands.filter(isReadOnlyCommand).slice(0, L.commands);

  const c = typeof raw.confidence === 'string' ? raw.confidence.trim().toLowerCase() : '';
  let confidence: Diagnosis['confidence'] = (CONFIDENCES as readonly string[]).includes(c) ? (c as Diagnosis['confidence']) : 'low';

  const refsIn = Array.isArray(raw.evidenceRefs) ? raw.evidenceRefs : [];
  let droppedRefs = 0;
  const indexes = new Set<number>();
  const seen = new Set<number>();
  for (const r of refsIn) {
    const n = typeof r === 'number' ? r : Number.NaN;
    const item = Number.isInteger(n) ? evidence[n] : undefined;
    if (!item || item.ref !== n) {
      droppedRefs++;
      continue;
    }
    if (seen.has(n) || seen.size >= L.evidenceRefs) continue;
    seen.add(n);
    for (const i of item.indexes) indexes.add(i);
  }
  // Citing evidence that is not there is a sign the answer is not grounded;
  // citing none of the evidence it was shown, that nothing grounds it.
  if (droppedRefs > 0) confidence = lower(confidence);
  if (indexes.size === 0 && evidence.length > 0) confidence = 'low';
  return {
    ok: true,
    value: { summary, probableCause, nextSteps, commands, confidence, evidenceRefs: [...indexes].sort((a, b) => a - b) },
    droppedRefs,
  };
}

// ---------------------------------------------------------------------------

class AttemptFailed {
  constructor(
    readonly reason: FallbackReason,
    readonly detail: string,
  ) {}
}

/**
 * After ERR_PROMPT_TOO_LONG: the user-part budget that fits, from the tokens
 * the prompt overran the context by (with a margin for the chat template);
 * null for any other error or when nothing would fit.
 */
function roomLeft(err: unknown, userTokens: number): number | null {
  const e = err as { code?: unknown; promptTokens?: unknown; maxTokens?: unknown; contextSize?: unknown } | null;
  if (e?.code !== 'ERR_PROMPT_TOO_LONG') return null;
  const { promptTokens, maxTokens, contextSize } = e;
  if (typeof promptTokens !== 'number' || typeof maxTokens !== 'number' || typeof contextSize !== 'number') return null;
  const fits = userTokens - (promptTokens + maxTokens - contextSize) - 16;
  return fits >= 64 ? fits : null;
}

/** Diagnoser backed by a local model, with the rule hint as grounding and fallback. */
export class LlmDiagnoser implements Diagnoser {
  /** `llm:<model id>`. */
  readonly id: string;
  readonly #o: Required<Omit<LlmDiagnoserOptions, 'context'>> & Pick<LlmDiagnoserOptions, 'context'>;
  readonly #log: Logger;
  readonly #stats: LlmDiagnoserStats = {
    diagnoses: 0,
    fromModel: 0,
    retries: 0,
    cutFields: 0,
    fallbacks: { unparseable: 0, invalid: 0, timeout: 0, error: 0 },
    droppedRefs: 0,
    promptTokens: 0,
    completionTokens: 0,
  };

  constructor(options: LlmDiagnoserOptions) {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const maxPromptTokens = options.maxPromptTokens ?? DEFAULT_PROMPT_TOKENS;
    const retryBudgetFactor = options.retryBudgetFactor ?? 0.5;
    if (!(timeoutMs > 0)) throw new TypeError('LlmDiagnoser: timeoutMs must be > 0');
    if (!(maxPromptTokens >= 64)) throw new TypeError('LlmDiagnoser: maxPromptTokens must be >= 64');
    if (!(retryBudgetFactor > 0 && retryBudgetFactor <= 1)) throw new TypeError('LlmDiagnoser: retryBudgetFactor must be in (0, 1]');
    this.#o = Object.freeze({ ...options, timeoutMs, maxPromptTokens, retryBudgetFactor });
    this.id = `llm:${options.backend.id}`;
    this.#log = options.logger.child({ component: 'llm-diagnoser', diagnoser: this.id });
  }

  /** Counters since start. */
  stats(): LlmDiagnoserStats {
    return { ...this.#stats, fallbacks: { ...this.#stats.fallbacks } };
  }

  /**
   * Diagnoses one finding. Rejects only when `signal` aborts (with its
   * reason); every other failure ends in the rule hint with `fallback` set.
   */
  async diagnose(finding: DiagnosisInput, signal?: AbortSignal): Promise<LlmDiagnosis> {
    signal?.throwIfAborted();
    const started = performance.now();
    const timeout = AbortSignal.timeout(this.#o.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const { backend, ruleHint } = this.#o;
    const hint = ruleHint.hint(finding);
    const tokens = { prompt: 0, completion: 0 };
    let budget = this.#o.maxPromptTokens;
    let failure = new AttemptFailed('error', 'no attempt');

    let extra: Omit<PromptContext, 'hint'> = {};
    try {
      extra = (await this.#o.context?.(finding)) ?? {};
    } catch (err) {
      this.#log.warn({ err, findingId: finding.id }, 'diagnosis context unavailable; continuing without it');
    }

    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) this.#stats.retries++;
      let userTokens = 0;
      try {
        const prompt = await buildPrompt(finding, { ...extra, hint }, { maxUserTokens: budget, countTokens: (t) => backend.countTokens(t, combined) });
        userTokens = prompt.userTokens;
        const res = await backend.fill({
          systemPrompt: prompt.system,
          userPrompt: prompt.user,
          parts: answerParts(prompt.evidenceIndex.length),
          signal: combined,
        });
        tokens.prompt += res.tokens.prompt;
        tokens.completion += res.tokens.completion;
        const cut = Object.entries(res.fields).filter(([, f]) => f.cut).map(([name]) => name);
        const raw = parseModelJson(res.text);
        if (!raw) throw new AttemptFailed('unparseable', 'answer is not a JSON object');
        const v = validateAnswer(raw, prompt.evidenceIndex, hint);
        if (!v.ok) throw new AttemptFailed('invalid', v.reason);
        this.#stats.droppedRefs += v.droppedRefs;
        this.#stats.cutFields += cut.length;
        if (v.droppedRefs > 0 || cut.length > 0) {
          this.#log.info({ findingId: finding.id, droppedRefs: v.droppedRefs, cutFields: cut }, 'model answer cleaned');
        }
        return this.#done({
          ...v.value,
          diagnoser: this.id,
          tokens,
          latencyMs: Math.round(performance.now() - started),
        });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof AttemptFailed) {
          failure = err;
          this.#log.info({ findingId: finding.id, attempt, reason: err.reason, detail: err.detail }, 'model answer unusable');
          budget = Math.max(64, Math.floor(Math.min(budget, userTokens) * this.#o.retryBudgetFactor));
          continue;
        }
        if (timeout.aborted) {
          failure = new AttemptFailed('timeout', `no answer within ${this.#o.timeoutMs} ms`);
          break;
        }
        failure = new AttemptFailed('error', err instanceof Error ? err.message : String(err));
        this.#log.warn({ err, findingId: finding.id, attempt }, 'model call failed');
        // A prompt too long for the context is rebuilt to fit what is left of it; other engine errors end here.
        const fit = roomLeft(err, userTokens);
        if (fit === null || fit >= budget) break;
        budget = fit;
      }
    }

    this.#stats.fallbacks[failure.reason]++;
    this.#log.warn({ findingId: finding.id, reason: failure.reason, detail: failure.detail }, 'falling back to the rule hint');
    return this.#done({
      ...hint,
      diagnoser: 'rule-hint',
      tokens,
      latencyMs: Math.round(performance.now() - started),
      fallback: failure.reason,
    });
  }

  #done(d: LlmDiagnosis): LlmDiagnosis {
    this.#stats.diagnoses++;
    if (d.fallback === undefined) this.#stats.fromModel++;
    this.#stats.promptTokens += d.tokens.prompt;
    this.#stats.completionTokens += d.tokens.completion;
    return d;
  }
}
