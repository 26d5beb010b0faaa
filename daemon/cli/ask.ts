/**
 * `nodesage ask "question"`: asks the daemon and prints the answer as it is
 * generated (server-sent events from `POST /v1/ask`), then what it cites;
 * `--json` prints the JSON body instead.
 */
import type { AskSource } from '../ask/answer.js';
import type { AskResult } from '../ask/service.js';
import { sseParser } from '../api/web/sse.js';
import { ClientError, type DaemonTarget, callDaemon } from './client.js';

/** Options of {@link runAsk}. */
export interface AskCliOptions {
  since?: string;
  json?: boolean;
  /** Milliseconds without any byte from the daemon before giving up. Defaults to 600000. */
  timeoutMs?: number;
  /** Extra request headers (the kubectl plugin's bearer token). Defaults to none. */
  headers?: Record<string, string>;
}

/** The lines printed after an answer: the sources it cites (or, when it cites none, what it was given). */
export function formatSources(result: Pick<AskResult, 'citations' | 'sources' | 'diagnoser' | 'latencyMs' | 'note' | 'finishReason'>): string {
  const cited = new Set([...result.citations.findings, ...result.citations.runbooks]);
  const citedSources = result.sources.filter((s) => cited.has(s.id));
  const line = (s: AskSource) =>
    s.kind === 'finding' ? `  [${s.ref}] finding ${s.id}  ${s.severity ?? ''} ${s.status ?? ''}  ${s.title}` : `  [${s.ref}] runbook ${s.id}  ${s.title}`;
  const out: string[] = [''];
  if (citedSources.length > 0) out.push('Cited:', ...citedSources.map(line));
  else if (result.sources.length > 0) out.push('Not cited, but given as context:', ...result.sources.map(line));
  else out.push('Nothing on this node matched the question.');
  if (result.finishReason === 'length') out.push('(the answer was cut at the token limit)');
  if (result.finishReason === 'timeout') out.push('(the answer was cut at the time limit)');
  out.push(`(${result.diagnoser}${result.note ? `: ${result.note}` : ''}, ${(result.latencyMs / 1000).toFixed(1)} s)`);
  return `${out.join('\n')}\n`;
}

/** Asks the daemon at `listen`; writes the answer to `out`. Rejects with a ClientError on failure. */
export async function runAsk(listen: DaemonTarget, question: string, opts: AskCliOptions, out: NodeJS.WritableStream): Promise<void> {
  const body = { question, ...(opts.since ? { since: opts.since } : {}) };
  const timeoutMs = opts.timeoutMs ?? 600_000;
  if (opts.json) {
    const text = await callDaemon(listen, '/v1/ask', { method: 'POST', body, timeoutMs, headers: { ...opts.headers } });
    out.write(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
    return;
  }
  let done: AskResult | null = null;
  let failure: ClientError | null = null;
  let endsWithNewline = true;
  const push = sseParser((event, data) => {
    const v = JSON.parse(data) as Record<string, unknown>;
    if (event === 'token') {
      const text = String(v.text ?? '');
      if (text) {
        out.write(text);
        endsWithNewline = text.endsWith('\n');
      }
    } else if (event === 'done') {
      done = v as unknown as AskResult;
    } else if (event === 'error') {
      const e = (v.error ?? {}) as { code?: string; message?: string };
      failure = new ClientError(e.message ?? 'the answer failed', e.code ?? 'INTERNAL');
    }
  });
  await callDaemon(listen, '/v1/ask', { method: 'POST', body, headers: { ...opts.headers, accept: 'text/event-stream' }, onChunk: push, timeoutMs });
  if (!endsWithNewline) out.write('\n');
  if (failure) throw failure;
  if (!done) throw new ClientError('the daemon closed the stream before the answer was complete', 'INCOMPLETE');
  out.write(formatSources(done));
}
