/**
 * The kubelet source: polls this node's kubelet over HTTPS for
 * `GET /stats/summary`, `GET /pods` and `GET /healthz`.
 *
 * Talks to the kubelet directly (never through the API server's proxy, never
 * needing `nodes/proxy`): `/stats/summary` needs RBAC `get nodes/stats`;
 * `/pods` and `/healthz` need `get nodes/pods` and `get nodes/healthz`, the
 * fine-grained kubelet subresources (Kubernetes ≥ 1.33; older kubelets only
 * authorise those two paths with `nodes/proxy`, so there leave `emitPods` off
 * and let the API-server source provide pods; a forbidden /healthz is skipped,
 * shown in status detail and asked again every 10 minutes). The bearer token file is
 * re-read whenever it changes (projected tokens rotate hourly) and the CA file
 * likewise; TLS verification is on unless explicitly switched off.
 *
 * Outside a pod (kubeconfig mode) there is no service-account token: when the
 * token file does not exist, the kubeconfig user's credentials are used — its
 * bearer token or its client certificate — and the kubeconfig cluster's CA when
 * the kubelet CA file does not exist either.
 */
import { readFile, stat } from 'node:fs/promises';
import https from 'node:https';
import { type Logger, pino } from 'pino';
import type { KubePod, StatsSummary } from '../core/kube.js';
import type { Collector, Signal, SignalSink, SourceStatus } from '../core/types.js';
import { Backoff, type BackoffOptions } from '../core/runtime/backoff.js';
import { type Clock, isoAt, systemClock } from '../core/runtime/clock.js';
import { SourceHealth } from '../core/runtime/health.js';
import { errCode } from './errno.js';
import {
  CredentialFileError,
  type DescribedFailure,
  HttpStatusError,
  KubeSourceConfigError,
  isTimeout,
  networkFailureCode,
  oneLine,
  tlsFailureCode,
} from './kube/errors.js';
import { kubeClient } from './kube/client.js';
import { statusMessage, type WireList, withTypeMeta } from './kube/wire.js';

/** Where a pod finds its service-account credentials. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The kubelet URL for a node IP (`https://<ip>:10250`, IPv6 in brackets). */
export function kubeletUrlFor(nodeIp: string, port = 10250): string {
  return `https://${nodeIp.includes(':') ? `[${nodeIp}]` : nodeIp}:${port}`;
}

/** Options of the kubelet collector. */
export interface KubeletCollectorOptions {
  /** Base URL of this node's kubelet. Required; the daemon derives it from $NODE_IP (see kubeletUrlFor). */
  kubeletUrl: string;
  /** Bearer token file, re-read when it changes. Defaults to the service-account token. */
  tokenFile?: string;
  /** CA bundle that signed the kubelet's serving certificate. Defaults to the service-account ca.crt. */
  caFile?: string;
  /**
   * Credentials used when `tokenFile` does not exist (kubeconfig mode), read on
   * first need and again after the kubelet answers 401. Defaults to none (a
   * missing token file is an error).
   */
  fallbackCredentials?: () => Promise<KubeletCredentials>;
  /** Skip TLS verification of the kubelet (a warning is logged at every start). Defaults to false. */
  insecureSkipTlsVerify?: boolean;
  /** Time between polls. Defaults to 30000. */
  intervalMs?: number;
  /** Limit for one request (connect, headers and body). Defaults to 10000. */
  requestTimeoutMs?: number;
  /** Emit `pods` from the kubelet's /pods (only when the API-server source does not provide pods). Defaults to false. */
  emitPods?: boolean;
  /** Retry delays after a failed poll. Defaults to 1 s doubling to 120 s with 20 % jitter. */
  backoff?: BackoffOptions;
  /** Largest response accepted, bytes. Defaults to 64 MiB. */
  maxBodyBytes?: number;
  /** No answered poll for this long makes the source stale. Defaults to max(3 × intervalMs, 60000). */
  staleAfterMs?: number;
  /** Time source for waits and signal times. Defaults to the system clock. */
  clock?: Clock;
  /** Logger. Defaults to a pino logger named `kubelet`. */
  logger?: Logger;
}

