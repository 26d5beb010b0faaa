/**
 * Builds the CPU image's /app without Docker, by running the Dockerfile's own
 * build-stage scripts in a temporary folder (install from the lock file without
 * install scripts, compile, prune, keep one llama.cpp variant), lays out /app
 * as the runtime stage's COPY lines do, runs the runtime stage's load checks,
 * then starts the daemon with the DaemonSet's config file and asks /healthz.
 * Slow (npm install from the local cache and tsc): kept in its own file.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerignoreExcludes, parseDockerfile, readDockerignore, repoRoot, type Stage } from '../helpers/k8s-schema-deploy.js';

const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => dockerfile.stages.find((s) => s.name === name)!;
const build = stage('build');
const runtime = stage('runtime');

const work = mkdtempSync(join(tmpdir(), 'nodesage-image-'));
const src = join(work, 'src');
const app = join(work, 'app');
const log: string[] = [];

/**
 * The build stage's environment (its ENV lines and build args). Two shortcuts
 * keep this test near a minute: npm prefers its local cache, and the dev
 * dependencies (tsc and type packages) come from the checkout instead of a
 * second install (npm_config_omit=dev is `--omit=dev` for every npm command).
 */
function buildEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    npm_config_prefer_offline: 'true',
    npm_config_omit: 'dev',
    VARIANT: 'cpu',
    TARGETARCH: 'amd64',
    CUDA12_FALLBACK: '0',
  };
  for (const e of build.instructions.filter((i) => i.keyword === 'ENV')) {
    for (const m of e.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  return env;
}

function sh(script: string, cwd: string, env: NodeJS.ProcessEnv): string {
  const started = Date.now();
  try {
    const out = execFileSync('sh', ['-c', script], { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    log.push(`${((Date.now() - started) / 1000).toFixed(1)}s  ${script.slice(0, 70)}`);
    return out;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; status?: number };
    throw new Error(`Dockerfile step failed (exit ${e.status}): ${script.slice(0, 200)}\n${e.stderr?.slice(-3000) ?? ''}${e.stdout?.slice(-2000) ?? ''}`);
  }
}

/** Copies the build context: the repository minus what .dockerignore excludes. */
function copyContext(to: string): void {
  const patterns = readDockerignore(join(repoRoot, '.dockerignore'));
  const walk = (rel: string) => {
    for (const name of readdirSync(join(repoRoot, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(repoRoot, path));
      if (st.isDirectory()) {
        // A folder is walked when it or something under it may be included.
        if (dockerignoreExcludes(patterns, path) && !patterns.some((p) => p.startsWith(`!${path}`))) continue;
        walk(path);
      } else if (!dockerignoreExcludes(patterns, path)) {
        mkdirSync(join(to, rel), { recursive: true });
        cpSync(join(repoRoot, path), join(to, path));
      }
    }
  };
  walk('');
}

function sizeOf(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

let daemon: ChildProcess | undefined;

beforeAll(() => {
  const env = buildEnv();
  mkdirSync(src, { recursive: true });
  // Build stage, in its order: lock file -> install -> context -> build -> prune -> variant trim.
  const runs = build.instructions.filter((i) => i.keyword === 'RUN');
  const copies = build.instructions.filter((i) => i.keyword === 'COPY');
  expect(copies.map((c) => c.args.trim())).toEqual(['package.json package-lock.json ./', '. .']);
  cpSync(join(repoRoot, 'package.json'), join(src, 'package.json'));
  cpSync(join(repoRoot, 'package-lock.json'), join(src, 'package-lock.json'));
  expect(runs).toHaveLength(4);
  sh(runs[0]!.args, src, env);
  copyContext(src);
  // `npm run build` is tsc over the copied sources, then the copied finish step (the dashboard's files, which
  // the CLI's ask imports too, and the data files into dist/); tsc runs from the checkout's tsconfig so that it
  // finds the dev-only type packages this install omitted.
  expect(runs[1]!.args).toMatch(/^npm run build /);
  expect(JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).scripts.build).toBe('tsc -p tsconfig.json && node scripts/finish-build.ts');
  const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
  const buildCmd = `node ${tsc} -p ${join(repoRoot, 'tsconfig.json')} --outDir ${join(src, 'dist')} && node scripts/finish-build.ts`;
  sh(runs[1]!.args.replace('npm run build', buildCmd), src, env);
  for (const r of runs.slice(2)) sh(r.args, src, env);

  // Runtime stage: the COPY --from=build lines, relative to its WORKDIR.
  const workdir = runtime.instructions.find((i) => i.keyword === 'WORKDIR')!.args.trim();
  for (const c of runtime.instructions.filter((i) => i.keyword === 'COPY' && i.flags.from === 'build')) {
    const [from, to] = c.args.trim().split(/\s+/) as [string, string];
    if (!from.startsWith('/src/')) continue; // the node binary: this test runs on the same Node 24
    cpSync(join(src, relative('/src', from)), join(app, relative('.', to)), { recursive: true });
  }
  expect(workdir).toBe('/app');
}, 600_000);

afterAll(() => {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
  console.log(`runtime image reproduction:\n  ${log.join('\n  ')}`);
});

describe('the CPU image, reproduced without Docker', () => {
  it('keeps one llama.cpp binary package and fits the size budget', () => {
    const llamaPackages = readdirSync(join(app, 'node_modules/@node-llama-cpp'));
    expect(llamaPackages).toEqual(['linux-x64']);
    expect(existsSync(join(app, 'node_modules/node-llama-cpp/llama/gitRelease.bundle'))).toBe(false);
    expect(readdirSync(join(app, 'node_modules/better-sqlite3/prebuilds'))).toEqual(['linux-x64.node']);
    expect(existsSync(join(app, 'node_modules/typescript')), 'dev dependencies pruned').toBe(false);
    expect(existsSync(join(app, 'node_modules/vitest'))).toBe(false);
    const mib = (p: string) => sizeOf(p) / 2 ** 20;
    const modules = mib(join(app, 'node_modules'));
    const total = mib(app);
    log.push(`node_modules ${modules.toFixed(1)} MiB, /app ${total.toFixed(1)} MiB, node ${mib(process.execPath).toFixed(1)} MiB`);
    // With debian:bookworm-slim (~71 MiB), journalctl+tini (~24 MiB) and node (~121 MiB),
    // 130 MiB for /app keeps the CPU image under 350 MB.
    expect(total).toBeLessThan(130);
    // The dashboard's files come from the build's finish step; `nodesage ask` imports sse.js among them.
    for (const d of ['dist/daemon/cli.js', 'dist/daemon/api/web/index.html', 'dist/daemon/api/web/sse.js', 'package.json', 'daemon/rules', 'models']) {
      expect(existsSync(join(app, d)), d).toBe(true);
    }
  });

  it("passes the runtime stage's own load checks (better-sqlite3, llama.cpp CPU binary, CLI)", () => {
    const check = runtime.instructions.filter((i) => i.keyword === 'RUN').find((r) => r.args.includes('.smoke.mjs'));
    expect(check).toBeDefined();
    sh(check!.args.replaceAll('/app/', `${app}/`), app, { ...process.env, HOME: work, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' });
    const help = execFileSync(process.execPath, [join(app, 'dist/daemon/cli.js'), '--help'], { encoding: 'utf8' });
    expect(help).toMatch(/^\s+daemon\b/m);
  });

  it('starts the daemon with the DaemonSet config file, answers /healthz and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const state = join(work, 'state');
    const host = join(work, 'host');
    mkdirSync(join(host, 'var/log/pods'), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: work,
      NODE_ENV: 'production',
      NODE_NAME: 'edge-node-1',
      NODESAGE_CONFIG: join(repoRoot, 'daemonset/base/config.yaml'),
      // The pod listens on 0.0.0.0 and writes under /var/lib/nodesage, /host is its host view; here loopback and temp folders.
      NODESAGE_LISTEN: `127.0.0.1:${port}`,
      NODESAGE_DATA_DIR: state,
      NODESAGE_HOST_ROOT: host,
      NODESAGE_STANDALONE: 'true',
      // A catalog id resolves against the image's models/catalog.json; the file is not staged here.
      NODESAGE_MODEL: 'qwen2.5-0.5b-instruct-q8_0',
      NODESAGE_LLM_MODELS_DIR: join(work, 'models'),
    };
    const stderr: string[] = [];
    daemon = spawn(process.execPath, [join(app, 'dist/daemon/cli.js'), 'daemon'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
    daemon.stdout!.on('data', (d: Buffer) => stderr.push(d.toString()));
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    let health: Response | undefined;
    while (Date.now() < deadline && daemon.exitCode === null) {
      health = await fetch(`${base}/healthz`).catch(() => undefined);
      if (health) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(health?.status, stderr.join('')).toBe(200);
    const status = (await (await fetch(`${base}/v1/status`)).json()) as {
      mode: string;
      nodeName: string;
      store: { path: string };
      model: { state: string; id: string | null; reason: string | null };
    };
    expect(status.mode).toBe('host');
    // Rules-only until the file is staged, and /v1/status says where it is looked for.
    expect(status.model.id).toBe('qwen2.5-0.5b-instruct-q8_0');
    const deadlineModel = Date.now() + 10_000;
    let model = status.model;
    while (model.state !== 'refused' && Date.now() < deadlineModel) {
      await new Promise((r) => setTimeout(r, 200));
      model = ((await (await fetch(`${base}/v1/status`)).json()) as typeof status).model;
    }
    expect(model.state).toBe('refused');
    expect(model.reason).toContain(join(work, 'models', 'qwen2.5-0.5b-instruct-q8_0.gguf'));
    expect(status.nodeName).toBe('edge-node-1');
    expect(status.store.path.startsWith(state)).toBe(true);
    expect(statSync(status.store.path).size).toBeGreaterThan(0);

    const exited = new Promise<number | null>((resolve) => daemon!.once('exit', (code) => resolve(code)));
    daemon.kill('SIGTERM');
    expect(await exited, stderr.join('')).toBe(0);
  }, 60_000);
});
