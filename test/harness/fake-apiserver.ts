/**
 * A loopback HTTPS Kubernetes API server for tests, serving a node snapshot
 * bundle's node.json, pods.json and events.json with the list/watch semantics
 * the real client depends on:
 *
 * - lists carry `metadata.resourceVersion` (a global counter, like etcd's
 *   revision); items omit apiVersion/kind like the real server; limit/continue
 *   pages come from a consistent snapshot;
 * - `?watch=true&resourceVersion=N` replays every change after N from a bounded
 *   history, then streams live changes as chunked JSON lines; no or "0"
 *   resourceVersion starts with synthetic ADDED events; a resourceVersion older
 *   than the history answers 410 (as an ERROR line with a Status, code 410, the
 *   way the real server does, or as HTTP 410);
 * - field selectors with the real server's supported field labels (others get
 *   400, e.g. `source.host` on events), objects leaving a selection arrive as
 *   DELETED; simple label selectors; bookmarks when asked; timeoutSeconds;
 * - bearer-token authentication (401) and optional 403 per resource;
 * - TokenReview and SubjectAccessReview (the delegated authentication and
 *   authorisation a node agent asks for) from a table of tokens → users and
 *   RBAC-like rules on non-resource URLs, matched the way RBAC matches them
 *   (kubernetes/kubernetes pkg/apis/rbac/v1/evaluation_helpers.go
 *   NonResourceURLMatches: exact, or a rule ending in `*` as a prefix);
 * - `pods/{name}/portforward` over WebSocket (`v4.channel.k8s.io`, the
 *   kubelet's framing: one byte of channel, the port number first on each
 *   channel), bridged to a local TCP address per pod, as `kubectl
 *   port-forward` reaches a pod.
 *
 * Test controls change objects, stop and restart the server on the same port,
 * compact the history, and keep a request log.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { WebSocketServer } from 'ws';
import { join } from 'node:path';
import { createTestCa, type KeyPair, type TestCa } from './tls.js';
import { cutOff, listenLoopback } from './loopback.js';

/** A Kubernetes object in wire form. */
export type Obj = { apiVersion?: string; kind?: string; metadata: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown }; [k: string]: unknown };

/** Collections served. */
export type Resource = 'pods' | 'events' | 'nodes';

const KIND: Record<Resource, string> = { pods: 'Pod', events: 'Event', nodes: 'Node' };
const NAMESPACED: Record<Resource, boolean> = { pods: true, events: true, nodes: false };

/** Field labels each resource supports on the real API server (pkg/registry/core/<r>/strategy.go). */
const FIELD_LABELS: Record<Resource, Record<string, (o: Obj) => string>> = {
  pods: {
    'metadata.name': (o) => o.metadata.name ?? '',
    'metadata.namespace': (o) => o.metadata.namespace ?? '',
    'spec.nodeName': (o) => str(get(o, 'spec.nodeName')),
    'spec.restartPolicy': (o) => str(get(o, 'spec.restartPolicy')),
    'spec.schedulerName': (o) => str(get(o, 'spec.schedulerName')),
    'spec.serviceAccountName': (o) => str(get(o, 'spec.serviceAccountName')),
    'spec.hostNetwork': (o) => String(get(o, 'spec.hostNetwork') === true),
    'status.phase': (o) => str(get(o, 'status.phase')),
    'status.podIP': (o) => str(get(o, 'status.podIP')),
    'status.nominatedNodeName': (o) => str(get(o, 'status.nominatedNodeName')),
  },
  nodes: {
    'metadata.name': (o) => o.metadata.name ?? '',
    'spec.unschedulable': (o) => String(get(o, 'spec.unschedulable') === true),
  },
  events: {
    'metadata.name': (o) => o.metadata.name ?? '',
    'metadata.namespace': (o) => o.metadata.namespace ?? '',
    'involvedObject.kind': (o) => str(get(o, 'involvedObject.kind')),
    'involvedObject.namespace': (o) => str(get(o, 'involvedObject.namespace')),
    'involvedObject.name': (o) => str(get(o, 'involvedObject.name')),
    'involvedObject.uid': (o) => str(get(o, 'involvedObject.uid')),
    'involvedObject.apiVersion': (o) => str(get(o, 'involvedObject.apiVersion')),
    'involvedObject.resourceVersion': (o) => str(get(o, 'involvedObject.resourceVersion')),
    'involvedObject.fieldPath': (o) => str(get(o, 'involvedObject.fieldPath')),
    reason: (o) => str(get(o, 'reason')),
    reportingComponent: (o) => str(get(o, 'reportingComponent')),
    source: (o) => str(get(o, 'source.component')) || str(get(o, 'reportingComponent')),
    type: (o) => str(get(o, 'type')),
  },
};