/** Credentials for the kubelet from somewhere else than the service-account files. */
export interface KubeletCredentials {
  /** Bearer token. */
  token?: string;
  /** Client certificate (PEM), with `key`. */
  cert?: string | Buffer;
  /** Private key of `cert` (PEM). */
  key?: string | Buffer;
  /** CA bundle, used when the kubelet CA file does not exist. */
  ca?: string | Buffer;
  /** Where they come from, for status and messages: `kubeconfig /path (user nodesage)`. */
  source: string;
}

/**
 * The current user's credentials of a kubeconfig, as @kubernetes/client-node
 * applies them to a request (token, token file, exec plugin, client
 * certificate), and its cluster's CA.
 */
export async function kubeconfigKubeletCredentials(path: string): Promise<KubeletCredentials> {
  // Loaded only here: host mode never needs the Kubernetes client.
  const { KubeConfig } = await kubeClient();
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const auth = (opts.headers as Record<string, string> | undefined)?.Authorization;
  const creds: KubeletCredentials = { source: `kubeconfig ${path} (user ${kc.getCurrentUser()?.name ?? 'none'})` };
  if (auth?.startsWith('Bearer ')) creds.token = auth.slice(7);
  if (opts.cert && opts.key) {
    creds.cert = opts.cert as string | Buffer;
    creds.key = opts.key as string | Buffer;
  }
  if (opts.ca) creds.ca = opts.ca as string | Buffer;
  return creds;
}

/** A credential file that does not exist (as opposed to one that cannot be read). */
function missing(err: unknown): boolean {
  return err instanceof CredentialFileError && errCode(err.cause) === 'ENOENT';
}

/** The kubelet paths polled, and the RBAC each needs. */
const ENDPOINTS = {
  '/stats/summary': 'get on nodes/stats',
  '/pods': 'get on nodes/pods (kubelet fine-grained authorization, Kubernetes 1.33+; older kubelets want nodes/proxy, which nodesage does not use: turn emitPods off)',
  '/healthz': 'get on nodes/healthz (kubelet fine-grained authorization, Kubernetes 1.33+; older kubelets want nodes/proxy, which nodesage does not use)',
} as const;

type Endpoint = keyof typeof ENDPOINTS;

/** After a 403 on /healthz, ask again this much later (RBAC may have been fixed). */
const HEALTHZ_RECHECK_MS = 10 * 60_000;

interface FileState {
  key: string;
  content: string;
}

/** The kubelet collector (`kubelet`). */
export class KubeletCollector implements Collector {
  readonly name = 'kubelet' as const;
  readonly #url: URL;
  readonly #tokenFile: string;
  readonly #caFile: string;
  readonly #insecure: boolean;
  readonly #interval: number;
  readonly #timeout: number;
  readonly #emitPods: boolean;
  readonly #maxBody: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #health: SourceHealth;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #sink: SignalSink | undefined;
  #token: FileState | undefined;
  #ca: FileState | undefined;
  readonly #fallback: (() => Promise<KubeletCredentials>) | undefined;
  #fallbackCreds: KubeletCredentials | undefined;
  /** What authenticates the requests: the token file, or the fallback's source. */
  #authSource = '';
  #agent: https.Agent | undefined;
  #errors = new Map<Endpoint | 'credentials', DescribedFailure>();
  #polls = 0;
  #failedPolls = 0;
  #consecutiveFailures = 0;
  #tokenReloads = 0;
  #lastHealthz: string | null = null;
  /** Clock time before which /healthz is not asked again after a 403. */
  #healthzForbiddenUntil = 0;
  #healthzForbiddenLogged = false;

  constructor(opts: KubeletCollectorOptions) {
    let url: URL;
    try {
      url = new URL(opts.kubeletUrl);
    } catch {
      throw new KubeSourceConfigError(`kubeletUrl ${JSON.stringify(opts.kubeletUrl)} is not a URL`);
    }
    if (url.protocol !== 'https:') throw new KubeSourceConfigError(`kubeletUrl must be https:// (got ${url.protocol}); the read-only port is not used`);
    this.#url = url;
    this.#tokenFile = opts.tokenFile ?? `${SERVICE_ACCOUNT_DIR}/token`;
    this.#caFile = opts.caFile ?? `${SERVICE_ACCOUNT_DIR}/ca.crt`;
    this.#insecure = opts.insecureSkipTlsVerify ?? false;
    this.#fallback = opts.fallbackCredentials;
    this.#interval = opts.intervalMs ?? 30_000;
    this.#timeout = opts.requestTimeoutMs ?? 10_000;
    this.#emitPods = opts.emitPods ?? false;
    this.#maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? pino({ name: 'kubelet' });
    this.#backoff = new Backoff({ initialMs: 1000, maxMs: 120_000, jitter: 0.2, clock: this.#clock, ...opts.backoff });
    this.#health = new SourceHealth({ name: 'kubelet', clock: this.#clock, staleAfterMs: opts.staleAfterMs ?? Math.max(3 * this.#interval, 60_000) });
  }

