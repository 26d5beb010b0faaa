/**
 * Who may call the agent: bearer tokens checked by the Kubernetes API server
 * (TokenReview, then SubjectAccessReview on the path and verb) through the
 * real @kubernetes/client-node against the loopback fake API server, with
 * the ClusterRoles the DaemonSet ships bound the way an operator binds them;
 * answers cached, and with the API server stopped only cached answers apply.
 * Also the static token file and the node-local socket, over real sockets.
 */
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeReviewer } from '../daemon/api/auth/kube-review.js';
import { ACCESS_ROLES } from '../daemon/api/auth/policy.js';
import { createToken, readTokenFile, StaticTokens, TokenFileError } from '../daemon/api/auth/static-tokens.js';
import { assertListenProtected, loadConfig } from '../daemon/config.js';
import { type FakeNonResourceRule, FakeApiServer } from './harness/fake-apiserver.js';
import { type ServedApi, raw, serveApi } from './helpers/access-app.js';
import { tempDir } from './helpers/daemon-process.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The rules of a shipped ClusterRole, bound to one subject (as a ClusterRoleBinding does). */
function bind(role: string, subject: string): FakeNonResourceRule[] {
  const r = ACCESS_ROLES.find((x) => x.name === role);
  if (!r) throw new Error(`no role ${role}`);
  return r.rules.map((rule) => ({ subject, verbs: rule.verbs, nonResourceURLs: rule.nonResourceURLs }));
}

const PROMETHEUS = 'system:serviceaccount:monitoring:prometheus-k8s';

