/**
 * `nodesage logs mine`: log lines in, one JSON line `{"templateId","template"}`
 * out per input line, in input order.
 *
 * Lines are split at `\n` (a trailing `\r` is dropped), decoded as UTF-8 with
 * invalid bytes replaced by U+FFFD, and mined by one TemplateMiner. Output is
 * held for up to `batchLines` lines and printed with the id and template each
 * line's cluster has at the end of the batch, so that all lines of one input
 * (up to that size) that ended in one cluster print the same id, even when the
 * cluster was merged after the line arrived. `batchLines: 1` prints each line
 * at once with the id it got on arrival.
 */
import { once } from 'node:events';
import { type TemplateCluster, TemplateMiner, type TemplateMinerOptions } from './miner.js';

/** Options of mineStream. */
export interface MineStreamOptions {
  /** Lines held before their results are printed. Defaults to 100000. */
  batchLines: number;
  /**
   * Print what is held once the input has been quiet this long (ms), for
   * following a live log (`kubectl logs -f | nodesage logs mine`). 0 waits for
   * a full batch or the end of input. Defaults to 0.
   */
  idleFlushMs: number;
  /** Options of the miner. Defaults to the miner's defaults with maxClusters 20000. */
  miner: Partial<TemplateMinerOptions>;
  /** Applied to each line before it is mined, so a secret never reaches a printed template (the CLI passes the daemon's redactor). Defaults to no change. */
  redact: (line: string) => string;
}

/** Defaults of MineStreamOptions. */
export const MINE_STREAM_DEFAULTS: Readonly<MineStreamOptions> = Object.freeze({
  batchLines: 100_000,
  idleFlushMs: 0,
  miner: Object.freeze({ maxClusters: 20_000 }),
  redact: (line: string) => line,
});

const NEWLINE = 0x0a;

/**
 * Reads lines from `input` and writes one JSON line per input line to
 * `output`. Resolves when the input ended and everything was written, or
 * early when the reader of `output` went away (EPIPE).
 */
export async function mineStream(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  opts: Partial<MineStreamOptions> = {},
): Promise<void> {
  const o = { ...MINE_STREAM_DEFAULTS, ...opts };
  const batchLines = Math.max(1, Math.floor(o.batchLines));
  const miner = new TemplateMiner({ ...MINE_STREAM_DEFAULTS.miner, ...o.miner });
  const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  const pending: TemplateCluster[] = [];
  let outputError: Error | null = null;
  const onError = (err: Error) => {
    outputError = err;
  };
  output.on('error', onError);

  const print = async (batch: TemplateCluster[]) => {
    let chunk = '';
    for (const c of batch) {
      // A cluster merged since lives on under the older id; an evicted one keeps its last state.
      const live = miner.get(c.id) ?? c;
      chunk += `${JSON.stringify({ templateId: live.id, template: live.template })}\n`;
      if (chunk.length >= 64 * 1024) {
        await write(output, chunk);
        chunk = '';
      }
    }
    if (chunk) await write(output, chunk);
  };
  // Batches print one after the other, in input order, even when an idle flush overlaps.
  let printing: Promise<void> = Promise.resolve();
  const flush = () => {
    if (pending.length > 0) {
      const batch = pending.splice(0);
      printing = printing.then(() => (outputError ? undefined : print(batch)));
    }
    return printing;
  };
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdleFlush = () => {
    if (o.idleFlushMs <= 0) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      flush().catch((err: Error) => {
        outputError ??= err;
      });
    }, o.idleFlushMs);
  };

  const addLine = async (bytes: Uint8Array) => {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    pending.push(miner.addCluster(o.redact(decoder.decode(bytes.subarray(0, end)))));
    if (pending.length >= batchLines) await flush();
  };

  try {
    let rest: Buffer | null = null;
    for await (const piece of input as AsyncIterable<Buffer | string>) {
      if (outputError) break;
      let buf: Buffer = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
      if (rest) {
        buf = Buffer.concat([rest, buf]);
        rest = null;
      }
      let start = 0;
      for (let nl = buf.indexOf(NEWLINE, start); nl >= 0; nl = buf.indexOf(NEWLINE, start)) {
        await addLine(buf.subarray(start, nl));
        start = nl + 1;
      }
      if (start < buf.length) rest = Buffer.from(buf.subarray(start));
      armIdleFlush();
    }
    if (rest && !outputError) await addLine(rest);
    if (!outputError) await flush();
  } catch (err) {
    if (!isBrokenPipe(err)) throw err;
  } finally {
    clearTimeout(idleTimer);
    output.removeListener('error', onError);
  }
  if (outputError && !isBrokenPipe(outputError)) throw outputError;
}

async function write(output: NodeJS.WritableStream, chunk: string): Promise<void> {
  if (output.write(chunk)) return;
  await Promise.race([once(output, 'drain'), once(output, 'error').then(([err]) => Promise.reject(err))]);
}

function isBrokenPipe(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EPIPE';
}
