/**
 * The fill loop of the LLM engine (`LlmEngine.fill`): literal parts are
 * tokenized and evaluated in one batch with the next field's start, fields are
 * generated under their own grammar until their end character or their token
 * cap, where the engine closes them.
 */
import type { Token } from 'node-llama-cpp';
import type { AnswerField, FilledField } from './engine-types.js';
import type { GrammarCache, Loaded } from './engine-sequence.js';
import { llamaCpp } from './llama-cpp.js';

/** What {@link fillParts} wrote after the prompt. */
export interface FilledParts {
  /** The whole answer as it stands in the context. */
  text: string;
  fields: Record<string, FilledField>;
  /** Tokens of the literal parts and closes. */
  forced: number;
  /** Tokens the model generated. */
  completion: number;
  /** performance.now() of the first generated token; null when none was. */
  firstTokenAt: number | null;
}

/** Writes `parts` after `promptTokens` on the loaded sequence (the caller holds the sequence). */
export async function fillParts(
  h: Loaded,
  grammars: GrammarCache,
  promptTokens: readonly Token[],
  parts: readonly (string | AnswerField)[],
  penalty: number,
  signal: AbortSignal | undefined,
): Promise<FilledParts> {
  const tokens = [...promptTokens];
  const generated: Token[] = [];
  const fields: Record<string, FilledField> = {};
  let text = '';
  let forced = 0;
  let firstTokenAt: number | null = null;

  for (const part of parts) {
    if (typeof part === 'string') {
      const t = h.model.tokenize(part, false);
      tokens.push(...t);
      forced += t.length;
      text += part;
      continue;
    }
    const grammar = await grammars.gbnf(h.llama, part.grammar);
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
  return { text, fields, forced, completion: generated.length, firstTokenAt };
}