describe('Kubernetes authentication and authorisation', () => {
  let fake: FakeApiServer;
  let api: ServedApi;
  let clock = Date.now();

  beforeAll(async () => {
    fake = await FakeApiServer.create({
      users: {
        'alice-token': { username: 'alice@example.com', groups: ['site-ops'] },
        'bob-token': { username: 'bob@example.com', groups: ['developers'] },
        'carol-token': { username: 'carol@example.com', groups: ['site-ops'] },
        'dave-token': { username: 'dave@example.com', groups: ['site-ops'] },
        'prom-token': { username: PROMETHEUS },
      },
      rules: [...bind('nodesage-reader', 'group:site-ops'), ...bind('nodesage-metrics', PROMETHEUS)],
    });
    const kc = new KubeConfig();
    kc.loadFromFile(fake.writeKubeconfig(join(tempDir(), 'kubeconfig')));
    const reviewer = new KubeReviewer(kc, { allowTtlMs: 60_000, denyTtlMs: 10_000, staleMs: 600_000, timeoutMs: 2_000, now: () => clock });
    api = await serveApi({ access: { authenticator: reviewer, requestsPerSecond: 1000, burst: 1000 } });
  });
  afterAll(async () => {
    await api?.close();
    await fake?.close();
  });

  const tokenReviews = () => fake.requestsFor('/apis/authentication.k8s.io/v1/tokenreviews').length;
  const accessReviews = () => fake.requestsFor('/apis/authorization.k8s.io/v1/subjectaccessreviews').length;

  it('answers 401 without a token, with WWW-Authenticate: Bearer', async () => {
    const r = await raw(api, 'GET', '/v1/findings');
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(JSON.parse(r.body).error.code).toBe('UNAUTHENTICATED');
    // Unknown routes too: nobody learns which routes exist without a token.
    expect((await raw(api, 'GET', '/v1/secret-route')).status).toBe(401);
  });

  it('answers 401 for a token the API server rejects', async () => {
    const r = await raw(api, 'GET', '/v1/status', bearer('stolen-or-expired'));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).error).toEqual({ code: 'UNAUTHENTICATED', message: expect.stringContaining('TokenReview') });
  });

  it('answers 403 naming the verb and path to an authenticated caller without a grant', async () => {
    const r = await raw(api, 'GET', '/v1/findings', bearer('bob-token'));
    expect(r.status).toBe(403);
    const e = JSON.parse(r.body).error;
    expect(e.code).toBe('FORBIDDEN');
    expect(e.message).toContain('bob@example.com may not get /v1/findings');
  });

  it('serves a caller the ClusterRole grants, for that verb and those paths only', async () => {
    const status = await raw(api, 'GET', '/v1/status', bearer('alice-token'));
    expect(status.status).toBe(200);
    expect(JSON.parse(status.body).nodeName).toBe('edge-node-1');
    expect((await raw(api, 'GET', '/v1/findings?status=open', bearer('alice-token'))).status).toBe(200);
    const one = await raw(api, 'GET', '/v1/findings/0123456789abcdef', bearer('alice-token'));
    expect(JSON.parse(one.body).error.code).toBe('FINDING_NOT_FOUND');
    // The reader role has no /metrics, and no write verb on its paths.
    expect((await raw(api, 'GET', '/metrics', bearer('alice-token'))).status).toBe(403);
    const post = await raw(api, 'POST', '/v1/status', { ...bearer('alice-token'), 'content-type': 'application/json' }, '{}');
    expect(post.status).toBe(403);
    expect(JSON.parse(post.body).error.message).toContain('may not create /v1/status');
    // Prometheus's service account with nodesage-metrics scrapes /metrics and nothing else.
    expect((await raw(api, 'GET', '/metrics', bearer('prom-token'))).status).toBe(200);
    expect((await raw(api, 'GET', '/v1/findings', bearer('prom-token'))).status).toBe(403);
  });

  it('keeps /healthz and /readyz open to the kubelet probes', async () => {
    expect((await raw(api, 'GET', '/healthz')).status).toBe(200);
    expect((await raw(api, 'GET', '/readyz')).status).toBe(200);
  });

  it('refuses paths that could be authorised as one route and served as another', async () => {
    for (const path of ['/v1/findings/../status', '/v1/findings/%2e%2e/status', '//v1/status', '/v1/./status', '/v1/findings/..%2Fstatus', '/v1\\status']) {
      const r = await raw(api, 'GET', path, bearer('alice-token'));
      expect(r.status, path).toBe(400);
      expect(JSON.parse(r.body).error.code, path).toBe('BAD_PATH');
    }
  });

  it('asks the API server once per token and per path within the TTL', async () => {
    await raw(api, 'GET', '/v1/status', bearer('dave-token'));
    const t = tokenReviews();
    const a = accessReviews();
    for (let i = 0; i < 20; i++) expect((await raw(api, 'GET', '/v1/status', bearer('dave-token'))).status).toBe(200);
    expect(tokenReviews()).toBe(t);
    expect(accessReviews()).toBe(a);
    // Concurrent first requests with a new token share one TokenReview.
    fake.users.set('erin-token', { username: 'erin@example.com', groups: ['site-ops'] });
    const before = tokenReviews();
    const all = await Promise.all(Array.from({ length: 10 }, () => raw(api, 'GET', '/v1/status', bearer('erin-token'))));
    expect(all.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(tokenReviews() - before).toBe(1);
    // After the TTL the API server is asked again: a revoked grant takes effect.
    const revoked = fake.rules.splice(0, fake.rules.length, ...bind('nodesage-metrics', PROMETHEUS));
    expect((await raw(api, 'GET', '/v1/status', bearer('dave-token'))).status).toBe(200);
    clock += 61_000;
    expect((await raw(api, 'GET', '/v1/status', bearer('dave-token'))).status).toBe(403);
    fake.rules.splice(0, fake.rules.length, ...revoked);
    clock += 11_000;
    expect((await raw(api, 'GET', '/v1/status', bearer('dave-token'))).status).toBe(200);
  });

  it('with the API server stopped: cached answers still apply, an unseen token gets 503, never an allow', async () => {
    expect((await raw(api, 'GET', '/v1/status', bearer('alice-token'))).status).toBe(200);
    expect((await raw(api, 'GET', '/v1/findings', bearer('bob-token'))).status).toBe(403);
    await fake.stop();
    try {
      clock += 120_000; // past the TTLs: the API server is asked, fails, and the stale answers apply
      expect((await raw(api, 'GET', '/v1/status', bearer('alice-token'))).status).toBe(200);
      expect((await raw(api, 'GET', '/v1/findings', bearer('bob-token'))).status).toBe(403);
      const unseen = await raw(api, 'GET', '/v1/status', bearer('carol-token'));
      expect(unseen.status).toBe(503);
      expect(unseen.headers['retry-after']).toBe('10');
      const e = JSON.parse(unseen.body).error;
      expect(e.code).toBe('AUTH_UNAVAILABLE');
      expect(e.message).toMatch(/unreachable \(ECONNREFUSED\)/);
      // A path alice was never checked for is unseen too.
      expect((await raw(api, 'GET', '/v1/findings/fedcba9876543210', bearer('alice-token'))).status).toBe(503);
      // Past auth.staleSeconds even a cached allow no longer applies.
      clock += 600_000;
      expect((await raw(api, 'GET', '/v1/status', bearer('alice-token'))).status).toBe(503);
    } finally {
      await fake.start();
    }
    expect((await raw(api, 'GET', '/v1/status', bearer('carol-token'))).status).toBe(200);
  });

  it('an agent not allowed to review tokens serves nobody (503 naming system:auth-delegator)', async () => {
    fake.forbidReviews();
    try {
      fake.users.set('frank-token', { username: 'frank@example.com', groups: ['site-ops'] });
      const r = await raw(api, 'GET', '/v1/status', bearer('frank-token'));
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).error.message).toContain('system:auth-delegator');
    } finally {
      fake.forbidReviews(false);
    }
  });
});