function get(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const part of path.split('.')) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** One request the server answered. */
export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  watch: boolean;
  /** Request body (writes only). */
  body?: string;
  /** Content-Type of a write. */
  contentType?: string;
}

/** A user a token stands for (TokenReview status.user). */
export interface FakeUser {
  username: string;
  uid?: string;
  groups?: string[];
}

/** An RBAC grant on non-resource URLs to a user or a group. */
export interface FakeNonResourceRule {
  /** User name, or `group:<name>` for a group. */
  subject: string;
  verbs: string[];
  nonResourceURLs: string[];
}

/** Options of the fake API server. */
export interface FakeApiServerOptions {
  /** Bundle folder whose node.json, pods.json and events.json are served. Defaults to an empty cluster. */
  bundleDir?: string;
  /** CA that issues the server certificate. Defaults to a new test CA. */
  ca?: TestCa;
  /** Server certificate; defaults to one issued by `ca` for 127.0.0.1. */
  tls?: KeyPair;
  /** Bearer token accepted. Defaults to `fake-apiserver-token`. */
  token?: string;
  /** Changes kept for watch replay; older resourceVersions get 410. Defaults to 10000. */
  historyLimit?: number;
  /** How an expired resourceVersion is reported to a watch. Defaults to `watch-error` (what the real server does). */
  goneAs?: 'watch-error' | 'http';
  /** Tokens TokenReview accepts, and whom they stand for. Defaults to none. */
  users?: Record<string, FakeUser>;
  /** Grants SubjectAccessReview checks. Defaults to none (everything denied). */
  rules?: FakeNonResourceRule[];
}

interface Change {
  rv: number;
  resource: Resource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: Obj;
  prev?: Obj;
}

interface Selector {
  ok: boolean;
  error?: string;
  match: (o: Obj) => boolean;
}

interface Watcher {
  res: ServerResponse;
  resource: Resource;
  namespace: string | undefined;
  selector: Selector;
  bookmarks: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The fake API server. Create with `FakeApiServer.create()`. */
export class FakeApiServer {
  readonly ca: TestCa;
  readonly token: string;
  /** Every answered request, oldest first. */
  readonly requests: RequestRecord[] = [];
  readonly #server: https.Server;
  readonly #historyLimit: number;
  readonly #goneAs: 'watch-error' | 'http';
  readonly #store: Record<Resource, Map<string, Obj>> = { pods: new Map(), events: new Map(), nodes: new Map() };
  #history: Change[] = [];
  #rv = 1000;
  /** Watches from a resourceVersion below this are answered 410. */
  #compactedRv = 1000;
  readonly #watchers = new Set<Watcher>();
  readonly #snapshots = new Map<string, { items: Obj[]; rv: number }>();
  readonly #forbidden = new Set<Resource>();
  #failStatus: number | null = null;
  /** Tokens TokenReview accepts. */
  readonly users = new Map<string, FakeUser>();
  /** Grants SubjectAccessReview checks; change freely in tests. */
  readonly rules: FakeNonResourceRule[] = [];
  #reviewsForbidden = false;
  #port = 0;
  #listening = false;
  /** Where a pod's port-forward goes: `ns/pod:port` → a local TCP address. */
  readonly #forwards = new Map<string, { host: string; port: number }>();
  readonly #wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false) });