  /** Polls once, then keeps polling in the background. */
  async start(sink: SignalSink): Promise<void> {
    if (this.#loop) return;
    this.#sink = sink;
    this.#abort = new AbortController();
    if (this.#insecure) {
      this.#log.warn({ kubeletUrl: this.#url.origin }, 'TLS verification of the kubelet is OFF (insecureSkipTlsVerify): anyone on the path can impersonate it');
    }
    const first = this.#pollOnce();
    this.#loop = first.then((ok) => this.#run(ok));
    await first;
  }

  /** Stops polling and closes connections. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.#loop = undefined;
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  /** healthy after a clean poll, stale while transient errors last, failing on errors that need a fix (RBAC, token, CA). */
  status(): SourceStatus {
    const detail: Record<string, string | number | boolean> = {
      url: this.#url.origin,
      polls: this.#polls,
      failedPolls: this.#failedPolls,
      consecutiveFailures: this.#consecutiveFailures,
      tokenReloads: this.#tokenReloads,
      insecureSkipTlsVerify: this.#insecure,
      emitPods: this.#emitPods,
    };
    if (this.#authSource !== '') detail.credentials = this.#authSource;
    if (this.#healthzForbiddenUntil > 0) detail.healthz = `forbidden: needs RBAC get on nodes/healthz`;
    else if (this.#lastHealthz !== null) detail.healthz = oneLine(this.#lastHealthz, 120);
    return this.#health.status(detail);
  }

  async #run(lastOk: boolean): Promise<void> {
    let ok = lastOk;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#clock.sleep(ok ? this.#interval : this.#backoff.next(), signal);
      if (signal.aborted) break;
      if (!ok) this.#health.main.restarted();
      ok = await this.#pollOnce();
    }
  }

  /** One round over the endpoints; true when all answered. */
  async #pollOnce(): Promise<boolean> {
    this.#polls++;
    // Filled during the round and swapped in at its end, so status never shows a half-finished round.
    const errors = new Map<Endpoint | 'credentials', DescribedFailure>();
    let token: string | null;
    try {
      token = await this.#credentials();
    } catch (err) {
      errors.set('credentials', this.#describe(err, '/stats/summary'));
      return this.#roundDone(errors);
    }
    const paths: Endpoint[] = ['/stats/summary'];
    if (this.#emitPods) paths.push('/pods');
    const now = this.#clock.now();
    if (this.#healthzForbiddenUntil <= now) paths.push('/healthz');
    const results = await Promise.allSettled(paths.map((p) => this.#get(p, token)));
    const at = isoAt(this.#clock.now());
    const signals: Signal[] = [];
    results.forEach((r, i) => {
      const path = paths[i]!;
      if (r.status === 'rejected') {
        if (path === '/healthz' && r.reason instanceof HttpStatusError && r.reason.status === 403) {
          // Health is a bonus: kubelets before fine-grained authorization only allow /healthz with
          // nodes/proxy, which nodesage never asks for. Stats still flow; look again later.
          this.#healthzForbiddenUntil = now + HEALTHZ_RECHECK_MS;
          this.#lastHealthz = null;
          if (!this.#healthzForbiddenLogged) {
            this.#healthzForbiddenLogged = true;
            this.#log.warn({ kubeletUrl: this.#url.origin }, `kubelet /healthz is forbidden; it needs RBAC ${ENDPOINTS['/healthz']}. Polling stats without it`);
          }
          return;
        }
        errors.set(path, this.#describe(r.reason, path));
        return;
      }
      if (path === '/healthz') {
        this.#healthzForbiddenUntil = 0;
        this.#healthzForbiddenLogged = false;
      }
      const { status, body } = r.value;
      try {
        if (path === '/healthz') {
          // A failing healthz (500 with the failed checks) is a finding about the kubelet, not a source error.
          this.#lastHealthz = body.trim();
          signals.push({ type: 'kubeletHealth', at, ok: status === 200 && body.trim() === 'ok', body: body.trim() });
        } else if (path === '/stats/summary') {
          signals.push({ type: 'statsSummary', at, summary: JSON.parse(body) as StatsSummary });
        } else {
          const list = JSON.parse(body) as WireList;
          const pods = (list.items ?? []).map((p) => withTypeMeta(p, 'v1', 'Pod') as unknown as KubePod);
          signals.push({ type: 'pods', at, pods });
        }
      } catch (err) {
        errors.set(path, { permanent: false, message: `kubelet ${path} sent a body that is not valid JSON: ${oneLine((err as Error).message)}` });
      }
    });
    if (signals.length > 0) this.#emit(signals);
    return this.#roundDone(errors);
  }

  #roundDone(errors: Map<Endpoint | 'credentials', DescribedFailure>): boolean {
    this.#errors = errors;
    const ok = errors.size === 0;
    if (this.#abort.signal.aborted) return ok;
    if (ok) {
      if (this.#consecutiveFailures > 0) this.#log.info({ failedPolls: this.#consecutiveFailures }, 'kubelet answers again');
      this.#consecutiveFailures = 0;
      this.#health.main.ok();
      this.#backoff.succeeded();
    } else {
      const all = [...errors.values()];
      const worst = all.find((e) => e.permanent) ?? all[0]!;
      this.#health.main.fail(worst.message, { transient: !worst.permanent });
      this.#failedPolls++;
      this.#consecutiveFailures++;
      const n = this.#consecutiveFailures;
      if ((n & (n - 1)) === 0) {
        this.#log.warn({ attempt: n, errors: [...this.#errors.values()].map((e) => e.message) }, 'kubelet poll failed; retrying with backoff');
      }
    }
    return ok;
  }

  #emit(signals: Signal[]): void {
    if (this.#abort.signal.aborted) return;
    try {
      this.#health.emit(this.#sink, signals);
    } catch (err) {
      this.#log.error({ err }, 'signal sink threw');
    }
  }

  /**
   * Re-reads the token (and CA) when the file changed; rebuilds the TLS agent
   * when the CA did. Without a token file, takes the fallback credentials (a
   * kubeconfig user's token or client certificate). Returns the bearer token,
   * or null when a client certificate authenticates instead.
   */
  async #credentials(): Promise<string | null> {
    let token: FileState | undefined;
    let fb: KubeletCredentials | undefined;
    try {
      token = await readIfChanged(this.#tokenFile, 'service-account token file', this.#token);
    } catch (err) {
      if (!this.#fallback || !missing(err)) throw err;
      fb = await this.#fallbackCredentials();
      if (!fb.token && !(fb.cert && fb.key)) {
        throw new CredentialFileError(this.#tokenFile, `service-account token file (and ${fb.source} has neither a token nor a client certificate)`, err);
      }
    }
    if (token && this.#token && token.content !== this.#token.content) {
      this.#tokenReloads++;
      this.#log.info({ tokenFile: this.#tokenFile }, 'service-account token changed; using the new one');
    }
    this.#token = token;
    const source = token ? this.#tokenFile : fb!.source;
    if (source !== this.#authSource) {
      if (!token) this.#log.info({ tokenFile: this.#tokenFile, credentials: fb!.source }, 'no service-account token; authenticating to the kubelet with the kubeconfig user');
      this.#authSource = source;
      this.#agent?.destroy();
      this.#agent = undefined;
    }
    let ca: string | Buffer | undefined;
    if (!this.#insecure) {
      try {
        const file = await readIfChanged(this.#caFile, 'kubelet CA file', this.#ca);
        if (this.#ca && file.content !== this.#ca.content) {
          this.#log.info({ caFile: this.#caFile }, 'kubelet CA file changed; reconnecting with the new CA');
          this.#agent?.destroy();
          this.#agent = undefined;
        }
        this.#ca = file;
        ca = file.content;
      } catch (err) {
        const alt = this.#fallback && missing(err) ? (await this.#fallbackCredentials()).ca : undefined;
        if (!alt) throw err;
        ca = alt;
      }
    }
    const client = token ? undefined : fb;
    this.#agent ??= new https.Agent({
      keepAlive: true,
      maxSockets: 4,
      ca: this.#insecure ? undefined : ca,
      rejectUnauthorized: !this.#insecure,
      ...(client?.cert && client.key && !client.token ? { cert: client.cert, key: client.key } : {}),
    });
    return token ? token.content.trim() : (fb!.token ?? null);
  }

  /** The fallback credentials, read once (and again after a 401). */
  async #fallbackCredentials(): Promise<KubeletCredentials> {
    if (!this.#fallbackCreds) this.#fallbackCreds = await this.#fallback!();
    return this.#fallbackCreds;
  }

  #get(path: Endpoint, token: string | null): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.#url);
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeout)]);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        { method: 'GET', agent: this.#agent, headers: { ...(token !== null ? { Authorization: `Bearer ${token}` } : {}), Accept: 'application/json' }, signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.#maxBody) {
              req.destroy(new Error(`response larger than ${this.#maxBody} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status === 200 || (path === '/healthz' && status >= 500 && body.trim() !== '')) resolve({ status, body });
            else reject(new HttpStatusError(status, path, oneLine(statusMessage(body) ?? body)));
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  #describe(err: unknown, path: Endpoint): DescribedFailure {
    const where = `${this.#url.origin}${path}`;
    if (err instanceof CredentialFileError) return { permanent: true, message: err.message };
    if (err instanceof HttpStatusError) {
      if (err.status === 401) {
        // Kubeconfig credentials may have been renewed (exec plugin, rotated certificate): read them again next time.
        const fb = this.#fallbackCreds;
        this.#fallbackCreds = undefined;
        if (!this.#token && fb) {
          return {
            permanent: true,
            message: `the kubelet rejected the credentials of ${fb.source} (401 Unauthorized) on GET ${path}: the kubelet must accept that user's ${fb.token ? 'token (--authentication-token-webhook)' : 'client certificate (--client-ca-file)'}`,
          };
        }
        return {
          permanent: true,
          message: `the kubelet rejected the service-account token (401 Unauthorized) on GET ${path}: check ${this.#tokenFile} and that the kubelet runs with --authentication-token-webhook`,
        };
      }
      if (err.status === 403) {
        return {
          permanent: true,
          message: `the kubelet refused GET ${path} (403 Forbidden): the service account needs RBAC ${ENDPOINTS[path]}${err.serverMessage ? ` — kubelet said: ${err.serverMessage}` : ''}`,
        };
      }
      if (err.status === 404) return { permanent: true, message: `the kubelet has no ${path} (404): is ${this.#url.origin} really the kubelet?` };
      return { permanent: false, message: `the kubelet answered GET ${path} with HTTP ${err.status}${err.serverMessage ? `: ${err.serverMessage}` : ''}` };
    }
    const tls = tlsFailureCode(err);
    if (tls) {
      return {
        permanent: true,
        message: `TLS verification of the kubelet at ${this.#url.origin} failed (${tls}): its serving certificate is not signed by the CA in ${this.#caFile} or does not name this address; enable kubelet serverTLSBootstrap, point the CA file at the kubelet's CA, or set insecureSkipTlsVerify`,
      };
    }
    if (isTimeout(err)) return { permanent: false, message: `the kubelet did not answer GET ${path} within ${this.#timeout} ms` };
    const net = networkFailureCode(err);
    if (net) return { permanent: false, message: `cannot reach the kubelet at ${this.#url.origin} (${net})` };
    return { permanent: false, message: `GET ${where} failed: ${oneLine(err instanceof Error ? err.message : String(err))}` };
  }
}

/** Reads a small file again only when its identity (inode, size, mtime) changed. */
async function readIfChanged(path: string, what: string, prev: FileState | undefined): Promise<FileState> {
  try {
    const st = await stat(path);
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (prev && prev.key === key) return prev;
    const content = await readFile(path, 'utf8');
    return { key, content };
  } catch (err) {
    throw new CredentialFileError(path, what, err);
  }
}
