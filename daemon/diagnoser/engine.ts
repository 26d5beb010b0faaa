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
 *
 * This file is the engine's life cycle (check, load, idle unload, dispose)
 * and its three calls; engine-types.ts holds the types (re-exported here),
 * engine-options.ts the option checks, engine-sequence.ts the call queue,
 * grammar cache and prompt-prefix reuse, engine-fill.ts the fill loop.
 */
import { stat } from 'node:fs/promises';
import type { Llama, LlamaLogLevel, LlamaModel } from 'node-llama-cpp';
import type { Logger } from 'pino';
import { chooseThreads, type ThreadChoice } from './cgroup.js';
import { fillParts } from './engine-fill.js';
import { type ResolvedOptions, resolveOptions } from './engine-options.js';
import { CallQueue, GrammarCache, type Loaded, callTimings, promptState, raceAbort, toHistory } from './engine-sequence.js';
import {
  type Backend,
  type ChatMessage,
  type ChatRequest,
  type CompleteRequest,
  type CompletionResult,
  type EngineState,
  type FillRequest,
  type FillResult,
  type GenerationOptions,
  type LlmEngineOptions,
  type LlmEngineStatus,
  SMALL_MODEL_PARAMETERS,
  type ThreadBasis,
} from './engine-types.js';
import { EngineDisposedError, LlmError, ModelLoadError, ModelRefusedError } from './errors.js';
import { llamaCpp } from './llama-cpp.js';
import { type AdapterSummary, assertSha256, assertWithinBudget, estimateMemory, type GgufSummary, inspectAdapter, inspectGguf, type MemoryEstimate } from './gguf-check.js';

export * from './engine-types.js';

/** The model file as it was when refused or failed. */
interface FileSignature {
  size: number;
  mtimeMs: number;
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
  readonly #grammars = new GrammarCache();
  readonly #queue = new CallQueue();
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
      queued: this.#queue.queued,
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
      const evalStarted = performance.now();
      const { text, fields, forced, completion, firstTokenAt } = await fillParts(h, this.#grammars, promptTokens, request.parts, request.repeatPenalty ?? 1.1, request.signal);
      const ended = performance.now();
      this.#calls++;
      return {
        text,
        fields,
        tokens: { prompt: promptTokens.length, cachedPrompt, forced, completion },
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
    await this.#queue.idle.catch(() => {});
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
      const grammar = req.jsonSchema ? await this.#grammars.json(h.llama, req.jsonSchema) : undefined;

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
    const { promptTokens, cachedPrompt } = promptState(h, messages, answerTokens);
    return { h, loadMs, promptTokens, cachedPrompt };
  }

  /** Runs `fn` alone on the sequence, after every earlier call; gives up waiting when `signal` aborts. */
  async #exclusive<T>(signal: AbortSignal | undefined, fn: (queuedMs: number) => Promise<T>, use = true): Promise<T> {
    this.#assertUsable();
    return this.#queue.run(signal, fn, {
      started: () => {
        this.#clearIdleTimer();
        this.#assertUsable();
      },
      // Unloading is not a use: it must not restart the idle clock.
      ended: () => {
        if (use) this.#touch();
      },
    });
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
    if (this.#disposed || !this.#loaded || this.#queue.running > 0 || this.#queue.queued > 0) return;
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
