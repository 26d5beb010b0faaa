/**
 * Errors of the local LLM engine. Callers check `err.code`, never the message.
 *
 * A `ModelRefusedError` means the file was judged unusable before any native
 * code touched it: the engine state becomes `refused` and stays so until the
 * file changes. Other errors are about one call or one load attempt.
 */
import { CodedError } from '../errors.js';

/** Every code an engine error can carry. */
export type LlmErrorCode =
  | 'ERR_MODEL_FILE_MISSING'
  | 'ERR_MODEL_NOT_GGUF'
  | 'ERR_MODEL_TRUNCATED'
  | 'ERR_MODEL_CHECKSUM'
  | 'ERR_MODEL_ARCHITECTURE'
  | 'ERR_MODEL_OVER_BUDGET'
  | 'ERR_ADAPTER_INVALID'
  | 'ERR_MODEL_LOAD_FAILED'
  | 'ERR_PROMPT_TOO_LONG'
  | 'ERR_ENGINE_DISPOSED'
  | 'ERR_GRAMMAR_INVALID';

/** Base of every engine error. */
export class LlmError extends CodedError {
  /** Stable machine-readable code. */
  readonly code: LlmErrorCode;
  constructor(code: LlmErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** The model file was refused before loading; `message` is the reason shown in /v1/status. */
export class ModelRefusedError extends LlmError {}

/** No file at the configured model path. */
export class ModelFileMissingError extends ModelRefusedError {
  constructor(path: string, options?: ErrorOptions) {
    super('ERR_MODEL_FILE_MISSING', `model file not found: ${path}`, options);
  }
}

/** The file is not a GGUF file this llama.cpp can read (magic, version or metadata). */
export class ModelNotGgufError extends ModelRefusedError {
  constructor(path: string, detail: string, options?: ErrorOptions) {
    super('ERR_MODEL_NOT_GGUF', `${path} is not a usable GGUF file: ${detail}`, options);
  }
}

/** The file ends before the tensor data its header describes (interrupted copy or download). */
export class ModelTruncatedError extends ModelRefusedError {
  /** Bytes the header says the file needs. */
  readonly expectedBytes: number;
  /** Bytes actually on disk. */
  readonly actualBytes: number;
  constructor(path: string, expectedBytes: number, actualBytes: number) {
    super('ERR_MODEL_TRUNCATED', `${path} is truncated: the GGUF header needs ${expectedBytes} bytes, the file has ${actualBytes}`);
    this.expectedBytes = expectedBytes;
    this.actualBytes = actualBytes;
  }
}

/** The file's sha256 differs from the configured one. */
export class ModelChecksumError extends ModelRefusedError {
  constructor(path: string, expected: string, actual: string) {
    super('ERR_MODEL_CHECKSUM', `${path} has sha256 ${actual}, expected ${expected}`);
  }
}

/** The architecture is unknown to this llama.cpp build or does not generate text (embedding, vision, audio). */
export class ModelArchitectureError extends ModelRefusedError {
  /** `general.architecture` of the file. */
  readonly architecture: string;
  constructor(architecture: string, detail: string) {
    super('ERR_MODEL_ARCHITECTURE', `architecture "${architecture}" ${detail}`);
    this.architecture = architecture;
  }
}

/** Weights + KV cache + compute buffers would not fit in the memory budget. */
export class ModelOverBudgetError extends ModelRefusedError {
  /** Estimated bytes needed at the configured context size. */
  readonly neededBytes: number;
  /** The configured budget. */
  readonly budgetBytes: number;
  constructor(neededBytes: number, budgetBytes: number, detail: string) {
    super(
      'ERR_MODEL_OVER_BUDGET',
      `model needs about ${mib(neededBytes)} MiB (${detail}), over the memory budget of ${mib(budgetBytes)} MiB`,
    );
    this.neededBytes = neededBytes;
    this.budgetBytes = budgetBytes;
  }
}

/** A configured LoRA adapter is missing, not a LoRA GGUF, or made for another architecture. */
export class AdapterRefusedError extends ModelRefusedError {
  constructor(path: string, detail: string, options?: ErrorOptions) {
    super('ERR_ADAPTER_INVALID', `LoRA adapter ${path} cannot be used: ${detail}`, options);
  }
}

/** llama.cpp failed to load the model or create its context (native error, no usable backend). */
export class ModelLoadError extends LlmError {
  constructor(detail: string, options?: ErrorOptions) {
    super('ERR_MODEL_LOAD_FAILED', `model load failed: ${detail}`, options);
  }
}

/**
 * True when the model, or an adapter it is configured with, cannot be used at
 * all: refused before loading (any ModelRefusedError, AdapterRefusedError
 * included) or failed to load. That is the user's file, not one request.
 */
export function isUnusableModel(err: unknown): err is ModelRefusedError | ModelLoadError {
  return err instanceof ModelRefusedError || err instanceof ModelLoadError;
}

/** Prompt plus the requested output does not fit in the context window. */
export class PromptTooLongError extends LlmError {
  /** Tokens of the rendered prompt (chat template included). */
  readonly promptTokens: number;
  /** Requested maximum output tokens. */
  readonly maxTokens: number;
  /** Context window in tokens. */
  readonly contextSize: number;
  constructor(promptTokens: number, maxTokens: number, contextSize: number) {
    super('ERR_PROMPT_TOO_LONG', `prompt of ${promptTokens} tokens + ${maxTokens} output tokens exceeds the context of ${contextSize} tokens`);
    this.promptTokens = promptTokens;
    this.maxTokens = maxTokens;
    this.contextSize = contextSize;
  }
}

/** A JSON schema the grammar builder cannot turn into a grammar (the caller's input, not the model's fault). */
export class GrammarError extends LlmError {
  constructor(reason: string, options?: ErrorOptions) {
    super('ERR_GRAMMAR_INVALID', `the JSON schema cannot be used as a grammar: ${reason}`, options);
  }
}

/** The engine was disposed; no further calls are accepted. */
export class EngineDisposedError extends LlmError {
  constructor() {
    super('ERR_ENGINE_DISPOSED', 'the LLM engine was disposed');
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}
