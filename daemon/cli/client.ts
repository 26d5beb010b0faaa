/**
 * A small HTTP client for the CLI: talks to the daemon on its listen address
 * (TCP or unix socket), with JSON errors turned into readable messages.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { type Config, type Listen, localSocketPath } from '../config.js';
import { CodedError } from '../errors.js';

// Not an ES import of node:http: that evaluates its lazy WebSocket getters, which load Node's
// bundled undici (~13 MiB resident); the daemon process imports this module too.
const { request } = process.getBuiltinModule('node:http');

/** Where the daemon answers, and the bearer token to send there (none over the node-local socket). */
export type DaemonTarget = Listen & { token?: string };

/**
 * How the CLI reaches the daemon: its node-local socket under the data folder
 * when it exists and this user may use it (no token needed), unless
 * `--listen` was given; otherwise the listen address with the token from
 * `--token-file` (a file holding the token itself, such as a service-account
 * token) or NODESAGE_TOKEN.
 */
export function daemonTarget(config: Readonly<Config>, opts: { listenFlag?: boolean; tokenFile?: string } = {}): DaemonTarget {
  const socket = localSocketPath(config);
  if (!opts.listenFlag && config.auth.socket) {
    try {
      if (statSync(socket).isSocket()) {
        accessSync(socket, constants.R_OK | constants.W_OK);
        return { kind: 'unix', path: socket };
      }
    } catch {
      // no socket here, or not ours to use: fall back to the listen address
    }
  }
  let token = config.clientToken ?? undefined;
  if (opts.tokenFile) {
    try {
      token = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new ClientError(`cannot read --token-file ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'TOKEN_FILE');
    }
  }
  return token ? { ...config.listen, token } : { ...config.listen };
}

/** The daemon could not be reached or answered with an error. */
export class ClientError extends CodedError {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Options of one request. */
export interface RequestOptions {
  method?: 'GET' | 'POST';
  body?: unknown;
  /** Extra request headers (e.g. `accept: text/event-stream`). */
  headers?: Record<string, string>;
  /** Called with each chunk of the body (streaming); the promise then resolves with ''. */
  onChunk?: (chunk: string) => void;
  /** Milliseconds. Defaults to 30000. */
  timeoutMs?: number;
}

/** Sends one request to the daemon and returns the body text. */
export function callDaemon(listen: DaemonTarget, path: string, opts: RequestOptions = {}): Promise<string> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const target =
    listen.kind === 'unix'
      ? { socketPath: listen.path }
      : { host: listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host, port: listen.port };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target,
        path,
        method: opts.method ?? 'GET',
        headers: { ...opts.headers, ...(listen.token ? { authorization: `Bearer ${listen.token}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        res.setEncoding('utf8');
        let body = '';
        const ok = (res.statusCode ?? 500) < 400;
        res.on('data', (c: string) => {
          if (ok && opts.onChunk) opts.onChunk(c);
          else body += c;
        });
        res.on('end', () => {
          if (ok) return resolve(body);
          let msg = body;
          let code = 'HTTP_ERROR';
          try {
            const e = JSON.parse(body) as { error?: { code?: string; message?: string } };
            msg = e.error?.message ?? body;
            code = e.error?.code ?? code;
          } catch {
            // not JSON: keep the raw body
          }
          const status = res.statusCode ?? 500;
          const hint = status === 401 ? ' (give a token with --token-file or NODESAGE_TOKEN, or run on the node where the socket is)' : '';
          reject(new ClientError(status >= 500 ? `the daemon failed (${status}): ${msg}` : `${msg}${hint}`, code, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new ClientError('the daemon did not answer in time', 'TIMEOUT')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof ClientError) return reject(err);
      const where = listen.kind === 'unix' ? `unix:${listen.path}` : `${target.host}:${listen.port}`;
      reject(new ClientError(`cannot reach the nodesage daemon at ${where} (${err.code ?? err.message}); is it running? (set --url or NODESAGE_URL)`, 'UNREACHABLE'));
    });
    if (payload) req.write(payload);
    req.end();
  });
}
