/**
 * Runs the built daemon (`node dist/daemon/cli.js daemon`) as a real child
 * process, the way `npm start` does, and finds its URL in its log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACCESS_ROLES } from '../../daemon/api/auth/policy.js';

/** Root of the project checkout. */
export const PROJECT_ROOT = new URL('../..', import.meta.url).pathname;
/** The built CLI. */
export const CLI = join(PROJECT_ROOT, 'dist/daemon/cli.js');

/** A running daemon. */
export interface DaemonProcess {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Sends a signal and resolves with the exit code and how long it took. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'nodesage-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs a CLI command to completion. */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string; timeoutMs?: number } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? PROJECT_ROOT,
      env: { ...process.env, NODESAGE_LOG_LEVEL: 'warn', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(opts.input ?? '');
  });
}

/** Starts the daemon on a free loopback port and waits until it serves. */
export async function startDaemon(opts: { env?: Record<string, string>; args?: string[]; cwd?: string; nodeArgs?: string[] }): Promise<DaemonProcess> {
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'daemon', ...(opts.args ?? [])], {
    cwd: opts.cwd ?? PROJECT_ROOT,
    env: { ...process.env, NODESAGE_LISTEN: '127.0.0.1:0', NODESAGE_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon did not start in 30 s\nstdout:\n${out}\nstderr:\n${err}`)), 30_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`daemon exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
  return {
    proc,
    url,
    stdout: () => out,
    stderr: () => err,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      const t0 = Date.now();
      return new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve({ code: proc.exitCode, ms: 0 });
        proc.once('exit', (code) => resolve({ code, ms: Date.now() - t0 }));
        proc.kill(signal);
      });
    },
  };
}

/** The bearer token of the operator that `daemonRequest` calls the API as. */
export const OPERATOR_TOKEN = 'site-operator-token';

/**
 * Users and RBAC rules for the fake API server: OPERATOR_TOKEN is a site
 * operator bound to the shipped reader and model-user roles, the way
 * `kubectl create clusterrolebinding` would bind them.
 */
export function operatorAccess(): { users: Record<string, { username: string }>; rules: { subject: string; verbs: string[]; nonResourceURLs: string[] }[] } {
  const roles = ACCESS_ROLES.filter((r) => r.name === 'nodesage-reader' || r.name === 'nodesage-model-user');
  return {
    users: { [OPERATOR_TOKEN]: { username: 'site-operator' } },
    rules: roles.flatMap((r) => r.rules.map((x) => ({ subject: 'site-operator', verbs: [...x.verbs], nonResourceURLs: [...x.nonResourceURLs] }))),
  };
}

/**
 * A request to the daemon's API as the operator of `operatorAccess()`: GET,
 * or POST with a JSON body. Tests that check what the API serves go through
 * here, so credentials are set in one place.
 */
export function daemonRequest(base: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${OPERATOR_TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(`${base}${path}`, body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) });
}

/** GETs JSON from the daemon: `url` over TCP, or its path over the unix socket `socketPath`, with optional headers (a bearer token). */
export async function getJson<T = unknown>(url: string, opts: { headers?: Record<string, string>; socketPath?: string } = {}): Promise<{ status: number; body: T }> {
  if (!opts.socketPath) {
    const res = await fetch(url, { headers: opts.headers ?? {} });
    return { status: res.status, body: (await res.json()) as T };
  }
  const { request } = await import('node:http');
  const u = new URL(url, 'http://localhost');
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: opts.socketPath, path: `${u.pathname}${u.search}`, headers: opts.headers ?? {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls until fn returns a truthy value. */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** What a test started: the daemon (killed) and the fake servers (stopped) at `stop()`, e.g. in afterEach. */
export class Started {
  daemon: DaemonProcess | undefined;
  readonly servers: { stop(): Promise<void> }[] = [];

  /** Kills the daemon and stops every server. */
  async stop(): Promise<void> {
    await this.daemon?.kill('SIGKILL');
    this.daemon = undefined;
    for (const s of this.servers.splice(0)) await s.stop();
  }
}

/**
 * The environment of a daemon on a fake node: kubeconfig of the fake API
 * server, URL, token and CA of the fake kubelet (files written in `dir`), the
 * host root and a data dir under `dir`.
 */
export function fakeNodeEnv(
  dir: string,
  fakes: { api: { writeKubeconfig(path: string): string }; kubelet: { url: string; ca: { certPem: string } } },
  opts: { nodeName: string; hostRoot: string },
): Record<string, string> {
  writeFileSync(join(dir, 'kubelet-token'), 'fake-kubelet-token\n');
  writeFileSync(join(dir, 'kubelet-ca.crt'), fakes.kubelet.ca.certPem);
  return {
    KUBECONFIG: fakes.api.writeKubeconfig(join(dir, 'kubeconfig')),
    NODE_NAME: opts.nodeName,
    NODESAGE_KUBELET_URL: fakes.kubelet.url,
    NODESAGE_KUBELET_TOKEN_FILE: join(dir, 'kubelet-token'),
    NODESAGE_KUBELET_CA_FILE: join(dir, 'kubelet-ca.crt'),
    NODESAGE_HOST_ROOT: opts.hostRoot,
    NODESAGE_DATA_DIR: join(dir, 'data'),
  };
}
