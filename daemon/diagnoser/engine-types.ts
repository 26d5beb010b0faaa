/**
 * The types of the local LLM engine (engine.ts): its options, its status, and
 * the requests and results of its three calls (`complete`, `chat`, `fill`).
 * engine.ts re-exports them; apart from one constant they are only types.
 */
import type { GbnfJsonSchema } from 'node-llama-cpp';
import type { Logger } from 'pino';
import type { LoraStatus, ModelStatus } from '../core/contract.js';
import type { ThreadChoice } from './cgroup.js';
import type { LlmErrorCode } from './errors.js';

/** GPU selection: `auto` uses CUDA or Vulkan when the prebuilt binary for it loads, else CPU. */
export type GpuOption = 'auto' | 'cuda' | 'vulkan' | false;

/** Engine life cycle, as /v1/status shows it under `model.state`. */
export type EngineState = ModelStatus['state'];

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

/** A LoRA adapter as /v1/status shows it (the contract's shape). */
export type LoraAdapterStatus = LoraStatus;

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
