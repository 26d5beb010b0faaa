/**
 * Reads from the API server through @kubernetes/client-node, keeping the raw
 * JSON. The generated typed APIs turn times into Date objects and drop fields
 * the client does not know; signals must carry the wire form a bundle holds
 * (microsecond eventTimes, newer fields), so lists go through the client's own
 * request context, authentication (token files, exec plugins, client certs),
 * TLS dispatcher and fetch, and are parsed here; watches use the client's
 * `Watch`, which already hands over each line's raw object. The exporters'
 * writes and the API's access reviews are plain JSON requests the same way,
 * so the daemon never loads the generated API (see client.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { IsomorphicFetchHttpLibrary } from '@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js';
import { type KubeClient, kubeClient } from './client.js';
import { HttpStatusError, KubeSourceConfigError, oneLine } from './errors.js';
import { statusMessage, type WatchEvent, type WireList } from './wire.js';

/** Query parameters of a list or watch call. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Transport settings. */
export interface KubeTransportOptions {
  /** Limit for one list request (headers and body). Defaults to 30000. */
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

/** List and watch over one KubeConfig. */
export class KubeTransport {
  readonly #kc: KubeConfig;
  /** The client's parts, loaded at the first request (see client.ts). */
  #client: Promise<{ parts: KubeClient; http: IsomorphicFetchHttpLibrary }> | undefined;
  readonly #requestTimeoutMs: number;

  constructor(kc: KubeConfig, opts: KubeTransportOptions = {}) {
    if (!kc.getCurrentCluster()) throw new KubeSourceConfigError('the kubeconfig has no current cluster');
    this.#kc = kc;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  #load(): Promise<{ parts: KubeClient; http: IsomorphicFetchHttpLibrary }> {
    this.#client ??= kubeClient().then((parts) => ({ parts, http: new parts.IsomorphicFetchHttpLibrary() }));
    return this.#client;
  }

  /** The API server URL of the current context. */
  get server(): string {
    return this.#kc.getCurrentCluster()?.server ?? '';
  }

  /** GETs a list (or any object) and returns the parsed JSON body. Throws HttpStatusError on non-200. */
  async get<T = WireList>(path: string, query: Query, signal: AbortSignal): Promise<T> {
    const { status, text } = await this.request('GET', path, { query, signal });
    if (status !== 200) throw new HttpStatusError(status, path, oneLine(statusMessage(text) ?? text));
    return JSON.parse(text) as T;
  }

  /**
   * Sends `body` as JSON (with `contentType`, a patch type for PATCH) and
   * returns the parsed answer. Throws HttpStatusError on anything but 2xx.
   */
  async send<T = unknown>(method: 'POST' | 'PATCH', path: string, body: unknown, opts: { contentType?: string; signal?: AbortSignal } = {}): Promise<T> {
    const { status, text } = await this.request(method, path, { body: JSON.stringify(body), contentType: opts.contentType ?? 'application/json', signal: opts.signal });
    if (status < 200 || status > 299) throw new HttpStatusError(status, path, oneLine(statusMessage(text) ?? text), method);
    return JSON.parse(text) as T;
  }

  /** One authenticated request through the client; returns the status and body text. */
  private async request(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    opts: { query?: Query; body?: string; contentType?: string; signal?: AbortSignal | undefined },
  ): Promise<{ status: number; text: string }> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const { parts, http } = await this.#load();
    const ctx = new parts.RequestContext(url.toString(), parts.HttpMethod[method]);
    ctx.setHeaderParam('Accept', 'application/json');
    if (opts.body !== undefined) {
      ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
      ctx.setBody(opts.body);
    }
    await this.#kc.applySecurityAuthentication(ctx);
    const timeout = AbortSignal.timeout(this.#requestTimeoutMs);
    ctx.setSignal(opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout);
    const dispatcher = ctx.getDispatcher();
    try {
      const resp = await http.send(ctx).toPromise();
      return { status: resp.httpStatusCode, text: await resp.body.text() };
    } finally {
      // The client builds a fresh connection pool per request; close it so idle sockets do not pile up.
      if (dispatcher) void dispatcher.close().catch(() => undefined);
    }
  }

  /**
   * Runs one watch stream until it ends. Resolves when the server closes it
   * (timeoutSeconds, or after an ERROR line) or `signal` aborts; rejects on
   * connection errors and non-200 answers (HttpStatusError).
   */
  async watch(path: string, call: WatchCall): Promise<void> {
    const { parts } = await this.#load();
    const w = new parts.Watch(this.#kc);
    // The client's default drops a stream after 30 s without data; quiet resources (one Node's
    // events) are normal, so the stream lives until the server's own timeoutSeconds.
    (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs = call.inactivityMs;
    return new Promise<void>((resolve, reject) => {
      let controller: AbortController | undefined;
      let finished = false;
      const onAbort = () => controller?.abort();
      call.signal.addEventListener('abort', onAbort, { once: true });
      const finish = (err: unknown) => {
        if (finished) return;
        finished = true;
        call.signal.removeEventListener('abort', onAbort);
        if (!err || call.signal.aborted) resolve();
        else reject(toStatusError(err, path));
      };
      w.watch(
        path,
        call.query,
        (type: string, object: unknown) => call.onEvent({ type, object: (object ?? {}) as WatchEvent['object'] }),
        finish,
      ).then(
        (c) => {
          controller = c;
          if (call.signal.aborted) c.abort();
          // The client resolves after a 200 answer, or after it already reported a failure.
          else if (!finished) call.onOpen?.();
        },
        finish,
      );
    });
  }
}

/** The client reports a non-200 watch answer as an Error with `statusCode`; give it our shape. */
function toStatusError(err: unknown, path: string): unknown {
  const status = (err as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number') return new HttpStatusError(status, path, (err as Error).message);
  return err;
}