  private constructor(opts: FakeApiServerOptions, ca: TestCa, tls: KeyPair) {
    this.ca = ca;
    this.token = opts.token ?? 'fake-apiserver-token';
    this.#historyLimit = opts.historyLimit ?? 10_000;
    this.#goneAs = opts.goneAs ?? 'watch-error';
    this.#server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => this.#handle(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    if (opts.bundleDir) this.#load(opts.bundleDir);
    this.#compactedRv = this.#rv;
    for (const [token, user] of Object.entries(opts.users ?? {})) this.users.set(token, user);
    this.rules.push(...(opts.rules ?? []));
  }

  /** Creates the server and starts listening on a free loopback port. */
  static async create(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const ca = opts.ca ?? createTestCa('fake-apiserver-ca');
    const server = new FakeApiServer(opts, ca, opts.tls ?? ca.issue());
    await server.start();
    return server;
  }

  /** `https://127.0.0.1:<port>`. */
  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Watch streams open right now. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  /** Starts (or restarts, on the same port) listening. */
  async start(): Promise<void> {
    if (this.#listening) return;
    this.#port = await listenLoopback(this.#server, this.#port);
    this.#listening = true;
  }

  /** Simulates an outage: stops listening and cuts every connection, watches included. */
  async stop(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    for (const w of this.#watchers) this.#endWatch(w, true);
    for (const c of this.#wss.clients) c.terminate();
    await cutOff(this.#server);
  }

  /** Stops for good. */
  async close(): Promise<void> {
    await this.stop();
  }

  /** Writes a kubeconfig (server URL, CA data, token) and returns its path. */
  writeKubeconfig(path: string, opts: { token?: string; caPem?: string } = {}): string {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fake',
          cluster: { server: this.url, 'certificate-authority-data': Buffer.from(opts.caPem ?? this.ca.certPem).toString('base64') },
        },
      ],
      users: [{ name: 'nodesage', user: { token: opts.token ?? this.token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'nodesage' } }],
      'current-context': 'fake',
    };
    writeFileSync(path, JSON.stringify(config, null, 2));
    return path;
  }

  // ---- test controls ---------------------------------------------------------

  /** Adds a node (ADDED). */
  addNode(node: Obj): Obj {
    return this.#commit('nodes', 'ADDED', node);
  }

  /**
   * Makes `pods/{pod}/portforward` to `podPort` reach `target` (a local TCP
   * address, e.g. a test agent); `null` makes the pod's port refuse, like a
   * pod whose container is not listening.
   */
  forwardPod(namespace: string, pod: string, podPort: number, target: { host: string; port: number } | null): void {
    const key = `${namespace}/${pod}:${podPort}`;
    if (target) this.#forwards.set(key, target);
    else this.#forwards.delete(key);
  }

  /** Adds a pod (ADDED). Returns the stored copy with its resourceVersion. */
  addPod(pod: Obj): Obj {
    return this.#commit('pods', 'ADDED', pod);
  }

  /** Changes a pod in place (MODIFIED). */
  modifyPod(namespace: string, name: string, mutate: (pod: Obj) => void): Obj {
    return this.#modify('pods', `${namespace}/${name}`, mutate);
  }

  /** Deletes a pod (DELETED). */
  deletePod(namespace: string, name: string): void {
    this.#delete('pods', `${namespace}/${name}`);
  }

  /** Adds an event (ADDED). */
  addEvent(event: Obj): Obj {
    return this.#commit('events', 'ADDED', event);
  }

  /** Changes an event (e.g. count and lastTimestamp of a repeat). */
  modifyEvent(namespace: string, name: string, mutate: (ev: Obj) => void): Obj {
    return this.#modify('events', `${namespace}/${name}`, mutate);
  }

  /** Deletes an event (as its TTL would). */
  deleteEvent(namespace: string, name: string): void {
    this.#delete('events', `${namespace}/${name}`);
  }

  /** Changes a node (e.g. a condition). */
  modifyNode(name: string, mutate: (node: Obj) => void): Obj {
    return this.#modify('nodes', name, mutate);
  }

  /** Stored objects of a resource (copies). */
  objects(resource: Resource): Obj[] {
    return [...this.#store[resource].values()].map(clone);
  }

  /** Forgets the change history: every watch from an older resourceVersion now gets 410 Gone. */
  expireResourceVersions(): void {
    this.#history = [];
    this.#compactedRv = this.#rv;
  }

  /** Sends a BOOKMARK at the current resourceVersion to watches that allowed them. */
  bookmark(): void {
    for (const w of this.#watchers) {
      if (w.bookmarks) this.#write(w, { type: 'BOOKMARK', object: { kind: KIND[w.resource], apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) } } });
    }
  }

  /** Ends every open watch stream cleanly (as a server-side timeout would). */
  endWatches(): void {
    for (const w of this.#watchers) this.#endWatch(w, false);
  }

  /** Answers 403 to lists and watches of a resource (or stops doing so). */
  forbid(resource: Resource, forbidden = true): void {
    if (forbidden) this.#forbidden.add(resource);
    else this.#forbidden.delete(resource);
  }

  /** Answers 403 to TokenReview and SubjectAccessReview, as for an agent not bound to system:auth-delegator. */
  forbidReviews(forbidden = true): void {
    this.#reviewsForbidden = forbidden;
  }

  /** Answers every authenticated request with this HTTP status (null: serve normally). */
  failWith(status: number | null): void {
    this.#failStatus = status;
  }

  /** Requests for one path (no query). */
  requestsFor(path: string): RequestRecord[] {
    return this.requests.filter((r) => r.path === path);
  }

  // ---- internals -------------------------------------------------------------

  #load(dir: string): void {
    const read = (file: string): unknown => {
      try {
        return JSON.parse(readFileSync(join(dir, file), 'utf8'));
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const node = read('node.json') as Obj | undefined;
    const pods = (read('pods.json') as { items?: Obj[] } | undefined)?.items ?? [];
    const events = (read('events.json') as { items?: Obj[] } | undefined)?.items ?? [];
    const all: [Resource, Obj][] = [...(node ? [['nodes', node] as [Resource, Obj]] : []), ...pods.map((p): [Resource, Obj] => ['pods', p]), ...events.map((e): [Resource, Obj] => ['events', e])];
    for (const [, o] of all) {
      const n = Number(o.metadata.resourceVersion);
      if (Number.isInteger(n) && n > this.#rv) this.#rv = n;
    }
    for (const [resource, o] of all) {
      const copy = clone(o);
      if (!/^\d+$/.test(copy.metadata.resourceVersion ?? '')) copy.metadata.resourceVersion = String(++this.#rv);
      this.#store[resource].set(this.#key(resource, copy), copy);
    }
  }

  #key(resource: Resource, o: Obj): string {
    return NAMESPACED[resource] ? `${o.metadata.namespace ?? 'default'}/${o.metadata.name ?? ''}` : (o.metadata.name ?? '');
  }

  #commit(resource: Resource, type: 'ADDED' | 'MODIFIED', input: Obj, prev?: Obj): Obj {
    const obj = clone(input);
    const key = this.#key(resource, obj);
    if (type === 'ADDED' && this.#store[resource].has(key)) throw new Error(`${resource} ${key} already exists`);
    if (NAMESPACED[resource]) obj.metadata.namespace ??= 'default';
    obj.metadata.uid ??= randomUUID();
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#store[resource].set(key, obj);
    this.#record({ rv: this.#rv, resource, type, obj: clone(obj), prev });
    return clone(obj);
  }

  #modify(resource: Resource, key: string, mutate: (o: Obj) => void): Obj {
    const prev = this.#store[resource].get(key);
    if (!prev) throw new Error(`${resource} ${key} not found`);
    const next = clone(prev);
    mutate(next);
    return this.#commit(resource, 'MODIFIED', next, clone(prev));
  }

  #delete(resource: Resource, key: string): void {
    const prev = this.#store[resource].get(key);
    if (!prev) throw new Error(`${resource} ${key} not found`);
    this.#store[resource].delete(key);
    const obj = clone(prev);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, resource, type: 'DELETED', obj });
  }

  #record(change: Change): void {
    this.#history.push(change);
    while (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift();
      if (dropped) this.#compactedRv = dropped.rv;
    }
    for (const w of this.#watchers) if (w.resource === change.resource) this.#send(w, change);
  }

  /** What a change looks like through one watch's selection (objects entering or leaving it). */
  #translate(w: Watcher, c: Change): { type: string; object: Obj } | null {
    const inScope = (o: Obj | undefined) => !!o && (!w.namespace || o.metadata.namespace === w.namespace) && w.selector.match(o);
    const now = inScope(c.obj);
    const before = c.type === 'MODIFIED' ? inScope(c.prev) : c.type === 'DELETED';
    let type: string | null = null;
    if (c.type === 'ADDED') type = now ? 'ADDED' : null;
    else if (c.type === 'DELETED') type = now ? 'DELETED' : null;
    else if (now && before) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (before) type = 'DELETED';
    return type ? { type, object: this.#typed(w.resource, c.obj) } : null;
  }

  #send(w: Watcher, c: Change): void {
    const ev = this.#translate(w, c);
    if (ev) this.#write(w, ev);
  }

