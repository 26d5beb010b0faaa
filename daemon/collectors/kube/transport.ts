/**
 * Reads from and writes to the API server with @kubernetes/client-node's
 * KubeConfig and Node's own HTTPS client, keeping the raw JSON. The generated
 * typed APIs turn times into Date objects and drop fields the client does not
 * know; signals must carry the wire form a bundle holds (microsecond
 * eventTimes, newer fields), so every request is built here from what
 * `KubeConfig.applyToHTTPSOptions` gives: the credentials (token files, exec
 * plugins, client certificates, in-cluster service account), the TLS material
 * and, with a proxy-url, the client's proxy agent.
 *
 * Node's HTTPS client rather than the client's fetch and Watch (undici): the
 * daemon already runs Node's client for the kubelet, and undici's fetch,
 * streams and parser cost ~4 MiB of idle RSS more for the first request and
 * ~0.5 MiB more for every open watch (test/bench/RESULTS.md, "Footprint").
 */
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpStatusError, KubeSourceConfigError, oneLine } from './errors.js';
import { statusMessage, type WatchEvent, type WireList } from './wire.js';

// Not an ES import: that would evaluate node:http's lazy WebSocket export, which loads Node's bundled
// undici (see api/auth/serve.ts). Needed only for an http:// server (insecure-skip-tls-verify).
const http = process.getBuiltinModule('node:http');

/** Query parameters of a list or watch call. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Transport settings. */
export interface KubeTransportOptions {
  /** Limit for one list or write request (headers and body). Defaults to 30000. */
  requestTimeoutMs?: number;
}

/** What a watch call needs besides the path. */
export interface WatchCall {
  query: Query;
  /** Called for every line of the stream, in order. Must not throw. */
  onEvent: (event: WatchEvent) => void;
  /** Called once the server accepted the watch (HTTP 200) and the stream is open. */
  onOpen?: () => void;
  /** Aborts the stream (stop, or an ERROR line that ends it). */
  signal: AbortSignal;
  /** A stream that sends nothing for this long is dropped (the server sends bookmarks and closes at timeoutSeconds). */
  inactivityMs: number;
}

/** A request ready to send: its URL and Node request options with the client's credentials and TLS. */
interface Prepared {
  url: URL;
  options: https.RequestOptions;
}

/** List, watch and write over one KubeConfig. */
export class KubeTransport {
  readonly #kc: KubeConfig;
  readonly #requestTimeoutMs: number;

  constructor(kc: KubeConfig, opts: KubeTransportOptions = {}) {
    if (!kc.getCurrentCluster()) throw new KubeSourceConfigError('the kubeconfig has no current cluster');
    this.#kc = kc;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  /** The API server URL of the current context. */
  get server(): string {
    return this.#kc.getCurrentCluster()?.server ?? '';
  }

  /** GETs a list (or any object) and returns the parsed JSON body. Throws HttpStatusError on non-200. */
  async get<T = WireList>(path: string, query: Query, signal: AbortSignal): Promise<T> {
    const { status, text } = await this.#exchange(await this.#prepare('GET', path, query), undefined, signal);
    if (status !== 200) throw new HttpStatusError(status, path, oneLine(statusMessage(text) ?? text));
    return JSON.parse(text) as T;
  }

  /**
   * Sends `body` as JSON (with `contentType`, a patch type for PATCH) and
   * returns the parsed answer. Throws HttpStatusError on anything but 2xx.
   */
  async send<T = unknown>(method: 'POST' | 'PATCH', path: string, body: unknown, opts: { contentType?: string; signal?: AbortSignal } = {}): Promise<T> {
    const prepared = await this.#prepare(method, path, {}, { 'Content-Type': opts.contentType ?? 'application/json' });
    const { status, text } = await this.#exchange(prepared, JSON.stringify(body), opts.signal);
    if (status < 200 || status > 299) throw new HttpStatusError(status, path, oneLine(statusMessage(text) ?? text), method);
    return JSON.parse(text) as T;
  }

  /**
   * Runs one watch stream until it ends. Resolves when the server closes it
   * (timeoutSeconds, or after an ERROR line) or `signal` aborts; rejects on
   * connection errors, on `inactivityMs` without data (a TimeoutError) and on
   * non-200 answers (HttpStatusError).
   */
  async watch(path: string, call: WatchCall): Promise<void> {
    const { url, options } = await this.#prepare('GET', path, { ...call.query, watch: true });
    if (call.signal.aborted) return;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        call.signal.removeEventListener('abort', onAbort);
        req.destroy();
        if (!err || call.signal.aborted) resolve();
        else reject(err);
      };
      const onAbort = () => finish();
      // Covers the connection and the answer's headers too, as the server's own timeoutSeconds covers the stream.
      const quiet = () => {
        clearTimeout(idle);
        idle = setTimeout(() => finish(new DOMException(`the watch sent nothing for ${call.inactivityMs} ms`, 'TimeoutError')), call.inactivityMs);
      };
      const req = clientFor(url).request(url, options, (res) => {
        if (res.statusCode !== 200) {
          readText(res).then((text) => finish(new HttpStatusError(res.statusCode ?? 0, path, oneLine(statusMessage(text) ?? text))), finish);
          return;
        }
        quiet();
        call.onOpen?.();
        res.on('data', quiet);
        // An abrupt end (connection reset) is an error; a clean end closes the line reader after its last line.
        res.on('error', finish);
        res.on('close', () => {
          if (!res.complete) finish(Object.assign(new Error(`the watch of ${path} was cut off`), { code: 'ECONNRESET' }));
        });
        const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
        lines.on('line', (line) => {
          let event: WatchEvent;
          try {
            event = JSON.parse(line) as WatchEvent;
          } catch {
            return; // A line that is not JSON carries nothing to act on.
          }
          call.onEvent({ type: event.type, object: event.object ?? {} });
        });
        // The reader passes the stream's errors on as its own.
        lines.on('error', finish);
        lines.on('close', () => finish());
      });
      req.on('error', finish);
      call.signal.addEventListener('abort', onAbort, { once: true });
      quiet();
      req.end();
    });
  }

  /** URL and options for one request, with the credentials as of now (token files are re-read as they rotate). */
  async #prepare(method: string, path: string, query: Query, headers: Record<string, string> = {}): Promise<Prepared> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const options: https.RequestOptions = { method, headers: { Accept: 'application/json', ...headers } };
    await this.#kc.applyToHTTPSOptions(options);
    // The client's agent only for a proxy: Node's global agent pools connections by TLS material
    // (CA, client certificate), so a rotated certificate gets a new connection; the client's agent
    // keeps the material it was created with.
    if (!this.#kc.getCurrentCluster()?.proxyUrl) delete options.agent;
    return { url, options };
  }

  /** One request and its whole answer, limited to requestTimeoutMs. */
  #exchange({ url, options }: Prepared, body: string | undefined, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
    const timeout = AbortSignal.timeout(this.#requestTimeoutMs);
    const limit = signal ? AbortSignal.any([signal, timeout]) : timeout;
    return new Promise((resolve, reject) => {
      const req = clientFor(url).request(url, { ...options, signal: limit }, (res) => {
        readText(res).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}

/** Node's client for the URL's scheme. */
function clientFor(url: URL): Pick<typeof https, 'request'> {
  return url.protocol === 'http:' ? http : https;
}

/** The whole body of an answer as text. */
function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
