/**
 * BYOAI: an OpenAI-compatible server inside the site (llama-server, vLLM,
 * Ollama, LocalAI, another nodesage's `/v1`) diagnoses for nodes too small
 * for a model of their own. Opt-in through `llm.backend`; while it is unset
 * nothing here runs and no connection is opened.
 *
 * It is a {@link CompletionBackend} behind the same {@link LlmDiagnoser} as
 * the local model, so the prompt, the answer schema, the parse, the
 * validation and the evidence-citation checks are the same code. One
 * difference, on purpose: the local engine writes the answer field by field
 * under per-field grammars; here the whole answer is one request with the
 * full JSON schema as `response_format` (json_schema, strict). Field by field
 * would need the server to continue a partial assistant message, which
 * OpenAI-compatible servers do not do alike (llama-server and vLLM each have
 * their own prefill switch, Ollama's /v1 none), and would cost five round
 * trips and five prompt evaluations on a server without prefix caching;
 * json_schema output is supported by all of them. What the grammar enforced
 * locally (bounds, citation numbers) the diagnoser checks again anyway.
 *
 * Everything sent is redacted first with the daemon's redactor: the evidence
 * in the prompt was redacted when it was stored, and is redacted again here
 * because this is where it leaves the node.
 */
import { readFileSync } from 'node:fs';
import type { Dispatcher } from 'undici';
import type { SiteBackendConfig } from '../config.js';
import type { Redactor } from '../redact.js';
import type { CompletionBackend, FillRequest, FillResponse } from './llm-diagnoser.js';
import { DIAGNOSIS_SCHEMA, estimateTokens } from './prompt.js';
import { CodedError } from '../errors.js';

/** The site backend as /v1/status shows it under `model`. */
export interface SiteBackendStatus {
  state: 'ready' | 'failed';
  id: string;
  reason: string | null;
  backend: 'site';
  /** The server's base URL. */
  endpoint: string;
  /** Always true: diagnosis prompts, with redacted evidence, are sent to `endpoint`. */
  dataLeavesNode: true;
  notice: string;
  /** Requests sent and failed since start. */
  requests: number;
  failures: number;
  lastRequestAt: string | null;
}

/** Options of {@link SiteBackend}. */
export interface SiteBackendOptions {
  config: SiteBackendConfig;
  /** Applied to every text before it is sent. */
  redact: Redactor;
  /** Request timeout when the caller gives no signal, ms. Defaults to 120000. */
  timeoutMs?: number;
}

/** An error answer of the site server. */
export class SiteBackendError extends CodedError {
  /** Stable error code. */
  readonly code = 'SITE_BACKEND_FAILED';
}

interface ChatCompletion {
  choices?: { message?: { content?: unknown }; finish_reason?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown };
}

/** The answer schema for one request, without the evidence list when there is nothing to cite. */
function answerSchema(parts: FillRequest['parts']): Record<string, unknown> {
  const hasRefs = parts.some((p) => typeof p !== 'string' && p.name === 'evidenceRefs');
  const props = DIAGNOSIS_SCHEMA.properties;
  return {
    ...DIAGNOSIS_SCHEMA,
    properties: { ...props, evidenceRefs: { ...props.evidenceRefs, maxItems: hasRefs ? props.evidenceRefs.maxItems : 0 } },
  };
}

/** A {@link CompletionBackend} on an OpenAI-compatible `/v1/chat/completions`. */
export class SiteBackend implements CompletionBackend {
  readonly id: string;
  readonly #o: SiteBackendOptions;
  // undici loads with the first request: a node that never sends pays nothing for it.
  readonly #dispatcher: Promise<{ dispatcher: Dispatcher; request: typeof import('undici').request }>;
  #requests = 0;
  #failures = 0;
  #lastError: string | null = null;
  #lastRequestAt: string | null = null;

