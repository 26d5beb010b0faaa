/**
 * The HTTP servers behind the fastify app: the configured listener and the
 * node-local unix socket share one handler (so every hook applies to both)
 * and the same limits.
 *
 * The headers and request timeouts are kept per connection, by a timer that
 * exists only while that connection waits for a request: Node's own check
 * runs every `connectionsCheckingInterval` on every server whether or not a
 * connection is open, and those wakeups (two servers, at the quarter of the
 * headers timeout they needed to be timely) were a large part of an idle
 * node's CPU time. Node's check stays, once a minute, as a backstop.
 */
import { chmodSync, lstatSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, join } from 'node:path';

// Not `import ... from 'node:http'`: an ES import of node:http evaluates its lazy WebSocket/
// EventSource getters, which load Node's bundled undici (~13 MiB resident) that nothing here uses.
const { STATUS_CODES, createServer } = process.getBuiltinModule('node:http');

/** Connection limits. */
export interface ServingLimits {
  /** Milliseconds to receive the request headers. Defaults to 10000. */
  headersTimeoutMs?: number;
  /** Milliseconds to receive the whole request, body included. Defaults to 20000. */
  requestTimeoutMs?: number;
  /** Open connections per listener at most. Defaults to 256. */
  maxConnections?: number;
}

/**
 * Answers requests Node cannot parse (malformed, headers too large, too slow)
 * in the API's error shape, then closes the connection, as Node would.
 */
export function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'the request headers are larger than 16 KiB']
        : [400, 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** Node's own timeout check, kept as a backstop behind the per-connection deadlines: once a minute. */
const NODE_CHECK_INTERVAL_MS = 60_000;
/** How long an idle keep-alive connection stays open, ms. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Where one connection is in its request cycle. */
interface ConnectionState {
  /** The deadline timer of the request being received, if one is. */
  timer: NodeJS.Timeout | undefined;
  /** Requests received whose responses have not finished (pipelining can make it more than one). */
  inFlight: number;
  /**
   * The latest the request being received can have begun (ms since the epoch):
   * when the connection opened, or the keep-alive timeout after the previous
   * response finished. Its deadlines count from here.
   */
  start: number;
}

/** Owns the servers; hand `factory` to fastify's `serverFactory` and {@link clientError} to its `clientErrorHandler`. */
export class ApiServing {
  readonly #limits: Required<ServingLimits>;
  readonly #local = new WeakSet<Socket>();
  #handler: http.RequestListener | undefined;
  #socketServer: http.Server | undefined;
  #socketPath: string | undefined;

  constructor(limits: ServingLimits = {}) {
    const requestTimeoutMs = limits.requestTimeoutMs ?? 20_000;
    this.#limits = {
      requestTimeoutMs,
      // Node refuses a headers timeout above the request timeout.
      headersTimeoutMs: Math.min(limits.headersTimeoutMs ?? 10_000, requestTimeoutMs),
      maxConnections: limits.maxConnections ?? 256,
    };
  }

  /** fastify `serverFactory`: a server with the limits set. */
  readonly factory = (handler: http.RequestListener): http.Server => {
    this.#handler = handler;
    return this.#create(handler);
  };

  #create(handler: http.RequestListener): http.Server {
    const { headersTimeoutMs, requestTimeoutMs, maxConnections } = this.#limits;
    const server = createServer(
      {
        headersTimeout: headersTimeoutMs,
        requestTimeout: requestTimeoutMs,
        connectionsCheckingInterval: NODE_CHECK_INTERVAL_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        // Without a Host header Node answers 400 with no body; the API answers it like any request instead.
        requireHostHeader: false,
      },
    );
    server.maxConnections = maxConnections;
    // Before the handler, so a request's deadline is set before anything answers it.
    this.#enforceDeadlines(server);
    server.on('request', handler);
    return server;
  }

  /**
   * Closes a connection (408, through the server's client-error handler) when
   * a request's headers are not in within the headers timeout, counted from
   * when the connection opened or its previous response finished (plus the
   * keep-alive timeout, within which the next request may begin), or its body
   * is not in within the request timeout, counted from the same start.
   */
  #enforceDeadlines(server: http.Server): void {
    const { headersTimeoutMs, requestTimeoutMs } = this.#limits;
    const states = new WeakMap<Socket, ConnectionState>();
    const timedOut = (socket: Socket) => {
      if (socket.destroyed) return;
      const err: NodeJS.ErrnoException = new Error('the request did not arrive in time');
      err.code = 'ERR_HTTP_REQUEST_TIMEOUT';
      server.emit('clientError', err, socket);
    };
    const arm = (socket: Socket, state: ConnectionState, ms: number, expired: () => boolean) => {
      clearTimeout(state.timer);
      state.timer = setTimeout(() => {
        state.timer = undefined;
        if (expired()) timedOut(socket);
      }, ms);
      state.timer.unref();
    };
    const awaitHeaders = (socket: Socket, state: ConnectionState, graceMs: number) => {
      state.start = Date.now() + graceMs;
      arm(socket, state, graceMs + headersTimeoutMs, () => state.inFlight === 0);
    };
    server.on('connection', (socket: Socket) => {
      const state: ConnectionState = { timer: undefined, inFlight: 0, start: 0 };
      states.set(socket, state);
      awaitHeaders(socket, state, 0);
      socket.once('close', () => clearTimeout(state.timer));
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket as Socket;
      const state = states.get(socket);
      if (!state) return;
      state.inFlight++;
      // The headers are in; the body (if any) must follow by the request timeout.
      arm(socket, state, Math.max(0, state.start + requestTimeoutMs - Date.now()), () => !req.complete);
      const done = () => {
        state.inFlight--;
        if (state.inFlight > 0 || socket.destroyed) return;
        // The next request on this connection may begin any time within the keep-alive timeout.
        awaitHeaders(socket, state, KEEP_ALIVE_TIMEOUT_MS);
      };
      res.once('close', done);
    });
  }

  /** True for connections that came in over the node-local socket. */
  isLocal(socket: Socket): boolean {
    return this.#local.has(socket);
  }

  /**
   * Serves the same app on a unix socket only its owner may use (0600): it is
   * bound in a private folder, restricted, then renamed into place, so it is
   * never reachable with looser permissions; a stale socket from a crashed run
   * is replaced.
   */
  async listenSocket(path: string): Promise<void> {
    if (!this.#handler) throw new Error('the API app was not built with this ApiServing');
    try {
      if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; remove it or set auth.socket: false`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Bound inside a fresh 0700 folder, so nobody else can reach it before it is 0600.
    const dir = mkdtempSync(join(dirname(path), '.nodesage-sock-'));
    const tmp = join(dir, 'sock');
    const server = this.#create(this.#handler);
    server.on('connection', (s: Socket) => this.#local.add(s));
    // fastify installs its client-error handler on its own server only.
    server.on('clientError', clientError);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tmp, () => {
          server.off('error', reject);
          resolve();
        });
      });
      chmodSync(tmp, 0o600);
      renameSync(tmp, path);
    } catch (err) {
      server.close();
      throw err;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    this.#socketServer = server;
    this.#socketPath = path;
  }

  /** Stops the socket listener and removes its file. */
  async closeSocket(): Promise<void> {
    const server = this.#socketServer;
    if (!server) return;
    this.#socketServer = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    if (this.#socketPath) rmSync(this.#socketPath, { force: true });
  }
}
