/**
 * The local LLM engine: owns one GGUF model run by llama.cpp through
 * node-llama-cpp, and runs one generation at a time on one context sequence.
 *
 * Why it is shaped this way (measured on a 2-core CPU node):
 * - Threads follow the container's CPU quota (cgroup.ts); oversubscription
 *   made generation 17x slower.
 * - On CPU the weights are read into RAM (`useMmap: false`): with mmap,
 *   llama.cpp repacks quantised weights into a second buffer while the mapped
 *   pages stay resident, so the model costs twice its size.
 * - The context size is explicit and the memory check is ours
 *   (gguf-check.ts): node-llama-cpp's estimates are far above real CPU use and
 *   would refuse models that fit.
 * - Prompt evaluation dominates on CPU, so the sequence stays alive across
 *   calls: the new prompt's tokens are compared with those already evaluated
 *   and only the part after the first difference is evaluated, so a fixed
 *   system prompt is paid once. One sequence only: a second one (so that ask and
 *   chat would not evict the diagnosis prompt) made every generated token
 *   5.6% slower (18.7 vs 17.6 tok/s, 6 of 6 interleaved pairs, plain
 *   node-llama-cpp, the 0.5B benchmark model), and diagnoses outnumber questions.
 * - A diagnosis is written field by field (`fill`): the fixed JSON is
 *   evaluated in batches, the model generates only values, each capped.
 * - The binary is the prebuilt one shipped in the npm package: `build: 'never'`
 *   and `skipDownload` so nothing is compiled or fetched (air-gapped nodes).
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type {
  ChatHistoryItem,
  ChatWrapper,
  GbnfJsonSchema,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaGrammar,
  LlamaLogLevel,
  LlamaModel,
  Token,
} from 'node-llama-cpp';
import type { Logger } from 'pino';
import { chooseThreads, type ThreadChoice } from './cgroup.js';
import { EngineDisposedError, GrammarError, LlmError, type LlmErrorCode, ModelLoadError, ModelRefusedError, PromptTooLongError } from './errors.js';
import { llamaCpp } from './llama-cpp.js';
import { type AdapterSummary, assertSha256, assertWithinBudget, estimateMemory, type GgufSummary, inspectAdapter, inspectGguf, type MemoryEstimate } from './gguf-check.js';

/** GPU selection: `auto` uses CUDA or Vulkan when the prebuilt binary for it loads, else CPU. */
export type GpuOption = 'auto' | 'cuda' | 'vulkan' | false;

/** Engine life cycle, as /v1/status shows it under `model.state`. */
export type EngineState = 'none' | 'loading' | 'ready' | 'refused' | 'failed';

/** Where inference runs. */
export type Backend = 'cpu' | 'cuda' | 'vulkan' | 'metal';

/** Options of {@link LlmEngine}; validated once and frozen by the constructor. */
export interface LlmEngineOptions {
  /** Path of the GGUF file. */
  modelPath: string;
  /** Id shown in status and in `llm:<id>`. Defaults to the file name without `.gguf`. */
  modelId?: string;
  /** Expected sha256 of the file (hex); a different file is refused. Defaults to no check. */
  sha256?: string;
  /** RAM the model may take: weights + KV cache + compute buffers + runtime. */
  memoryBudgetBytes: number;
  /** Context window in tokens (system prompt + evidence + answer); capped at the model's trained length. */
  contextSize: number;
  /** llama.cpp threads. Defaults to the cgroup CPU quota, capped by the CPUs this process may run on. */
  threads?: number;
  /** cgroup mount read for the CPU quota (the container's own cgroup, not the host's). Defaults to `/sys/fs/cgroup`. */
  cgroupRoot?: string;
  /** GPU backend to use. Defaults to `'auto'`. */
  gpu?: GpuOption;
  /** Layers offloaded to the GPU; ignored on CPU. Defaults to `'auto'` (as many as fit with the context). */
  gpuLayers?: number | 'auto' | 'max';
  /** Unload the model after this long without a call; 0 keeps it loaded. Defaults to 600000 (10 minutes). */
  idleUnloadMs?: number;
  /** Tokens evaluated per batch while reading the prompt. Defaults to 512 (or the context size if smaller). */
  batchSize?: number;
  /** LoRA adapters applied when the context is created; each is checked like the model before loading. Defaults to none. */
  loras?: readonly LoraAdapterOption[];
  /** Logger for load, unload, refusals and llama.cpp warnings. */
  logger: Logger;
}

/** One LoRA adapter of {@link LlmEngineOptions.loras}. */
export interface LoraAdapterOption {
  /** Adapter GGUF file (`general.type = adapter`). */
  path: string;
  /** How strongly the adapter applies; 1 is as trained. Defaults to 1. */
  scale?: number;
  /** Expected sha256; a different file is refused. Defaults to no check. */
  sha256?: string | null;
}