  constructor(options: SiteBackendOptions) {
    this.#o = options;
    const u = new URL(options.config.url);
    this.id = `${options.config.model ?? 'default'}@${u.host}`;
    // The CA is read once: a new CA needs a restart, like the kubelet's.
    const ca = options.config.caFile ? readFileSync(options.config.caFile) : null;
    this.#dispatcher = import('undici').then(({ Agent, request }) => ({ dispatcher: new Agent(ca ? { connect: { ca } } : {}), request }));
  }

  /** Token counts are estimated: the server's tokenizer is not here. */
  countTokens(text: string): number {
    return estimateTokens(text);
  }

  async fill(req: FillRequest): Promise<FillResponse> {
    const started = performance.now();
    const maxTokens = req.parts.reduce((n, p) => n + (typeof p === 'string' ? 0 : p.maxTokens), 0) * 2 + 64;
    const body = {
      ...(this.#o.config.model ? { model: this.#o.config.model } : {}),
      messages: [
        { role: 'system', content: this.#o.redact(req.systemPrompt) },
        { role: 'user', content: this.#o.redact(req.userPrompt) },
      ],
      temperature: 0,
      max_tokens: maxTokens,
      stream: false,
      response_format: { type: 'json_schema', json_schema: { name: 'diagnosis', strict: true, schema: answerSchema(req.parts) } },
    };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    // Read at every request, so a rotated token needs no restart.
    if (this.#o.config.tokenFile) headers.authorization = `Bearer ${readFileSync(this.#o.config.tokenFile, 'utf8').trim()}`;
    this.#requests++;
    this.#lastRequestAt = new Date().toISOString();
    try {
      const { dispatcher, request } = await this.#dispatcher;
      const res = await request(`${this.#o.config.url}/chat/completions`, {
        method: 'POST',
        dispatcher,
        headers,
        body: JSON.stringify(body),
        signal: req.signal ?? AbortSignal.timeout(this.#o.timeoutMs ?? 120_000),
      });
      const text = await res.body.text();
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw new SiteBackendError(`site backend answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      }
      let data: ChatCompletion;
      try {
        data = JSON.parse(text) as ChatCompletion;
      } catch {
        throw new SiteBackendError('site backend answered with something that is not JSON');
      }
      const choice = data.choices?.[0];
      const content = typeof choice?.message?.content === 'string' ? choice.message.content : '';
      const cut = choice?.finish_reason === 'length';
      let parsed: Record<string, unknown> = {};
      try {
        const v: unknown = JSON.parse(content);
        if (v && typeof v === 'object' && !Array.isArray(v)) parsed = v as Record<string, unknown>;
      } catch {
        // The diagnoser's own parser decides what to do with it.
      }
      const fields: FillResponse['fields'] = {};
      for (const p of req.parts) {
        if (typeof p === 'string') continue;
        const v = parsed[p.name];
        fields[p.name] = { text: v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v), cut, tokens: 0 };
      }
      const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
      this.#lastError = null;
      return {
        text: content,
        fields,
        tokens: { prompt: n(data.usage?.prompt_tokens), completion: n(data.usage?.completion_tokens) },
        latencyMs: Math.round(performance.now() - started),
      };
    } catch (err) {
      this.#failures++;
      this.#lastError = err instanceof Error ? err.message : String(err);
      throw err;
    }
  }

  /** The `model` part of /v1/status. */
  status(): SiteBackendStatus {
    return {
      state: this.#lastError ? 'failed' : 'ready',
      id: this.id,
      reason: this.#lastError,
      backend: 'site',
      endpoint: this.#o.config.url,
      dataLeavesNode: true,
      notice: `diagnoses are made by the site backend ${this.#o.config.url}: each diagnosis prompt, with its redacted evidence, leaves this node`,
      requests: this.#requests,
      failures: this.#failures,
      lastRequestAt: this.#lastRequestAt,
    };
  }

  /** Closes the connections. */
  async dispose(): Promise<void> {
    await (await this.#dispatcher).dispatcher.close();
  }
}
