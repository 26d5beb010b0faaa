/**
 * A loopback HTTPS kubelet for tests: `GET /stats/summary`, `GET /pods` and
 * `GET /healthz` from a bundle's kubelet/ files and pods.json, with bearer-token
 * authentication and the kubelet's own 401/403 answers. Controls change the
 * healthz body, make paths fail or hang, and forbid subresources.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { createTestCa, type KeyPair, type TestCa } from './tls.js';
import { cutOff, listenLoopback } from './loopback.js';

/** Paths the fake serves, with the kubelet authorization subresource of each. */
const SUBRESOURCE = { '/stats/summary': 'stats', '/pods': 'pods', '/healthz': 'healthz' } as const;

/** A kubelet path. */
export type KubeletPath = keyof typeof SUBRESOURCE;

/** One answered request. */
export interface KubeletRequest {
  path: string;
  status: number;
  authorization: string | undefined;
  /** Common name of a verified client certificate, if one was presented. */
  clientCert?: string;
}

/** Options of the fake kubelet. */
export interface FakeKubeletOptions {
  /** Bundle folder: kubelet/stats-summary.json, kubelet/healthz.txt and pods.json are served. */
  bundleDir?: string;
  /** CA that issues the serving certificate. Defaults to a new test CA. */
  ca?: TestCa;
  /** Serving certificate. Defaults to one issued by `ca` for 127.0.0.1. */
  tls?: KeyPair;
  /** Bearer tokens accepted. Defaults to [`fake-kubelet-token`]. */
  tokens?: string[];
  /** CA whose client certificates authenticate too (the kubelet's --client-ca-file). Defaults to none. */
  clientCa?: TestCa;
}

/** The fake kubelet. Create with `FakeKubelet.create()`. */
export class FakeKubelet {
  readonly ca: TestCa;
  readonly requests: KubeletRequest[] = [];
  /** Tokens accepted; tests may replace them to simulate rotation. */
  tokens: Set<string>;
  readonly #server: https.Server;
  #summary: unknown = { node: { nodeName: 'unknown' }, pods: [] };
  #pods: { items?: unknown[] } = { items: [] };
  #healthz = { status: 200, body: 'ok' };
  readonly #failures = new Map<KubeletPath, { status: number; body: string }>();
  readonly #forbidden = new Set<string>();
  #hangMs = 0;
  #port = 0;
  #listening = false;

  private constructor(opts: FakeKubeletOptions, ca: TestCa, tls: KeyPair) {
    this.ca = ca;
    this.tokens = new Set(opts.tokens ?? ['fake-kubelet-token']);
    // Like the kubelet: a client certificate is asked for but optional (a bearer token works without one).
    this.#server = https.createServer(
      { cert: tls.certPem, key: tls.keyPem, ...(opts.clientCa ? { ca: opts.clientCa.certPem, requestCert: true, rejectUnauthorized: false } : {}) },
      (req, res) => this.#handle(req, res),
    );
    if (opts.bundleDir) {
      const dir = opts.bundleDir;
      this.#summary = JSON.parse(readFileSync(join(dir, 'kubelet', 'stats-summary.json'), 'utf8'));
      this.#pods = JSON.parse(readFileSync(join(dir, 'pods.json'), 'utf8'));
      const body = readFileSync(join(dir, 'kubelet', 'healthz.txt'), 'utf8').trim();
      this.#healthz = { status: body === 'ok' ? 200 : 500, body };
    }
  }

  /** Creates the kubelet and starts listening on a free loopback port. */
  static async create(opts: FakeKubeletOptions = {}): Promise<FakeKubelet> {
    const ca = opts.ca ?? createTestCa('fake-kubelet-ca');
    const k = new FakeKubelet(opts, ca, opts.tls ?? ca.issue());
    await k.start();
    return k;
  }

  /** `https://127.0.0.1:<port>`. */
  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** Starts (or restarts on the same port). */
  async start(): Promise<void> {
    if (this.#listening) return;
    this.#port = await listenLoopback(this.#server, this.#port);
    this.#listening = true;
  }

  /** Stops listening and cuts connections (kubelet down). */
  async stop(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    await cutOff(this.#server);
  }

  /** Sets the /healthz answer; a body other than "ok" is served with 500, like the kubelet. */
  setHealthz(body: string, status = body === 'ok' ? 200 : 500): void {
    this.#healthz = { status, body };
  }

  /** Replaces the stats summary. */
  setStatsSummary(summary: unknown): void {
    this.#summary = summary;
  }

  /** Makes a path answer with an HTTP error (null: serve normally again). */
  fail(path: KubeletPath, status: number | null, body = 'Internal Server Error'): void {
    if (status === null) this.#failures.delete(path);
    else this.#failures.set(path, { status, body });
  }

  /** Denies a path as kubelet authorization would (403 naming the subresource). */
  forbid(path: KubeletPath, forbidden = true): void {
    if (forbidden) this.#forbidden.add(path);
    else this.#forbidden.delete(path);
  }

  /** Delays every answer by this long (0: answer at once). */
  hang(ms: number): void {
    this.#hangMs = ms;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'https://fake').pathname;
    const record: KubeletRequest = { path, status: 0, authorization: req.headers.authorization };
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN;
      if (cn) record.clientCert = Array.isArray(cn) ? cn[0] : cn;
    }
    this.requests.push(record);
    const answer = () => {
      if (res.destroyed) return;
      record.status = this.#answer(req, res, path);
    };
    if (this.#hangMs > 0) {
      const t = setTimeout(answer, this.#hangMs);
      res.on('close', () => clearTimeout(t));
    } else answer();
  }

  #answer(req: IncomingMessage, res: ServerResponse, path: string): number {
    const text = (status: number, body: string) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(body);
      return status;
    };
    const auth = req.headers.authorization ?? '';
    // A bearer token is checked when sent (and must be valid); otherwise a verified client certificate authenticates.
    const certOk = auth === '' && (req.socket as TLSSocket).authorized;
    if (!certOk && (!auth.startsWith('Bearer ') || !this.tokens.has(auth.slice(7)))) return text(401, 'Unauthorized');
    if (!(path in SUBRESOURCE)) return text(404, '404 page not found');
    const p = path as KubeletPath;
    if (this.#forbidden.has(p)) {
      return text(403, `Forbidden (user=system:serviceaccount:nodesage:nodesage, verb=get, resource=nodes, subresource=${SUBRESOURCE[p]})`);
    }
    const failure = this.#failures.get(p);
    if (failure) return text(failure.status, failure.body);
    if (p === '/healthz') return text(this.#healthz.status, this.#healthz.body);
    const body =
      p === '/pods'
        ? // The kubelet's PodList items carry no apiVersion/kind, like any list.
          {
            kind: 'PodList',
            apiVersion: 'v1',
            metadata: {},
            items: (this.#pods.items ?? []).map((pod) => {
              const { apiVersion: _a, kind: _k, ...rest } = pod as Record<string, unknown>;
              return rest;
            }),
          }
        : this.#summary;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
    return 200;
  }
}