/** A LoRA adapter as /v1/status shows it. */
export interface LoraAdapterStatus {
  path: string;
  scale: number;
  /** The digest it was checked against; null when none is known. */
  sha256: string | null;
  /** True once it passed the checks (file, kind, architecture, digest). */
  checked: boolean;
  /** True while it is applied to the loaded context. */
  applied: boolean;
  sizeBytes: number | null;
}

type ResolvedOptions = Readonly<Required<Omit<LlmEngineOptions, 'sha256' | 'threads' | 'logger' | 'loras'>>> & {
  readonly loras: readonly Readonly<Required<LoraAdapterOption>>[];
  readonly sha256: string | null;
  readonly threads: number | null;
};

/** Why the engine uses the number of threads it does. */
export type ThreadBasis = ThreadChoice['basis'] | 'small-model';

/**
 * Below this many parameters a token costs microseconds of math and llama.cpp's
 * per-operation thread barriers dominate: measured with the 0.2M-parameter test
 * model on a busy 2-core node, 100 tokens took 0.14 s on 1 thread and 11.7 s on 2.
 */
export const SMALL_MODEL_PARAMETERS = 20_000_000;

/** The engine as /v1/status reports it. */
export interface LlmEngineStatus {
  state: EngineState;
  /** Model id. */
  id: string;
  /** Why the model is refused or failed; null otherwise. */
  reason: string | null;
  /** Stable code of `reason`. */
  reasonCode: LlmErrorCode | null;
  path: string;
  /** Backend of the loaded (or last loaded) model; null before the first load. */
  backend: Backend | null;
  threads: number;
  /** Why that many threads: `configured`, `cgroup2`, `cgroup1`, `cpus` or `small-model`. */
  threadBasis: ThreadBasis;
  contextSize: number;
  architecture: string | null;
  parameters: number | null;
  sizeBytes: number | null;
  memory: { estimatedBytes: number | null; budgetBytes: number };
  /** True while weights are in memory. */
  loaded: boolean;
  loadedAt: string | null;
  loadMs: number | null;
  lastUsedAt: string | null;
  /** Completed generations since start. */
  calls: number;
  /** Calls waiting for the sequence. */
  queued: number;
  /** LoRA adapters, in the order they are applied. */
  loras: LoraAdapterStatus[];
}

/** One chat message in OpenAI form. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Sampling and control options shared by {@link LlmEngine.complete} and {@link LlmEngine.chat}. */
export interface GenerationOptions {
  /**
   * Constrain the output to JSON of this schema through a grammar. Types,
   * enums, required keys, string `maxLength` and array `maxItems` are
   * enforced while generating; other keywords (`pattern`, numeric bounds,
   * anyOf/allOf) are not, so validate the parsed value. Defaults to free text.
   */
  jsonSchema?: GbnfJsonSchema;
  /** Maximum tokens to generate; the call ends with `stopReason: 'maxTokens'` when reached. */
  maxTokens: number;
  /** Sampling temperature; 0 is greedy and deterministic. Defaults to 0. */
  temperature?: number;
  /** Seed for sampling when temperature > 0. Defaults to random. */
  seed?: number;
  /** Penalty on recently generated tokens (1 disables). Defaults to 1.1. */
  repeatPenalty?: number;
  /** Aborts waiting, loading or generating; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Receives generated text as it is produced. */
  onToken?: (text: string) => void;
}

/** Input of {@link LlmEngine.complete}. */
export interface CompleteRequest extends GenerationOptions {
  /** Fixed instructions; keep it identical across calls so its tokens are reused from the KV cache. */
  systemPrompt: string;
  /** The per-call part (the finding and its evidence). */
  userPrompt: string;
}

/** Input of {@link LlmEngine.chat}. */
export interface ChatRequest extends GenerationOptions {
  /** Conversation; the last message must be from the user. */
  messages: ChatMessage[];
}

/** Why generation stopped; `maxTokens` means the text was cut off. */
export type StopReason = 'eogToken' | 'maxTokens' | 'stopGenerationTrigger' | 'customStopTrigger' | 'functionCalls' | 'abort';

/** Result of one generation. */
export interface CompletionResult {
  text: string;
  /** `text` parsed as JSON when a schema was given and the output is complete JSON; else undefined. */
  json?: unknown;
  stopReason: StopReason;
  tokens: {
    /** Tokens of the rendered prompt (chat template included). */
    prompt: number;
    /** Tokens generated. */
    completion: number;
    /** Prompt tokens that were already in the KV cache and not evaluated again. */
    cachedPrompt: number;
  };
  /** Wall time of the call, queue wait and model load included. */
  latencyMs: number;
  timings: {
    /** Waiting for earlier calls. */
    queuedMs: number;
    /** Loading the model, when this call triggered the load. */
    loadMs: number;
    /** From start of evaluation to the first generated token (prompt evaluation). */
    promptMs: number;
    /** From the first to the last generated token. */
    generationMs: number;
  };
}

/**
 * One field of a structured answer: the model writes it under a GBNF grammar
 * that ends with `end` (and allows `end` nowhere else), for at most
 * `maxTokens` tokens. A field that reaches the cap is closed by the engine
 * with `close` (the text is then marked `cut`), so the answer stays whole.
 */