  #write(w: Watcher, ev: unknown): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(ev)}\n`);
  }

  #endWatch(w: Watcher, abrupt: boolean): void {
    if (w.timer) clearTimeout(w.timer);
    this.#watchers.delete(w);
    if (abrupt) w.res.socket?.destroy();
    else w.res.end();
  }

  #typed(resource: Resource, o: Obj): Obj {
    return { ...clone(o), apiVersion: o.apiVersion ?? 'v1', kind: o.kind ?? KIND[resource] };
  }

  #untyped(o: Obj): Obj {
    const { apiVersion: _a, kind: _k, ...rest } = clone(o);
    return rest as Obj;
  }

  #status(res: ServerResponse, code: number, reason: string, message: string): number {
    const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(body);
    return code;
  }

  #selector(resource: Resource, fieldSelector: string | null, labelSelector: string | null): Selector {
    const tests: ((o: Obj) => boolean)[] = [];
    for (const term of (fieldSelector ?? '').split(',').filter(Boolean)) {
      const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
      if (!m) return { ok: false, error: `invalid field selector: ${term}`, match: () => false };
      const [, field, op, value] = m as unknown as [string, string, string, string];
      const getter = FIELD_LABELS[resource][field];
      if (!getter) return { ok: false, error: `field label not supported: ${field}`, match: () => false };
      tests.push(op === '!=' ? (o) => getter(o) !== value : (o) => getter(o) === value);
    }
    for (const term of (labelSelector ?? '').split(',').filter(Boolean)) {
      const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
      const labels = (o: Obj) => (o.metadata.labels ?? {}) as Record<string, string>;
      if (!m) {
        const key = term.trim().replace(/^!/, '');
        const negate = term.trim().startsWith('!');
        tests.push((o) => (key in labels(o)) !== negate);
        continue;
      }
      const [, key, op, value] = m as unknown as [string, string, string, string];
      tests.push(op === '!=' ? (o) => labels(o)[key] !== value : (o) => labels(o)[key] === value);
    }
    return { ok: true, match: (o) => tests.every((t) => t(o)) };
  }

  /** WebSocket port-forward: GET /api/v1/namespaces/{ns}/pods/{pod}/portforward?ports=N. */
  #upgrade(req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'https://fake');
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams.entries()), status: 0, watch: false };
    this.requests.push(record);
    const refuse = (code: number, text: string) => {
      record.status = code;
      socket.end(`HTTP/1.1 ${code} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      refuse(401, 'Unauthorized');
      return;
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
    const port = Number(url.searchParams.get('ports'));
    if (!m || !Number.isInteger(port)) {
      refuse(404, 'Not Found');
      return;
    }
    const [, ns, pod] = m as unknown as [string, string, string];
    if (!this.#store.pods.has(`${ns}/${pod}`)) {
      refuse(404, 'Not Found');
      return;
    }
    record.status = 101;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const portBytes = Buffer.alloc(2);
      portBytes.writeUInt16LE(port);
      // First frame of each channel (data 0, error 1): the port, as the kubelet sends it.
      ws.send(Buffer.concat([Buffer.from([0]), portBytes]));
      ws.send(Buffer.concat([Buffer.from([1]), portBytes]));
      const target = this.#forwards.get(`${ns}/${pod}:${port}`);
      if (!target) {
        ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(`error forwarding port ${port} to pod ${pod}: connection refused`)]));
        ws.close();
        return;
      }
      const tcp = tcpConnect(target.port, target.host);
      const pending: Buffer[] = [];
      let open = false;
      tcp.on('connect', () => {
        open = true;
        for (const b of pending.splice(0)) tcp.write(b);
      });
      tcp.on('data', (d: Buffer) => ws.send(Buffer.concat([Buffer.from([0]), d])));
      tcp.on('close', () => ws.close());
      tcp.on('error', (err) => {
        if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(String(err.message))]));
      });
      ws.on('message', (data: Buffer) => {
        if (data.length === 0 || data[0] !== 0) return;
        const payload = data.subarray(1);
        if (open) tcp.write(payload);
        else pending.push(payload);
      });
      ws.on('close', () => tcp.end());
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const isWatch = query.watch === 'true' || query.watch === '1';
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, status: 0, watch: isWatch };
    this.requests.push(record);
    if (req.method === 'PATCH' || req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        record.body = Buffer.concat(chunks).toString('utf8');
        record.contentType = req.headers['content-type'] ?? '';
        record.status = this.#routeWrite(req, res, url, record.body);
      });
      return;
    }
    record.status = this.#route(req, res, url, isWatch);
  }

  /**
   * The two writes nodesage's exporters make: a strategic-merge patch of a
   * Node's status (conditions merge by `type`, as the real server does) and
   * the creation of a core/v1 Event.
   */
  #routeWrite(req: IncomingMessage, res: ServerResponse, url: URL, body: string): number {
    if (req.headers.authorization !== `Bearer ${this.token}`) return this.#status(res, 401, 'Unauthorized', 'Unauthorized');
    if (this.#failStatus !== null) return this.#status(res, this.#failStatus, 'InternalError', `injected failure ${this.#failStatus}`);
    let data: Obj;
    try {
      data = JSON.parse(body) as Obj;
    } catch {
      return this.#status(res, 400, 'BadRequest', 'body is not JSON');
    }
    const parts = url.pathname.split('/').filter(Boolean);
    const reply = (code: number, obj: Obj): number => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
      return code;
    };
    const review = /^\/apis\/(authentication|authorization)\.k8s\.io\/v1\/(tokenreviews|subjectaccessreviews)$/.exec(url.pathname);
    if (req.method === 'POST' && review) {
      if (this.#reviewsForbidden) {
        return this.#status(res, 403, 'Forbidden', `${review[2]}.${review[1]}.k8s.io is forbidden: User "system:serviceaccount:nodesage:nodesage" cannot create resource "${review[2]}" in API group "${review[1]}.k8s.io" at the cluster scope`);
      }
      return reply(201, review[2] === 'tokenreviews' ? this.#tokenReview(data) : this.#accessReview(data));
    }
    // PATCH /api/v1/nodes/{name}/status
    if (req.method === 'PATCH' && parts.length === 5 && parts[2] === 'nodes' && parts[4] === 'status') {
      if (this.#forbidden.has('nodes')) {
        return this.#status(res, 403, 'Forbidden', 'nodes "x" is forbidden: cannot patch resource "nodes/status"');
      }
      if (!/strategic-merge-patch|merge-patch/.test(req.headers['content-type'] ?? '')) {
        return this.#status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`);
      }
      const name = parts[3]!;
      if (!this.#store.nodes.has(name)) return this.#status(res, 404, 'NotFound', `nodes "${name}" not found`);
      const patch = (data as { status?: { conditions?: { type: string }[] } }).status?.conditions ?? [];
      const updated = this.#modify('nodes', name, (n) => {
        const holder = n as { status?: Record<string, unknown> };
        holder.status ??= {};
        const status = holder.status;
        const conditions = ((status.conditions as { type: string }[] | undefined) ?? []).slice();
        for (const c of patch) {
          const i = conditions.findIndex((x) => x.type === c.type);
          if (i >= 0) conditions[i] = { ...conditions[i], ...c };
          else conditions.push(c);
        }
        status.conditions = conditions;
      });
      return reply(200, this.#typed('nodes', updated));
    }
    // POST /api/v1/namespaces/{ns}/events
    if (req.method === 'POST' && parts.length === 5 && parts[2] === 'namespaces' && parts[4] === 'events') {
      const ns = parts[3]!;
      data.metadata = { ...data.metadata, namespace: data.metadata?.namespace ?? ns };
      if (data.metadata.namespace !== ns) return this.#status(res, 400, 'BadRequest', 'the namespace of the object does not match the namespace on the request');
      if (this.#store.events.has(this.#key('events', data))) {
        return this.#status(res, 409, 'AlreadyExists', `events "${data.metadata.name}" already exists`);
      }
      return reply(201, this.#typed('events', this.#commit('events', 'ADDED', data)));
    }
    return this.#status(res, 405, 'MethodNotAllowed', `the fake API server does not serve ${req.method} ${url.pathname}`);
  }

  #tokenReview(body: Obj): Obj {
    const token = String((body.spec as { token?: unknown } | undefined)?.token ?? '');
    const user = this.users.get(token);
    const status = user
      ? { authenticated: true, user: { username: user.username, ...(user.uid ? { uid: user.uid } : {}), groups: [...(user.groups ?? []), 'system:authenticated'] } }
      : { user: {}, error: '[invalid bearer token, token lookup failed]' };
    return { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: { creationTimestamp: null }, spec: body.spec, status } as unknown as Obj;
  }

  #accessReview(body: Obj): Obj {
    const spec = (body.spec ?? {}) as { user?: string; groups?: string[]; nonResourceAttributes?: { path?: string; verb?: string } };
    const path = spec.nonResourceAttributes?.path ?? '';
    const verb = spec.nonResourceAttributes?.verb ?? '';
    const subjects = new Set([spec.user ?? '', ...(spec.groups ?? []).map((g) => `group:${g}`)]);
    const urlMatches = (rule: string) => rule === '*' || rule === path || (rule.endsWith('*') && path.startsWith(rule.replace(/\*+$/, '')));
    const grant = spec.nonResourceAttributes
      ? this.rules.find((r) => subjects.has(r.subject) && (r.verbs.includes('*') || r.verbs.includes(verb)) && r.nonResourceURLs.some(urlMatches))
      : undefined;
    const status = grant ? { allowed: true, reason: `RBAC: allowed by a rule for ${grant.subject}` } : { allowed: false };
    return { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', metadata: { creationTimestamp: null }, spec: body.spec, status } as unknown as Obj;
  }

  #route(req: IncomingMessage, res: ServerResponse, url: URL, isWatch: boolean): number {
    if (req.headers.authorization !== `Bearer ${this.token}`) return this.#status(res, 401, 'Unauthorized', 'Unauthorized');
    if (this.#failStatus !== null) return this.#status(res, this.#failStatus, 'InternalError', `injected failure ${this.#failStatus}`);
    if (req.method !== 'GET') return this.#status(res, 405, 'MethodNotAllowed', 'the fake API server only serves GET');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'api' || parts[1] !== 'v1') return this.#status(res, 404, 'NotFound', 'the server could not find the requested resource');
    let namespace: string | undefined;
    let rest = parts.slice(2);
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = rest[0] as Resource | undefined;
    const name = rest[1];
    if (!resource || !(resource in this.#store) || rest.length > 2 || (namespace && !NAMESPACED[resource])) {
      return this.#status(res, 404, 'NotFound', 'the server could not find the requested resource');
    }
    if (this.#forbidden.has(resource)) {
      const verb = isWatch ? 'watch' : name ? 'get' : 'list';
      const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
      return this.#status(res, 403, 'Forbidden', `${resource} is forbidden: User "system:serviceaccount:nodesage:nodesage" cannot ${verb} resource "${resource}" in API group "" ${scope}`);
    }
    if (name) {
      const obj = this.#store[resource].get(NAMESPACED[resource] ? `${namespace ?? 'default'}/${name}` : name);
      if (!obj) return this.#status(res, 404, 'NotFound', `${resource} "${name}" not found`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(this.#typed(resource, obj)));
      return 200;
    }
    const selector = this.#selector(resource, url.searchParams.get('fieldSelector'), url.searchParams.get('labelSelector'));
    if (!selector.ok) return this.#status(res, 400, 'BadRequest', selector.error ?? 'bad selector');
    return isWatch ? this.#watch(res, url, resource, namespace, selector) : this.#list(res, url, resource, namespace, selector);
  }

  #list(res: ServerResponse, url: URL, resource: Resource, namespace: string | undefined, selector: Selector): number {
    const limit = Number(url.searchParams.get('limit') ?? '0');
    const cont = url.searchParams.get('continue');
    let items: Obj[];
    let rv = this.#rv;
    if (cont) {
      const snap = this.#snapshots.get(cont);
      if (!snap) return this.#status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      this.#snapshots.delete(cont);
      items = snap.items;
      rv = snap.rv;
    } else {
      items = [...this.#store[resource].values()].filter((o) => (!namespace || o.metadata.namespace === namespace) && selector.match(o)).map((o) => this.#untyped(o));
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (limit > 0 && items.length > limit) {
      const token = randomUUID();
      this.#snapshots.set(token, { items: items.slice(limit), rv });
      items = items.slice(0, limit);
      metadata.continue = token;
      metadata.remainingItemCount = this.#snapshots.get(token)!.items.length;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: `${KIND[resource]}List`, apiVersion: 'v1', metadata, items }));
    return 200;
  }

  #watch(res: ServerResponse, url: URL, resource: Resource, namespace: string | undefined, selector: Selector): number {
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? null : Number(rvParam);
    if (fromRv !== null && !Number.isFinite(fromRv)) return this.#status(res, 400, 'BadRequest', `invalid resource version: ${rvParam}`);
    const expired = fromRv !== null && fromRv < this.#compactedRv;
    const gone = `too old resource version: ${rvParam} (${this.#compactedRv})`;
    if (expired && this.#goneAs === 'http') return this.#status(res, 410, 'Expired', gone);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    const w: Watcher = { res, resource, namespace, selector, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', timer: undefined };
    if (expired) {
      this.#write(w, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: gone, reason: 'Expired', code: 410 } });
      res.end();
      return 200;
    }
    if (fromRv === null) {
      for (const o of this.#store[resource].values()) {
        if ((!namespace || o.metadata.namespace === namespace) && selector.match(o)) this.#write(w, { type: 'ADDED', object: this.#typed(resource, o) });
      }
    } else {
      for (const c of this.#history) if (c.resource === resource && c.rv > fromRv) this.#send(w, c);
    }
    this.#watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timer = setTimeout(() => this.#endWatch(w, false), timeout * 1000);
    res.on('close', () => {
      if (w.timer) clearTimeout(w.timer);
      this.#watchers.delete(w);
    });
    return 200;
  }
}
