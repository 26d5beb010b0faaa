/**
 * `nodesage model …` as an operator runs it: the built CLI against a loopback
 * HTTP server that serves the generated tiny model (ranges included, and a
 * connection cut in the middle on request), and real files in a models folder.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Status } from '../daemon/core/contract.js';
import { readCatalog } from '../daemon/models/catalog.js';
import { type DaemonProcess, getJson, startDaemon, waitFor } from './helpers/daemon-process.js';
import { createTestCa } from './harness/tls.js';
import { ensureTestModel, ensureTinyModel } from './helpers/test-model.js';

const CLI = join(import.meta.dirname, '..', 'dist/daemon/cli.js');
let model: Buffer;
let digest: string;
let server: Server;
let base: string;
const seen: { url: string; range: string | undefined; via: string | undefined }[] = [];
/** Paths whose plain GETs (no Range) are cut after this many bytes; range requests are served whole. */
const cutPlain = new Map<string, number>();
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'nodesage-models-'));
  dirs.push(d);
  return d;
}

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'model', ...args],
      { env: { PATH: process.env.PATH, NODE_NAME: 'test-node', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function serve(req: IncomingMessage, res: import('node:http').ServerResponse): void {
  seen.push({ url: req.url ?? '', range: req.headers.range, via: req.headers['x-test-via'] as string | undefined });
  if (!req.url?.endsWith('.gguf')) {
    res.writeHead(404).end();
    return;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    res.writeHead(206, { 'content-length': model.length - start, 'content-range': `bytes ${start}-${model.length - 1}/${model.length}` });
    res.end(model.subarray(start));
    return;
  }
  const cut = cutPlain.get(req.url);
  res.writeHead(200, { 'content-length': model.length });
  if (cut !== undefined) {
    // Give the client a moment to write what arrived before the connection drops.
    res.write(model.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 200));
    return;
  }
  res.end(model);
}

beforeAll(async () => {
  model = readFileSync(await ensureTinyModel());
  digest = createHash('sha256').update(model).digest('hex');
  server = createServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('model pull', () => {
  it('downloads, verifies against --sha256, renames into place and records the digest', async () => {
    const dir = tempDir();
    const r = await run(['pull', `${base}/org/repo/resolve/main/tiny.gguf`, '--sha256', digest], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.stderr).not.toMatch(/\r/); // no progress bar without a terminal
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`sha256 ${digest}`);
    expect(r.stdout).toContain('verified against --sha256');
    expect(readFileSync(join(dir, 'tiny.gguf')).equals(model)).toBe(true);
    expect(readFileSync(join(dir, 'tiny.gguf.sha256'), 'utf8')).toBe(`${digest}  tiny.gguf\n`);
    expect(readdirSync(dir).sort()).toEqual(['tiny.gguf', 'tiny.gguf.sha256']);
    // Pulling again checks what is there and downloads nothing.
    const requests = seen.length;
    const again = await run(['pull', `${base}/org/repo/resolve/main/tiny.gguf`], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`already staged, sha256 ${digest} verified`);
    expect(seen.length).toBe(requests);
  });

  it('continues a transfer cut halfway with a range request, and the result verifies', async () => {
    const dir = tempDir();
    const half = Math.floor(model.length / 2);
    cutPlain.set('/cut/tiny.gguf', half);
    const r = await run(['pull', `${base}/cut/tiny.gguf`, '--sha256', digest, '--retry-delay-ms', '10'], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    const ranges = seen.filter((s) => s.url === '/cut/tiny.gguf').map((s) => s.range);
    // Plain GETs are cut until some bytes reached the partial file (on a busy machine the first cut may leave none);
    // then one range request continues from what arrived (at most what the server sent).
    expect(ranges.length).toBeGreaterThanOrEqual(2);
    expect(ranges.slice(0, -1).every((x) => x === undefined)).toBe(true);
    const from = Number(/^bytes=(\d+)-$/.exec(ranges.at(-1) ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(half);
    expect(r.stderr).toContain(`resuming at ${from} bytes of ${model.length}`);
    expect(r.stdout).toContain('resumed 1 time(s)');
    expect(createHash('sha256').update(readFileSync(join(dir, 'tiny.gguf'))).digest('hex')).toBe(digest);
  });

  it('resumes a partial file left by an earlier run', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tiny.gguf.partial'), model.subarray(0, 1000));
    const r = await run(['pull', `${base}/again/tiny.gguf`, '--sha256', digest], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(seen.filter((s) => s.url === '/again/tiny.gguf').map((s) => s.range)).toEqual(['bytes=1000-']);
    expect(readFileSync(join(dir, 'tiny.gguf')).equals(model)).toBe(true);
  });

  it('deletes the partial file and exits non-zero with both digests when the digest is wrong', async () => {
    const dir = tempDir();
    const wrong = 'f'.repeat(64);
    const r = await run(['pull', `${base}/wrong/tiny.gguf`, '--sha256', wrong], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`expected ${wrong}`);
    expect(r.stderr).toContain(`got ${digest}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('pulls a catalog id from a site mirror and says the digest was not pinned', async () => {
    const dir = tempDir();
    const entry = readCatalog().find((m) => !m.pinned)!;
    const r = await run(['pull', entry.id, '--mirror', `${base}/hf-mirror`], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(seen.at(-1)?.url).toBe(`/hf-mirror${new URL(entry.url).pathname}`);
    expect(r.stdout).toContain('not pinned');
    expect(readFileSync(join(dir, `${entry.file}.sha256`), 'utf8')).toContain(digest);
    // The daemon-side check: verify finds the recorded digest and accepts the file.
    const v = await run(['verify', entry.id], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('matches the digest recorded at pull/import');
    // A changed file is caught.
    const bytes = readFileSync(join(dir, entry.file));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    writeFileSync(join(dir, entry.file), bytes);
    const bad = await run(['verify', entry.id], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`expected ${digest}`);
    const rm = await run(['rm', entry.id], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(rm.code, rm.stderr).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('goes through HTTP_PROXY when it is set', async () => {
    const dir = tempDir();
    // A forward proxy: it receives the absolute URL and fetches it.
    const proxy = createServer(async (req, res) => {
      const upstream = await fetch(req.url!, { headers: { 'x-test-via': 'proxy' } });
      res.writeHead(upstream.status, { 'content-length': upstream.headers.get('content-length') ?? '' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const port = (proxy.address() as AddressInfo).port;
      const r = await run(['pull', `${base}/proxied/tiny.gguf`, '--sha256', digest], { NODESAGE_LLM_MODELS_DIR: dir, HTTP_PROXY: `http://127.0.0.1:${port}` });
      expect(r.code, r.stderr).toBe(0);
      expect(seen.filter((s) => s.url === '/proxied/tiny.gguf').map((s) => s.via)).toEqual(['proxy']);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});

describe('model pull through HTTPS_PROXY', () => {
  it('tunnels an https download through the proxy with CONNECT', async () => {
    const ca = createTestCa();
    const pair = ca.issue();
    const caFile = join(tempDir(), 'ca.crt');
    writeFileSync(caFile, ca.certPem);
    const origin = createHttpsServer({ key: pair.keyPem, cert: pair.certPem }, serve);
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const tunnels: string[] = [];
    const proxy = createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const target = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
      const dir = tempDir();
      const r = await run(['pull', `https://${target}/secure/tiny.gguf`, '--sha256', digest], {
        NODESAGE_LLM_MODELS_DIR: dir,
        HTTPS_PROXY: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        NODE_EXTRA_CA_CERTS: caFile,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(tunnels).toEqual([target]);
      expect(readFileSync(join(dir, 'tiny.gguf')).equals(model)).toBe(true);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
      await new Promise<void>((r) => origin.close(() => r()));
    }
  });
});

describe('model import', () => {
  it('imports every model of a tarball, checked against its SHA256SUMS', async () => {
    const media = tempDir();
    mkdirSync(join(media, 'models'));
    copyFileSync(await ensureTinyModel(), join(media, 'models', 'tiny.gguf'));
    writeFileSync(join(media, 'SHA256SUMS'), `${digest}  models/tiny.gguf\n`);
    const tarball = join(media, 'models.tar.gz');
    await new Promise<void>((res, rej) => execFile('tar', ['-czf', tarball, '-C', media, 'models', 'SHA256SUMS'], (e) => (e ? rej(e) : res())));
    const dir = tempDir();
    const r = await run(['import', tarball], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`sha256 ${digest}, verified against SHA256SUMS`);
    expect(readFileSync(join(dir, 'tiny.gguf')).equals(model)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['tiny.gguf', 'tiny.gguf.sha256']);
  });

  it('keeps nothing when a tarball file does not match its SHA256SUMS', async () => {
    const media = tempDir();
    copyFileSync(await ensureTinyModel(), join(media, 'tiny.gguf'));
    writeFileSync(join(media, 'SHA256SUMS'), `${'0'.repeat(64)}  tiny.gguf\n`);
    const tarball = join(media, 'models.tar');
    await new Promise<void>((res, rej) => execFile('tar', ['-cf', tarball, '-C', media, 'tiny.gguf', 'SHA256SUMS'], (e) => (e ? rej(e) : res())));
    const dir = tempDir();
    const r = await run(['import', tarball], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nothing was imported');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('imports a single GGUF file with --sha256 and refuses a file that is not GGUF', async () => {
    const dir = tempDir();
    const ok = await run(['import', await ensureTinyModel(), '--sha256', digest], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('verified against --sha256');
    const media = tempDir();
    writeFileSync(join(media, 'fake.gguf'), '<html>proxy error</html>');
    const bad = await run(['import', join(media, 'fake.gguf')], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('not a GGUF file');
    expect(existsSync(join(dir, 'fake.gguf'))).toBe(false);
  });
});

describe('model select', () => {
  const select = async (memoryMb: number, cpus: number) => {
    const r = await run(['select', '--json', '--memory-mb', String(memoryMb), '--cpus', String(cpus)]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { chosen: string | null; node: { memoryMiB: number; memorySource: string }; candidates: { id: string; chosen: boolean; reason: string }[] };
  };

  it('picks a different model for 1, 4 and 16 GiB, and says why for every candidate', async () => {
    const catalog = readCatalog();
    // What select compares with the budget: resident memory or the daemon's pre-load estimate, whichever is larger.
    const need = (m: (typeof catalog)[number]) => Math.max(m.ram.mib, m.budgetMiB);
    const picks = [];
    for (const gib of [1, 4, 16]) {
      const s = await select(gib * 1024, 8);
      expect(s.node).toMatchObject({ memoryMiB: gib * 1024, memorySource: '--memory-mb' });
      expect(s.candidates.map((c) => c.id).sort()).toEqual(catalog.map((m) => m.id).sort());
      const chosen = catalog.find((m) => m.id === s.chosen)!;
      expect(need(chosen)).toBeLessThanOrEqual(gib * 1024);
      // Nothing that fits explains better.
      expect(catalog.filter((m) => need(m) <= gib * 1024 && m.quality > chosen.quality)).toEqual([]);
      for (const c of s.candidates.filter((x) => !x.chosen)) {
        const m = catalog.find((x) => x.id === c.id)!;
        expect(c.reason).toMatch(need(m) > gib * 1024 ? `needs ${need(m)} MiB` : `${s.chosen} explains better`);
      }
      picks.push(s.chosen);
    }
    expect(new Set(picks).size).toBe(3);
    expect(picks[0]).toBe('qwen2.5-0.5b-instruct-q4_k_m');
  });

  it('leaves out a model the CPUs cannot run in time, and says so', async () => {
    const s = await select(16 * 1024, 2);
    const big = readCatalog().filter((m) => m.minCpus > 2);
    expect(big.length).toBeGreaterThan(0);
    for (const m of big) expect(s.candidates.find((c) => c.id === m.id)?.reason).toContain(`needs ${m.minCpus} CPUs`);
    expect(big.map((m) => m.id)).not.toContain(s.chosen);
  });

  it('prints a line per candidate as text', async () => {
    const r = await run(['select', '--memory-mb', '512', '--cpus', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('chosen: none fits');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(readCatalog().length);
  });
});

describe('model list', () => {
  it('--json prints every catalog entry complete, with what is staged', async () => {
    const dir = tempDir();
    const entry = readCatalog()[0]!;
    copyFileSync(await ensureTinyModel(), join(dir, entry.file));
    const r = await run(['list', '--json'], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { modelsDir: string; models: Record<string, unknown>[] };
    const catalog = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'models/catalog.json'), 'utf8')) as { models: Record<string, unknown>[] };
    expect(body.models.map(({ staged: _, ...m }) => m)).toEqual(catalog.models);
    expect(body.models[0]!.staged).toEqual({ path: join(dir, entry.file), sizeBytes: model.length, recordedSha256: null, digest: 'none' });
    expect(body.models.slice(1).every((m) => m.staged === null)).toBe(true);
  });
});

describe('the daemon verifies a staged model before loading it', () => {
  let daemon: DaemonProcess | undefined;
  afterEach(async () => {
    await daemon?.kill('SIGKILL');
    daemon = undefined;
  });

  it.each([
    ['matches', () => digest, 'none'],
    ['does not match', () => 'e'.repeat(64), 'refused'],
  ])('a catalog id whose sidecar %s', async (_what, sidecar, state) => {
    const dir = tempDir();
    const entry = readCatalog().find((m) => !m.pinned)!;
    copyFileSync(await ensureTinyModel(), join(dir, entry.file));
    writeFileSync(join(dir, `${entry.file}.sha256`), `${sidecar()}  ${entry.file}\n`);
    daemon = await startDaemon({ env: { NODESAGE_DATA_DIR: join(dir, 'data'), NODESAGE_MODEL: entry.id, NODESAGE_LLM_MODELS_DIR: dir } });
    // The file is checked at start; a refusal shows at once.
    const status = await waitFor(async () => {
      const s = (await getJson<Status>(`${daemon!.url}/v1/status`)).body;
      // A file that passes the check (digest included) is logged as checked; one that fails is refused.
      const settled = state === 'none' ? daemon!.stdout().includes('model checked; loads on first use') : s.model.state === 'refused';
      return settled ? s : null;
    });
    expect(status.model).toMatchObject({ state, sha256: sidecar(), sha256Source: 'sidecar' });
    if (state === 'refused') expect(status.model.reason).toContain(`has sha256 ${digest}, expected ${sidecar()}`);
  }, 60_000);
});

describe('model select with a staged file', () => {
  it('judges it by the estimate the daemon applies before loading, not only the catalog figure', async () => {
    const entry = readCatalog().find((m) => m.id === 'qwen2.5-0.5b-instruct-q4_k_m')!;
    // A large vocabulary makes the tokenizer tables (1.5 KiB an entry), and so the daemon's estimate, exceed the catalog's figure.
    const big = await ensureTestModel('big-vocab', { shape: { vocab: 600_000 } });
    const dir = tempDir();
    copyFileSync(big, join(dir, entry.file));
    const budget = String(Math.max(entry.ram.mib, entry.budgetMiB) + 10);
    const bare = await run(['select', '--json', '--memory-mb', budget, '--cpus', '1']);
    expect(JSON.parse(bare.stdout).chosen).toBe(entry.id);
    const r = await run(['select', '--json', '--memory-mb', budget, '--cpus', '1'], { NODESAGE_LLM_MODELS_DIR: dir });
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { chosen: string | null; candidates: { id: string; reason: string }[] };
    expect(s.chosen).toBeNull();
    const reason = s.candidates.find((c) => c.id === entry.id)!.reason;
    expect(reason).toMatch(/^needs \d+ MiB \(staged file, the daemon's pre-load estimate at 4096 tokens\)/);
    expect(Number(/needs (\d+)/.exec(reason)![1])).toBeGreaterThan(Number(budget));
  }, 120_000);
});