export interface AnswerField {
  name: string;
  /** GBNF of the field's text, `end` included. */
  grammar: string;
  /** The character that ends the field; the first generated token containing it ends it. */
  end: string;
  maxTokens: number;
  /** Written after a cut-off field's text (e.g. `…"` for a string, `]` for a list). */
  close: string;
}

/** Input of {@link LlmEngine.fill}. */
export interface FillRequest {
  systemPrompt: string;
  userPrompt: string;
  /**
   * The assistant's answer in order: strings are written by the engine (and
   * evaluated as one batch with what precedes them, at prompt speed), fields
   * are written by the model.
   */
  parts: readonly (string | AnswerField)[];
  /** Penalty on tokens already generated in this answer (1 disables). Defaults to 1.1. */
  repeatPenalty?: number;
  signal?: AbortSignal;
}

/** A field as the model wrote it. */
export interface FilledField {
  /** Text of the field without its `end` character (or `close`). */
  text: string;
  /** True when the field reached `maxTokens` and the engine closed it. */
  cut: boolean;
  tokens: number;
}

/** Result of {@link LlmEngine.fill}. */
export interface FillResult {
  /** The whole answer as it stands in the context (literal parts, fields, ends and closes). */
  text: string;
  fields: Record<string, FilledField>;
  tokens: {
    /** Tokens of the rendered prompt (chat template included). */
    prompt: number;
    /** Prompt tokens that were already in the KV cache and not evaluated again. */
    cachedPrompt: number;
    /** Tokens of the literal parts, evaluated in batches. */
    forced: number;
    /** Tokens the model generated. */
    completion: number;
  };
  latencyMs: number;
  timings: CompletionResult['timings'];
}

interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  chatWrapper: ChatWrapper;
}

interface FileSignature {
  size: number;
  mtimeMs: number;
}

const DEFAULT_IDLE_UNLOAD_MS = 600_000;
const DEFAULT_BATCH_SIZE = 512;
const MAX_CACHED_GRAMMARS = 32;


function fail(message: string): never {
  throw new TypeError(`LlmEngine options: ${message}`);
}