describe('an API server that accepts connections and never answers', () => {
  it('costs a caller at most auth.reviewTimeoutSeconds, then 503', async () => {
    const { createServer } = await import('node:net');
    const held: import('node:net').Socket[] = [];
    const silent = createServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const fake = await FakeApiServer.create();
    const path = fake.writeKubeconfig(join(tempDir(), 'kubeconfig'));
    await fake.close();
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    kc.clusters = kc.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}` }));
    const api = await serveApi({ access: { authenticator: new KubeReviewer(kc, { timeoutMs: 400 }) } });
    try {
      const t0 = Date.now();
      const r = await raw(api, 'GET', '/v1/status', bearer('any'));
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).error.message).toContain('unreachable (timeout)');
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      await api.close();
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});

describe('static token file (standalone and air-gapped sites)', () => {
  it('serves the holder of a listed token and nobody else; the file holds only hashes', async () => {
    const file = join(tempDir(), 'tokens');
    const token = createToken(file, 'site-admin');
    createToken(file, 'backup-job');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = (await import('node:fs')).readFileSync(file, 'utf8');
    expect(text).not.toContain(token);
    expect(text).toMatch(/^[0-9a-f]{64} {2}site-admin\n[0-9a-f]{64} {2}backup-job\n$/);
    expect(() => createToken(file, 'site-admin')).toThrow(TokenFileError);

    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)) } });
    try {
      expect((await raw(api, 'GET', '/v1/status', bearer(token))).status).toBe(200);
      expect((await raw(api, 'GET', '/metrics', bearer(token))).status).toBe(200);
      expect((await raw(api, 'GET', '/v1/status', bearer(`${token}x`))).status).toBe(401);
      expect((await raw(api, 'GET', '/v1/status')).status).toBe(401);
    } finally {
      await api.close();
    }
  });

  it('limits a scoped token to what its roles grant (the same rules as the shipped ClusterRoles)', async () => {
    const file = join(tempDir(), 'tokens');
    const reader = createToken(file, 'dashboard', 'reader');
    const scraper = createToken(file, 'prometheus', 'metrics');
    const both = createToken(file, 'assistant', 'reader,model-user');
    expect((await import('node:fs')).readFileSync(file, 'utf8')).toMatch(/ dashboard reader\n.* prometheus metrics\n.* assistant reader,model-user\n$/s);
    expect(() => createToken(file, 'x', 'admin')).toThrow(/unknown scope "admin" \(allowed: all, reader, model-user, metrics/);
    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)) } });
    try {
      expect((await raw(api, 'GET', '/v1/findings', bearer(reader))).status).toBe(200);
      expect((await raw(api, 'GET', '/v1/status', bearer(reader))).status).toBe(200);
      const denied = await raw(api, 'GET', '/metrics', bearer(reader));
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body).error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('dashboard') });
      expect((await raw(api, 'POST', '/v1/chat/completions', { ...bearer(reader), 'content-type': 'application/json' }, '{}')).status).toBe(403);
      expect((await raw(api, 'GET', '/metrics', bearer(scraper))).status).toBe(200);
      expect((await raw(api, 'GET', '/v1/findings', bearer(scraper))).status).toBe(403);
      expect((await raw(api, 'GET', '/v1/models', bearer(both))).status).not.toBe(403);
      expect((await raw(api, 'GET', '/metrics', bearer(both))).status).toBe(403);
    } finally {
      await api.close();
    }
  });

  it('applies tokens added or revoked in the file without a restart; a broken edit keeps the previous tokens', async () => {
    const file = join(tempDir(), 'tokens');
    const first = createToken(file, 'first');
    let now = 0;
    const errors: string[] = [];
    const tokens = new StaticTokens(readTokenFile(file), { path: file, recheckMs: 5000, now: () => now, onReloadError: (e) => errors.push(e.message) });
    const second = createToken(file, 'second');
    expect((await tokens.authenticate(second)).ok).toBe(false); // not yet looked at again
    now += 5000;
    expect(await tokens.authenticate(second)).toMatchObject({ ok: true, identity: { name: 'second', via: 'token-file' } });
    // Revoke "first" by removing its line.
    const { readFileSync } = await import('node:fs');
    writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !l.endsWith(' first')).join('\n'));
    now += 5000;
    expect((await tokens.authenticate(first)).ok).toBe(false);
    writeFileSync(file, 'garbage\n');
    now += 5000;
    expect((await tokens.authenticate(second)).ok).toBe(true);
    expect(errors).toEqual([expect.stringContaining(':1: expected')]);
  });

  it('accepts lines written with sha256sum, and refuses a file others may write or a malformed one', () => {
    const dir = tempDir();
    const file = join(dir, 'tokens');
    writeFileSync(file, '# site tokens\n9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  ci-runner\n', { mode: 0o600 });
    const entries = readTokenFile(file);
    expect(entries.map((e) => e.name)).toEqual(['ci-runner']);
    chmodSync(file, 0o666);
    expect(() => readTokenFile(file)).toThrow(/writable by group or others/);
    writeFileSync(join(dir, 'bad'), 'not-a-hash alice\n', { mode: 0o600 });
    expect(() => readTokenFile(join(dir, 'bad'))).toThrow(/bad:1: expected/);
  });
});

describe('the node-local socket', () => {
  it('serves without a token, is 0600, and replaces a stale socket', async () => {
    const dir = tempDir();
    const socket = join(dir, 'nodesage.sock');
    // A stale socket file from a process that died without cleaning up.
    const { execFileSync } = await import('node:child_process');
    execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.exit(0))`]);
    expect(statSync(socket).isSocket()).toBe(true);

    const file = join(dir, 'tokens');
    createToken(file, 'someone');
    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)) }, socket });
    try {
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      const r = await raw({ socketPath: socket }, 'GET', '/v1/status');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).nodeName).toBe('edge-node-1');
      // The same request over TCP needs a token.
      expect((await raw(api, 'GET', '/v1/status')).status).toBe(401);
      // Path rules hold on the socket too.
      expect((await raw({ socketPath: socket }, 'GET', '/v1/../v1/status')).status).toBe(400);
    } finally {
      await api.close();
    }
    expect(() => statSync(socket)).toThrow();
  });
});

