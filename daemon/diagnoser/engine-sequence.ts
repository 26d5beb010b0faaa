/**
 * The context sequence of the LLM engine and what shares it: one call at a
 * time in arrival order (`CallQueue`), the grammars built for it
 * (`GrammarCache`), and how much of a new prompt the sequence already holds
 * (`promptState`). See engine.ts for why there is one sequence only.
 */
import type { ChatHistoryItem, ChatWrapper, GbnfJsonSchema, Llama, LlamaContext, LlamaContextSequence, LlamaGrammar, LlamaModel, Token } from 'node-llama-cpp';
import type { ChatMessage, CompletionResult } from './engine-types.js';
import { GrammarError, PromptTooLongError } from './errors.js';

/** The native objects of a loaded model. */
export interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  chatWrapper: ChatWrapper;
}

const MAX_CACHED_GRAMMARS = 32;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** Resolves when `p` does, rejects with the abort reason as soon as `signal` aborts. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
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

/** Messages in node-llama-cpp's chat history form. */
export function toHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  return messages.map((m): ChatHistoryItem => {
    if (m.role === 'system') return { type: 'system', text: m.content };
    if (m.role === 'user') return { type: 'user', text: m.content };
    return { type: 'model', response: [m.content] };
  });
}

/** Timings of a call from its marks (performance.now() values). */
export function callTimings(queuedMs: number, loadMs: number, evalStarted: number, firstTokenAt: number | null, ended: number): CompletionResult['timings'] {
  return {
    queuedMs: Math.round(queuedMs),
    loadMs: Math.round(loadMs),
    promptMs: Math.round((firstTokenAt ?? ended) - evalStarted),
    generationMs: Math.round(ended - (firstTokenAt ?? ended)),
  };
}

/**
 * The chat rendered and tokenized up to the answer, checked against the
 * context with room for `answerTokens`, and how many of its tokens the
 * sequence already holds.
 */
export function promptState(h: Loaded, messages: readonly ChatMessage[], answerTokens: number): { promptTokens: Token[]; cachedPrompt: number } {
  const promptTokens = h.chatWrapper
    .generateContextState({ chatHistory: [...toHistory(messages), { type: 'model', response: [] }] })
    .contextText.tokenize(h.model.tokenizer);
  if (promptTokens.length + answerTokens >= h.context.contextSize) {
    throw new PromptTooLongError(promptTokens.length, answerTokens, h.context.contextSize);
  }
  // What is kept: the common prefix, minus the last prompt token, which is always evaluated again for the first logits.
  const cachedPrompt = Math.min(h.sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
  return { promptTokens, cachedPrompt };
}

/** Grammars built for the sequence's model, by their source; the newest few are kept. */
export class GrammarCache {
  #grammars = new Map<string, Promise<LlamaGrammar>>();

  /** The grammar of a JSON schema. */
  json(llama: Llama, schema: GbnfJsonSchema): Promise<LlamaGrammar> {
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

  /** The grammar of a GBNF text. */
  gbnf(llama: Llama, text: string): Promise<LlamaGrammar> {
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

  /** Forgets every grammar. */
  clear(): void {
    this.#grammars.clear();
  }
}

/** Hooks of {@link CallQueue.run} around the caller's turn. */
export interface TurnHooks {
  /** Called when the turn starts, before `fn`. */
  started(): void;
  /** Called when the turn ends, before the next call's turn starts. */
  ended(): void;
}

/** Calls on the one sequence, one at a time in arrival order. */
export class CallQueue {
  #tail: Promise<void> = Promise.resolve();
  #queued = 0;
  #running = 0;

  /** Calls waiting for their turn. */
  get queued(): number {
    return this.#queued;
  }

  /** Calls running now (0 or 1). */
  get running(): number {
    return this.#running;
  }

  /** Settles once every call queued so far has ended. */
  get idle(): Promise<void> {
    return this.#tail;
  }

  /** Runs `fn` alone, after every earlier call; gives up waiting when `signal` aborts. */
  async run<T>(signal: AbortSignal | undefined, fn: (queuedMs: number) => Promise<T>, hooks: TurnHooks): Promise<T> {
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
    try {
      hooks.started();
      return await fn(performance.now() - enqueued);
    } finally {
      this.#running--;
      hooks.ended();
      release();
    }
  }
}