function resolveOptions(o: LlmEngineOptions): ResolvedOptions {
  if (typeof o.modelPath !== 'string' || o.modelPath === '') fail('modelPath is required');
  if (!(o.memoryBudgetBytes > 0)) fail('memoryBudgetBytes must be > 0');
  if (!Number.isInteger(o.contextSize) || o.contextSize < 256) fail('contextSize must be an integer >= 256');
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads > 0)) fail('threads must be a positive integer');
  const gpu = o.gpu ?? 'auto';
  if (gpu !== 'auto' && gpu !== 'cuda' && gpu !== 'vulkan' && gpu !== false) fail(`gpu must be 'auto', 'cuda', 'vulkan' or false`);
  const idleUnloadMs = o.idleUnloadMs ?? DEFAULT_IDLE_UNLOAD_MS;
  if (!(idleUnloadMs >= 0)) fail('idleUnloadMs must be >= 0');
  const batchSize = Math.min(o.batchSize ?? DEFAULT_BATCH_SIZE, o.contextSize);
  if (!Number.isInteger(batchSize) || batchSize < 1) fail('batchSize must be a positive integer');
  if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256.trim())) fail('sha256 must be 64 hex characters');
  const loras = (o.loras ?? []).map((l) => {
    if (typeof l.path !== 'string' || l.path === '') fail('every LoRA adapter needs a path');
    const scale = l.scale ?? 1;
    if (!Number.isFinite(scale)) fail('LoRA scale must be a number');
    if (l.sha256 && !/^[0-9a-fA-F]{64}$/.test(l.sha256.trim())) fail('LoRA sha256 must be 64 hex characters');
    return Object.freeze({ path: l.path, scale, sha256: l.sha256?.trim().toLowerCase() || null });
  });
  return Object.freeze({
    modelPath: o.modelPath,
    modelId: o.modelId ?? basename(o.modelPath).replace(/\.gguf$/i, ''),
    sha256: o.sha256?.trim().toLowerCase() ?? null,
    memoryBudgetBytes: o.memoryBudgetBytes,
    contextSize: o.contextSize,
    threads: o.threads ?? null,
    cgroupRoot: o.cgroupRoot ?? '/sys/fs/cgroup',
    gpu,
    gpuLayers: o.gpuLayers ?? 'auto',
    idleUnloadMs,
    batchSize,
    loras: Object.freeze(loras),
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** Resolves when `p` does, rejects with the abort reason as soon as `signal` aborts. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function toHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  return messages.map((m): ChatHistoryItem => {
    if (m.role === 'system') return { type: 'system', text: m.content };
    if (m.role === 'user') return { type: 'user', text: m.content };
    return { type: 'model', response: [m.content] };
  });
}

/** Timings of a call from its marks (performance.now() values). */
function callTimings(queuedMs: number, loadMs: number, evalStarted: number, firstTokenAt: number | null, ended: number): CompletionResult['timings'] {
  return {
    queuedMs: Math.round(queuedMs),
    loadMs: Math.round(loadMs),
    promptMs: Math.round((firstTokenAt ?? ended) - evalStarted),
    generationMs: Math.round(ended - (firstTokenAt ?? ended)),
  };
}

const LOG_LEVEL_RANK: Record<string, number> = { fatal: 0, error: 1, warn: 2, info: 3, log: 3, debug: 4 };

/**
 * One local model, loaded lazily on first use, unloaded when idle, and used
 * by one generation at a time (calls queue in arrival order).
 *
 * Wiring: the daemon builds one engine from config at start, calls `check()`
 * so /v1/status shows a refusal before any finding needs it, hands the engine
 * to the LLM diagnoser (`complete`) and the OpenAI-compatible route (`chat`),
 * exposes `status()` under `model` in /v1/status, and awaits `dispose()` on shutdown.
 */
export class LlmEngine implements AsyncDisposable {
  readonly #opts: ResolvedOptions;
  readonly #log: Logger;
  readonly #threadChoice: ThreadChoice;
  #threads: { threads: number; basis: ThreadBasis };

  #state: EngineState = 'none';
  #reason: LlmError | null = null;
  /** The file as it was when refused or failed: retried only once it changes. */
  #failedFile: FileSignature | 'missing' | null = null;
  #summary: GgufSummary | null = null;
  #adapters: AdapterSummary[] | null = null;
  #estimate: MemoryEstimate | null = null;
  #contextSize: number;
  #backend: Backend | null = null;

  #llama: Llama | null = null;
  #loaded: Loaded | null = null;
  #loading: Promise<Loaded> | null = null;
  #unloading: Promise<void> | null = null;
  #grammars = new Map<string, Promise<LlamaGrammar>>();

  #tail: Promise<void> = Promise.resolve();
  #queued = 0;
  #running = 0;
  #calls = 0;
  #loadedAt: number | null = null;
  #loadMs: number | null = null;
  #lastUsedAt: number | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #disposed = false;

  constructor(options: LlmEngineOptions) {
    this.#opts = resolveOptions(options);
    this.#log = options.logger.child({ component: 'llm', model: this.#opts.modelId });
    this.#threadChoice = chooseThreads({ cgroupRoot: this.#opts.cgroupRoot, configured: this.#opts.threads ?? undefined });
    this.#threads = { threads: this.#threadChoice.threads, basis: this.#threadChoice.basis };
    this.#contextSize = this.#opts.contextSize;
  }

  /** Model id (`llm:<id>` in diagnoses). */
  get id(): string {
    return this.#opts.modelId;
  }

  /** Current state and facts for /v1/status. */
  status(): LlmEngineStatus {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      state: this.#state,
      id: this.#opts.modelId,
      reason: this.#reason?.message ?? null,
      reasonCode: this.#reason?.code ?? null,
      path: this.#opts.modelPath,
      backend: this.#backend,
      threads: this.#threads.threads,
      threadBasis: this.#threads.basis,
      contextSize: this.#contextSize,
      architecture: this.#summary?.architecture ?? null,
      parameters: this.#summary?.parameters ?? null,
      sizeBytes: this.#summary?.sizeBytes ?? null,
      memory: { estimatedBytes: this.#estimate?.totalBytes ?? null, budgetBytes: this.#opts.memoryBudgetBytes },
      loaded: this.#loaded !== null,
      loadedAt: iso(this.#loadedAt),
      loadMs: this.#loadMs,
      lastUsedAt: iso(this.#lastUsedAt),
      calls: this.#calls,
      queued: this.#queued,
      loras: this.#opts.loras.map((l, i) => ({
        path: l.path,
        scale: l.scale,
        sha256: l.sha256,
        checked: this.#adapters?.[i] !== undefined,
        applied: this.#loaded !== null,
        sizeBytes: this.#adapters?.[i]?.sizeBytes ?? null,
      })),
    };
  }

  /**
   * Checks the file (exists, GGUF, complete, architecture, sha256, memory
   * budget) without loading it. Rejects with a {@link ModelRefusedError} and
   * sets the state to `refused` when it is unusable.
   */
  async check(): Promise<GgufSummary> {
    this.#assertUsable();
    const sticky = await this.#stickyFailure();
    if (sticky) throw sticky;
    try {
      const summary = await inspectGguf(this.#opts.modelPath);
      if (this.#opts.sha256) await assertSha256(summary, this.#opts.sha256);
      const adapters: AdapterSummary[] = [];
      for (const l of this.#opts.loras) {
        const a = await inspectAdapter(l.path, summary.architecture);
        if (l.sha256) await assertSha256(a, l.sha256);
        adapters.push(a);
      }
      this.#adapters = adapters;
      const contextSize = Math.min(this.#opts.contextSize, summary.trainedContextLength ?? this.#opts.contextSize);
      const estimate = estimateMemory(summary, contextSize, Math.min(this.#opts.batchSize, contextSize));
      this.#summary = summary;
      this.#estimate = estimate;
      this.#contextSize = contextSize;
      this.#threads =
        this.#threadChoice.basis !== 'configured' && summary.parameters < SMALL_MODEL_PARAMETERS
          ? { threads: 1, basis: 'small-model' }
          : { threads: this.#threadChoice.threads, basis: this.#threadChoice.basis };
      assertWithinBudget(estimate, this.#opts.memoryBudgetBytes, contextSize);
      if (this.#state === 'refused') this.#setState('none', null);
      return summary;
    } catch (err) {
      if (err instanceof ModelRefusedError) {
        await this.#rememberFailure('refused', err);
        this.#log.warn({ code: err.code, path: this.#opts.modelPath }, `model refused: ${err.message}`);
      }
      throw err;
    }
  }

  /** Loads the model now instead of on first use. */
  async load(signal?: AbortSignal): Promise<void> {
    await this.#ensureLoaded(signal);
  }

  /** Tokens of `text` as plain text (special-token markup in logs stays text). Loads the model if needed. */
  async tokenize(text: string, signal?: AbortSignal): Promise<number[]> {
    this.#touch();
    const loaded = await this.#ensureLoaded(signal);
    return loaded.model.tokenize(text, false).map(Number);
  }

  /** Number of tokens of `text` as plain text. Loads the model if needed. */
  async countTokens(text: string, signal?: AbortSignal): Promise<number> {
    return (await this.tokenize(text, signal)).length;
  }

  /**
   * Generates an answer to a system + user prompt. Keep `systemPrompt`
   * identical across calls: its tokens stay in the KV cache and are not
   * evaluated again (`tokens.cachedPrompt`).
   */
  complete(request: CompleteRequest): Promise<CompletionResult> {
    const messages: ChatMessage[] = [
      { role: 'system', content: request.systemPrompt },
      { role: 'user', content: request.userPrompt },
    ];
    return this.#generate(messages, request);
  }

  /** Generates the next assistant message of a conversation (for an OpenAI-compatible endpoint). */
  chat(request: ChatRequest): Promise<CompletionResult> {
    return this.#generate(request.messages, request);
  }

  /**
   * Writes a structured answer: the engine writes the fixed parts (JSON keys
   * and punctuation) and the model only the field values, each under its own
   * grammar and token cap. Fixed text is evaluated in one batch with the next
   * field's start instead of one generated token at a time, and no field can
   * run away with the whole budget: a field at its cap is closed and marked
   * `cut`, so the answer is always complete.
   */
  fill(request: FillRequest): Promise<FillResult> {
    const started = performance.now();
    for (const p of request.parts) {
      if (typeof p === 'string') continue;
      if (!Number.isInteger(p.maxTokens) || p.maxTokens < 1) throw new TypeError(`field ${p.name}: maxTokens must be a positive integer`);
      if (p.end.length !== 1) throw new TypeError(`field ${p.name}: end must be one character`);
    }
    const messages: ChatMessage[] = [
      { role: 'system', content: request.systemPrompt },
      { role: 'user', content: request.userPrompt },
    ];
    // Room for the answer: every field's cap and every literal part (at worst a token per 2 characters).
    const budget = request.parts.reduce((n, p) => n + (typeof p === 'string' ? Math.ceil(p.length / 2) + 1 : p.maxTokens + 2), 0);
    return this.#exclusive(request.signal, async (queuedMs) => {
      const { h, loadMs, promptTokens, cachedPrompt } = await this.#start(messages, budget, request.signal);
      const signal = request.signal;

      const tokens = [...promptTokens];
      const generated: Token[] = [];
      const fields: Record<string, FilledField> = {};
      let text = '';
      let forced = 0;
      let firstTokenAt: number | null = null;
      const evalStarted = performance.now();
      const penalty = request.repeatPenalty ?? 1.1;

      for (const part of request.parts) {
        if (typeof part === 'string') {
          const t = h.model.tokenize(part, false);
          tokens.push(...t);
          forced += t.length;
          text += part;
          continue;
        }
        const grammar = await this.#gbnf(h.llama, part.grammar);
        const state = new (await llamaCpp()).LlamaGrammarEvaluationState({ model: h.model, grammar });
        // Keep what the sequence already holds of `tokens`; evaluate the rest (at least one token, for logits).
        const keep = Math.min(h.sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
        if (h.sequence.nextTokenIndex > keep) await h.sequence.eraseContextTokenRanges([{ start: keep, end: h.sequence.nextTokenIndex }]);
        const mine: Token[] = [];
        let ended = false;
        const it = h.sequence.evaluate(tokens.slice(keep), {
          temperature: 0,
          grammarEvaluationState: state,
          ...(penalty !== 1 ? { repeatPenalty: { punishTokens: () => generated.slice(-64), penalty } } : {}),
        });
        try {
          for await (const token of it) {
            firstTokenAt ??= performance.now();
            mine.push(token);
            generated.push(token);
            // `end` is ASCII, so one token's text shows it even when other characters span tokens.
            if (h.model.detokenize([token]).includes(part.end)) {
              ended = true;
              break;
            }
            if (mine.length >= part.maxTokens) break;
            if (signal?.aborted) break;
          }
        } finally {
          await it.return();
        }
        signal?.throwIfAborted();
        tokens.push(...mine);
        if (ended) {
          const all = h.model.detokenize(mine);
          const value = all.slice(0, all.lastIndexOf(part.end));
          text += `${value}${part.end}`;
          fields[part.name] = { text: value, cut: false, tokens: mine.length };
        } else {
          // Cut at the cap (or the model stopped): the bytes of the field so far, then the engine's close.
          const whole = h.model.detokenize(mine).replace(/\uFFFD+$/, '');
          const closeTokens = h.model.tokenize(part.close, false);
          tokens.push(...closeTokens);
          forced += closeTokens.length;
          text += `${whole}${part.close}`;
          fields[part.name] = { text: whole, cut: true, tokens: mine.length };
        }
      }
      const ended = performance.now();
      this.#calls++;
      return {
        text,
        fields,
        tokens: { prompt: promptTokens.length, cachedPrompt, forced, completion: generated.length },
        latencyMs: Math.round(ended - started),
        timings: callTimings(queuedMs, loadMs, evalStarted, firstTokenAt, ended),
      };
    });
  }

  /** Frees the model and its context now; the next call loads them again. */
  async unload(): Promise<void> {
    await this.#exclusive(undefined, () => this.#unloadNow('requested'), false);
  }

  /** Frees every native object (context, model, llama.cpp backend). Further calls reject. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#clearIdleTimer();
    // Let the running call finish; queued ones see #disposed and reject.
    await this.#tail.catch(() => {});
    await this.#loading?.catch(() => {});
    await this.#unloadNow('disposed');
    const llama = this.#llama;
    this.#llama = null;
    this.#grammars.clear();
    if (llama) await llama.dispose();
  }

  /** Same as {@link dispose}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  // ---------------------------------------------------------------------------

  async #generate(messages: readonly ChatMessage[], req: GenerationOptions): Promise<CompletionResult> {
    const started = performance.now();
    const last = messages[messages.length - 1];
    if (last?.role !== 'user') throw new TypeError('the last message must be from the user');
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) throw new TypeError('maxTokens must be a positive integer');
    return this.#exclusive(req.signal, async (queuedMs) => {
      const { h, loadMs, promptTokens, cachedPrompt } = await this.#start(messages, req.maxTokens, req.signal);
      const history = toHistory(messages.slice(0, -1));
      const grammar = req.jsonSchema ? await this.#grammar(h.llama, req.jsonSchema) : undefined;

      const session = new (await llamaCpp()).LlamaChatSession({ contextSequence: h.sequence, chatWrapper: h.chatWrapper, autoDisposeSequence: false });
      let completionTokens = 0;
      let firstTokenAt: number | null = null;
      const evalStarted = performance.now();
      // onToken misses tokens held back as a possible stop trigger and then dropped; the
      // sequence's meter counts every sampled token, so usage and finish reason agree.
      const outputBefore = h.sequence.tokenMeter.usedOutputTokens;
      try {
        session.setChatHistory(history);
        const res = await session.promptWithMeta(last.content, {
          maxTokens: req.maxTokens,
          temperature: req.temperature ?? 0,
          ...(req.seed !== undefined ? { seed: req.seed } : {}),
          repeatPenalty: req.repeatPenalty === 1 ? false : { penalty: req.repeatPenalty ?? 1.1, penalizeNewLine: false },
          ...(grammar ? { grammar } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
          // Thinking models (Qwen3...) would spend the whole budget reasoning before the JSON.
          budgets: { thoughtTokens: 0 },
          onToken: (tokens) => {
            firstTokenAt ??= performance.now();
            completionTokens += tokens.length;
          },
          ...(req.onToken ? { onTextChunk: req.onToken } : {}),
        });
        const ended = performance.now();
        completionTokens = Math.max(completionTokens, h.sequence.tokenMeter.usedOutputTokens - outputBefore);
        let json: unknown;
        if (grammar && res.stopReason !== 'maxTokens') {
          try {
            json = JSON.parse(res.responseText);
          } catch {
            json = undefined;
          }
        }
        this.#calls++;
        return {
          text: res.responseText,
          ...(json !== undefined ? { json } : {}),
          stopReason: res.stopReason,
          tokens: { prompt: promptTokens.length, completion: completionTokens, cachedPrompt },
          latencyMs: Math.round(ended - started),
          timings: callTimings(queuedMs, loadMs, evalStarted, firstTokenAt, ended),
        };
      } finally {
        session.dispose({ disposeSequence: false });
      }
    });
  }

  /**
   * The start of a call: the model loaded (timed
   * when this call loads it), the chat rendered and tokenized up to the
   * answer, checked against the context with room for `answerTokens`, and
   * how many of its tokens the sequence already holds.
   */
  async #start(messages: readonly ChatMessage[], answerTokens: number, signal: AbortSignal | undefined) {
    const loadStarted = performance.now();
    const wasLoaded = this.#loaded !== null;
    const h = await this.#ensureLoaded(signal);
    const loadMs = wasLoaded ? 0 : performance.now() - loadStarted;
    signal?.throwIfAborted();
    const promptTokens = h.chatWrapper
      .generateContextState({ chatHistory: [...toHistory(messages), { type: 'model', response: [] }] })
      .contextText.tokenize(h.model.tokenizer);
    if (promptTokens.length + answerTokens >= h.context.contextSize) {
      throw new PromptTooLongError(promptTokens.length, answerTokens, h.context.contextSize);
    }
    // What is kept: the common prefix, minus the last prompt token, which is always evaluated again for the first logits.
    const cachedPrompt = Math.min(h.sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
    return { h, loadMs, promptTokens, cachedPrompt };
  }

  #grammar(llama: Llama, schema: GbnfJsonSchema): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    let g = this.#grammars.get(key);
    if (!g) {
      // A schema comes from the caller: any failure to build its grammar is their input's fault.
      g = (async () => llama.createGrammarForJsonSchema<GbnfJsonSchema>(schema))().catch((err: unknown) => {
        throw new GrammarError(err instanceof Error ? err.message.split('\n')[0]! : String(err), { cause: err });
      });
      g.catch(() => this.#grammars.delete(key));
      // Callers of the chat endpoint may send any schema: keep the newest few.
      if (this.#grammars.size >= MAX_CACHED_GRAMMARS) this.#grammars.delete(this.#grammars.keys().next().value as string);
      this.#grammars.set(key, g);
    }
    return g;
  }

  #gbnf(llama: Llama, text: string): Promise<LlamaGrammar> {
    const key = `gbnf\u0000${text}`;
    let g = this.#grammars.get(key);
    if (!g) {
      g = llama.createGrammar({ grammar: text });
      g.catch(() => this.#grammars.delete(key));
      if (this.#grammars.size >= MAX_CACHED_GRAMMARS) this.#grammars.delete(this.#grammars.keys().next().value as string);
      this.#grammars.set(key, g);
    }
    return g;
  }

  /** Runs `fn` alone on the sequence, after every earlier call; gives up waiting when `signal` aborts. */
  async #exclusive<T>(signal: AbortSignal | undefined, fn: (queuedMs: number) => Promise<T>, use = true): Promise<T> {
    this.#assertUsable();
    signal?.throwIfAborted();
    const enqueued = performance.now();
    const previous = this.#tail;
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    this.#tail = previous.then(() => mine);
    this.#queued++;
    try {
      await raceAbort(previous, signal);
    } catch (err) {
      this.#queued--;
      // Our turn is skipped, but later calls must still wait for `previous`.
      previous.then(release, release);
      throw err;
    }
    this.#queued--;
    this.#running++;
    this.#clearIdleTimer();
    try {
      this.#assertUsable();
      return await fn(performance.now() - enqueued);
    } finally {
      this.#running--;
      // Unloading is not a use: it must not restart the idle clock.
      if (use) this.#touch();
      release();
    }
  }

  #assertUsable(): void {
    if (this.#disposed) throw new EngineDisposedError();
  }

  #touch(): void {
    this.#lastUsedAt = Date.now();
    this.#scheduleIdleUnload();
  }

  #scheduleIdleUnload(): void {
    this.#clearIdleTimer();
    if (this.#opts.idleUnloadMs <= 0 || this.#disposed) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      void this.#idleUnload();
    }, this.#opts.idleUnloadMs);
    this.#idleTimer.unref();
  }

  #clearIdleTimer(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  async #idleUnload(): Promise<void> {
    if (this.#disposed || !this.#loaded || this.#running > 0 || this.#queued > 0) return;
    if (this.#lastUsedAt !== null && Date.now() - this.#lastUsedAt < this.#opts.idleUnloadMs) {
      this.#scheduleIdleUnload();
      return;
    }
    try {
      await this.#exclusive(undefined, async () => {
        // A call may have slipped in while we waited for the lock.
        if (this.#lastUsedAt !== null && Date.now() - this.#lastUsedAt < this.#opts.idleUnloadMs) return;
        await this.#unloadNow('idle');
      }, false);
    } catch (err) {
      if (!(err instanceof EngineDisposedError)) this.#log.warn({ err }, 'idle unload failed');
    }
  }

  async #unloadNow(why: 'idle' | 'requested' | 'disposed'): Promise<void> {
    await this.#loading?.catch(() => {});
    const loaded = this.#loaded;
    if (!loaded) return;
    this.#loaded = null;
    // Status changes with `loaded`, not after the native disposal finishes.
    if (this.#state === 'ready') this.#setState('none', null);
    const done = (async () => {
      await loaded.context.dispose();
      await loaded.model.dispose();
    })();
    this.#unloading = done;
    try {
      await done;
    } finally {
      this.#unloading = null;
    }
    this.#log.info({ why }, 'model unloaded');
  }

  async #fileSignature(): Promise<FileSignature | 'missing'> {
    try {
      const st = await stat(this.#opts.modelPath);
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch {
      return 'missing';
    }
  }

  /** The remembered refusal or failure, while the file is the one that caused it. */
  async #stickyFailure(): Promise<LlmError | null> {
    if ((this.#state !== 'refused' && this.#state !== 'failed') || !this.#reason || !this.#failedFile) return null;
    const now = await this.#fileSignature();
    const then = this.#failedFile;
    const same = now === 'missing' || then === 'missing' ? now === then : now.size === then.size && now.mtimeMs === then.mtimeMs;
    return same ? this.#reason : null;
  }

  async #rememberFailure(state: 'refused' | 'failed', err: LlmError): Promise<void> {
    this.#failedFile = await this.#fileSignature();
    this.#setState(state, err);
  }

  #setState(state: EngineState, reason: LlmError | null): void {
    this.#state = state;
    this.#reason = reason;
  }

  async #ensureLoaded(signal?: AbortSignal): Promise<Loaded> {
    this.#assertUsable();
    if (this.#unloading) await this.#unloading;
    if (this.#loaded) return this.#loaded;
    this.#loading ??= this.#load().finally(() => {
      this.#loading = null;
    });
    return raceAbort(this.#loading, signal);
  }

  async #load(): Promise<Loaded> {
    await this.check();
    const started = performance.now();
    const cpuOnly = this.#opts.gpu === false;
    this.#setState('loading', null);
    let model: LlamaModel | null = null;
    let stage = 'llama.cpp backend';
    try {
      const { getLlama, LlamaLogLevel, resolveChatWrapper } = await llamaCpp();
      this.#llama ??= await getLlama({
        gpu: this.#opts.gpu,
        build: 'never',
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        maxThreads: this.#threadChoice.threads,
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => this.#llamaLog(level, message),
      });
      const llama = this.#llama;
      const backend: Backend = llama.gpu === false ? 'cpu' : llama.gpu;
      const onCpu = cpuOnly || backend === 'cpu';
      this.#backend = backend;
      stage = `model (${backend})`;
      model = await llama.loadModel({
        modelPath: this.#opts.modelPath,
        gpuLayers: onCpu ? 0 : this.#opts.gpuLayers === 'auto' ? { fitContext: { contextSize: this.#contextSize } } : this.#opts.gpuLayers,
        // See the file comment: mmap doubles resident memory on CPU.
        useMmap: onCpu ? false : 'auto',
        // Our budget check already ran; node-llama-cpp's RAM estimate is too high for CPU.
        ignoreMemorySafetyChecks: onCpu,
      });
      stage = `context of ${this.#contextSize} tokens (${backend})`;
      const context = await model.createContext({
        contextSize: this.#contextSize,
        batchSize: Math.min(this.#opts.batchSize, this.#contextSize),
        sequences: 1,
        threads: this.#threads.threads,
        ignoreMemorySafetyChecks: onCpu,
        failedCreationRemedy: false,
        ...(this.#opts.loras.length > 0 ? { lora: { adapters: this.#opts.loras.map((l) => ({ filePath: l.path, scale: l.scale })) } } : {}),
      });
      const loaded: Loaded = {
        llama,
        model,
        context,
        sequence: context.getSequence(),
        chatWrapper: resolveChatWrapper(model),
      };
      this.#loaded = loaded;
      this.#loadedAt = Date.now();
      this.#loadMs = Math.round(performance.now() - started);
      this.#setState('ready', null);
      this.#failedFile = null;
      this.#log.info(
        {
          backend,
          threads: this.#threads.threads,
          threadBasis: this.#threads.basis,
          contextSize: this.#contextSize,
          architecture: this.#summary?.architecture,
          chatWrapper: loaded.chatWrapper.wrapperName,
          estimatedBytes: this.#estimate?.totalBytes,
          loadMs: this.#loadMs,
        },
        'model loaded',
      );
      this.#touch();
      return loaded;
    } catch (err) {
      await model?.dispose().catch(() => {});
      const detail = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err);
      const hint =
        stage === 'llama.cpp backend' && this.#opts.gpu !== false
          ? ` (no prebuilt llama.cpp binary for gpu=${String(this.#opts.gpu)} loads on this node; use gpu 'auto' or false)`
          : '';
      const failure = err instanceof LlmError ? err : new ModelLoadError(`${stage}: ${detail}${hint}`, { cause: err });
      await this.#rememberFailure('failed', failure);
      this.#log.error({ err, code: failure.code }, failure.message);
      throw failure;
    }
  }

  #llamaLog(level: LlamaLogLevel, message: string): void {
    const text = message.trim();
    if (!text) return;
    const rank = LOG_LEVEL_RANK[level] ?? 4;
    if (rank <= 1) this.#log.error({ source: 'llama.cpp' }, text);
    else if (rank === 2) this.#log.warn({ source: 'llama.cpp' }, text);
    else this.#log.debug({ source: 'llama.cpp' }, text);
  }
}
