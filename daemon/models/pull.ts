/**
 * `nodesage model pull`: the only part of nodesage that downloads anything,
 * and only when an operator runs it. The file streams to `<file>.partial`; an
 * interrupted transfer continues from where it stopped with an HTTP range
 * request (in the same run after a dropped connection, or in the next run);
 * the complete file is checked (GGUF magic, sha256) and only then renamed
 * into place, so the daemon never sees half a model.
 */
import { createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Dispatcher, EnvHttpProxyAgent, interceptors, request } from 'undici';
import { sha256Of, writeSidecar } from './digest.js';
import { DigestMismatchError, ModelInputError, PullHttpError } from './errors.js';

/** Proxy settings for pulls (from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read by config.ts). */
export interface ProxySettings {
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
}

/** Options of {@link pullFile}. */
export interface PullOptions {
  url: string;
  /** Final path of the model file. */
  dest: string;
  /** Expected sha256; a different file is deleted. Defaults to none (the digest is recorded, not checked). */
  sha256?: string | null;
  /** Proxy settings. Defaults to none (direct connections). */
  proxy?: ProxySettings;
  /** Attempts after a dropped connection or a 5xx. Defaults to 5. */
  retries?: number;
  /** Wait before a retry, doubled each time. Defaults to 1000 ms. */
  retryDelayMs?: number;
  /** Called as bytes arrive. */
  onProgress?: (received: number, total: number | null) => void;
  /** Called with one line per notable event (resume, retry). */
  onNote?: (line: string) => void;
}

/** What {@link pullFile} did. */
export interface PullResult {
  path: string;
  sha256: string;
  bytes: number;
  /** Range requests that continued a partial file. */
  resumed: number;
  /** True when the digest was checked against an expected one. */
  verified: boolean;
}

/** The dispatcher for pulls: the proxy from the settings, following redirects (Hugging Face redirects to its CDN). */
export function pullDispatcher(proxy: ProxySettings = {}): Dispatcher {
  const agent = new EnvHttpProxyAgent({
    // Empty strings turn the environment lookup off: config.ts is the only reader of process.env.
    httpProxy: proxy.httpProxy ?? '',
    httpsProxy: proxy.httpsProxy ?? proxy.httpProxy ?? '',
    noProxy: proxy.noProxy ?? '',
  });
  return agent.compose(interceptors.redirect({ maxRedirections: 5 }));
}

const RETRY_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

/** Total length from `Content-Range: bytes a-b/total`, or null. */
function rangeTotal(header: string | string[] | undefined): { start: number; total: number | null } | null {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(header ?? ''));
  return m ? { start: Number(m[1]), total: m[2] === '*' ? null : Number(m[2]) } : null;
}

async function hasGgufMagic(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 0);
    return buf.toString('latin1') === 'GGUF';
  } finally {
    await fh.close();
  }
}

/** Downloads `url` to `dest` (see the module comment). Throws {@link DigestMismatchError}, {@link PullHttpError}. */
export async function pullFile(o: PullOptions): Promise<PullResult> {
  const partial = `${o.dest}.partial`;
  const dispatcher = pullDispatcher(o.proxy);
  const retries = o.retries ?? 5;
  let delay = o.retryDelayMs ?? 1000;
  let resumed = 0;
  let total: number | null = null;
  try {
    for (let attempt = 0; ; attempt++) {
      const have = sizeOf(partial);
      if (total !== null && have === total) break;
      try {
        const res: Dispatcher.ResponseData = await request(o.url, { dispatcher, method: 'GET', headers: have > 0 ? { range: `bytes=${have}-` } : {} });
        let append = false;
        if (res.statusCode === 206) {
          const r = rangeTotal(res.headers['content-range']);
          if (!r || r.start !== have) {
            await res.body.dump();
            throw new PullHttpError(o.url, 206);
          }
          total = r.total;
          append = true;
          resumed++;
          o.onNote?.(`resuming at ${have} bytes${total ? ` of ${total}` : ''}`);
        } else if (res.statusCode === 200) {
          const len: number = Number(res.headers['content-length']);
          total = Number.isFinite(len) && len > 0 ? len : null;
          if (have > 0) o.onNote?.('the server does not resume transfers; starting again');
        } else if (res.statusCode === 416 && have > 0) {
          // The partial already holds everything the server has: check it.
          await res.body.dump();
          total = rangeTotal(String(res.headers['content-range'] ?? '').replace('*', '0-0'))?.total ?? have;
          break;
        } else {
          await res.body.dump();
          const err = new PullHttpError(o.url, res.statusCode);
          if (RETRY_STATUS.has(res.statusCode) && attempt < retries) throw Object.assign(err, { retry: true });
          throw err;
        }
        let received = append ? have : 0;
        const progress = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            received += chunk.length;
            o.onProgress?.(received, total);
            cb(null, chunk);
          },
        });
        await pipeline(res.body, progress, createWriteStream(partial, { flags: append ? 'a' : 'w' }));
        if (total === null || sizeOf(partial) === total) break;
        throw new Error(`connection ended at ${sizeOf(partial)} of ${total} bytes`);
      } catch (err) {
        const retryable = !(err instanceof PullHttpError) || (err as { retry?: boolean }).retry === true;
        if (!retryable || attempt >= retries) throw err;
        o.onNote?.(`transfer interrupted (${err instanceof Error ? err.message : String(err)}); retrying with a range request`);
        await sleep(delay);
        delay *= 2;
      }
    }
  } finally {
    await dispatcher.close().catch(() => undefined);
  }

  if (!(await hasGgufMagic(partial))) {
    rmSync(partial, { force: true });
    throw new ModelInputError(`${o.url} is not a GGUF file (a proxy or mirror error page?); the partial file was deleted`);
  }
  const sha256 = await sha256Of(partial);
  const expected = o.sha256?.trim().toLowerCase() ?? null;
  if (expected && expected !== sha256) {
    rmSync(partial, { force: true });
    throw new DigestMismatchError(o.dest, expected, sha256, 'the partial file was deleted');
  }
  renameSync(partial, o.dest);
  writeSidecar(o.dest, sha256);
  return { path: o.dest, sha256, bytes: sizeOf(o.dest), resumed, verified: expected !== null };
}