describe('configuration of access', () => {
  const saDir = () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), 't');
    return dir;
  };

  it('checks callers with the API server in cluster and kubeconfig modes, needs nothing in host mode on loopback', () => {
    const inCluster = loadConfig({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', NODE_NAME: 'n1' }, serviceAccountDir: saDir() });
    expect(inCluster.auth.mode).toBe('kubernetes');
    const kubeconfig = loadConfig({ env: { KUBECONFIG: '/etc/k.yaml', NODE_NAME: 'n1' }, serviceAccountDir: tempDir() });
    expect(kubeconfig.auth.mode).toBe('kubernetes');
    const host = loadConfig({ env: { NODE_NAME: 'n1' }, serviceAccountDir: tempDir() });
    expect(host.auth.mode).toBe('none');
    expect(() => assertListenProtected(host)).not.toThrow();
    const standalone = loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_STANDALONE: 'true', NODESAGE_AUTH_TOKEN_FILE: 'tokens' }, serviceAccountDir: saDir(), cwd: '/etc/nodesage' });
    expect(standalone.auth).toMatchObject({ mode: 'token-file', tokenFile: '/etc/nodesage/tokens' });
  });

  it('refuses contradictions with one line naming the key', () => {
    expect(() => loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_AUTH_MODE: 'token-file' }, serviceAccountDir: tempDir() })).toThrow(/NODESAGE_AUTH_MODE="token-file": token-file needs auth\.tokenFile/);
    expect(() => loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_AUTH_MODE: 'kubernetes' }, serviceAccountDir: tempDir() })).toThrow(/NODESAGE_AUTH_MODE.*needs the API server/);
    expect(() => loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_AUTH_MODE: 'open' }, serviceAccountDir: tempDir() })).toThrow(/one of kubernetes, token-file, none/);
    const wide = loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_LISTEN: '0.0.0.0:8877' }, serviceAccountDir: tempDir() });
    expect(() => assertListenProtected(wide)).toThrow(/^invalid configuration auth\.mode="none": listen 0\.0\.0\.0:8877 is reachable from other hosts/);
    const optedOut = loadConfig({ env: { NODE_NAME: 'n1', NODESAGE_LISTEN: '[::]:8877', NODESAGE_AUTH_ALLOW_UNAUTHENTICATED: '1' }, serviceAccountDir: tempDir() });
    expect(() => assertListenProtected(optedOut)).not.toThrow();
  });
});
