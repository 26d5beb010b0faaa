/**
 * `nodesage model …`: the catalog and the models staged on this node. Every
 * command works offline except `pull`.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { failingTo } from '../cli/action.js';
import type { Config } from '../config.js';
import { type CatalogModel, readCatalog } from './catalog.js';
import { expectedDigest, readSidecar, sha256Of, sidecarPath } from './digest.js';
import { DigestMismatchError, ModelInputError } from './errors.js';
import { importModels } from './import.js';
import type { ProxySettings } from './pull.js';
import { nodeResources, selectModel } from './select.js';

/** What the model commands need from the CLI. */
export interface ModelCommandDeps {
  /** Adds --config and the other configuration flags. */
  addConfigOptions(cmd: Command): Command;
  /** Loads the configuration or exits 2. */
  config(opts: Record<string, unknown>): Readonly<Config>;
  /** Proxy settings from the environment (config.ts reads it). */
  proxy(): ProxySettings;
  /** Prints the error and exits non-zero. */
  fail(err: unknown): never;
}

/** A staged file as `model list` shows it. */
export interface StagedModel {
  path: string;
  sizeBytes: number;
  /** Digest recorded by pull/import (`<file>.sha256`), null when none. */
  recordedSha256: string | null;
  /** `pinned` when the catalog pins a digest and the recorded one equals it; `recorded` when only a sidecar exists; `mismatch` when they differ; `none`. */
  digest: 'pinned' | 'recorded' | 'mismatch' | 'none';
}

function staged(path: string, entry: CatalogModel | undefined): StagedModel | null {
  if (!existsSync(path)) return null;
  const recorded = readSidecar(path);
  const digest = entry?.sha256 ? (recorded === null ? 'none' : recorded === entry.sha256 ? 'pinned' : 'mismatch') : recorded ? 'recorded' : 'none';
  return { path, sizeBytes: statSync(path).size, recordedSha256: recorded, digest };
}

/** The catalog with each entry's staged file, plus GGUF files in the folder that the catalog does not list. */
export function listModels(modelsDir: string, catalog: readonly CatalogModel[]) {
  const known = new Set(catalog.map((m) => m.file));
  const others = existsSync(modelsDir)
    ? readdirSync(modelsDir)
        .filter((f) => /\.gguf$/i.test(f) && !known.has(f))
        .sort()
        .map((f) => staged(join(modelsDir, f), undefined)!)
    : [];
  return {
    modelsDir,
    models: catalog.map((m) => ({ ...m, staged: staged(join(modelsDir, m.file), m) })),
    others,
  };
}

const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;

function progressBar(out: NodeJS.WriteStream): ((received: number, total: number | null) => void) | undefined {
  if (!out.isTTY) return undefined;
  let last = 0;
  return (received, total) => {
    const now = Date.now();
    if (now - last < 200 && received !== total) return;
    last = now;
    const width = 30;
    const bar = total ? `[${'#'.repeat(Math.round((received / total) * width)).padEnd(width, '.')}] ${((received / total) * 100).toFixed(1)}%` : '';
    out.write(`\r${bar} ${(received / 1024 ** 2).toFixed(1)}${total ? ` / ${(total / 1024 ** 2).toFixed(1)}` : ''} MiB`);
    if (received === total) out.write('\n');
  };
}

/** Resolves an id or a path to a file under (or outside) the models folder. */
function target(idOrFile: string, modelsDir: string, catalog: readonly CatalogModel[]): { path: string; entry: CatalogModel | undefined } {
  const entry = catalog.find((m) => m.id === idOrFile);
  if (entry) return { path: join(modelsDir, entry.file), entry };
  const path = resolve(idOrFile);
  return { path, entry: catalog.find((m) => m.file === basename(path)) };
}

/** Adds `model list|pull|import|verify|select|rm` to the program. */
export function registerModelCommands(program: Command, deps: ModelCommandDeps): void {
  const act = failingTo((err) => deps.fail(err));
  const model = program.command('model').description('the model catalog and the models staged on this node (only `pull` uses the network)');
  const modelsDir = (opts: Record<string, unknown>) => resolve(deps.config(opts).llm.modelsDir);
  const out = (s: string) => process.stdout.write(s);

  deps
    .addConfigOptions(model.command('list').description('the catalog, and which models are staged in llm.modelsDir with a recorded digest'))
    .option('--json', 'print JSON: every catalog entry complete, with `staged`')
    .action(act((opts) => {
      const l = listModels(modelsDir(opts), readCatalog());
      if (opts.json) {
        out(`${JSON.stringify(l, null, 2)}\n`);
        return;
      }
      out(`models folder: ${l.modelsDir}\n`);
      for (const m of l.models) {
        const s = m.staged ? `staged ${gib(m.staged.sizeBytes)}, digest ${m.staged.digest}` : 'not staged';
        out(`${m.id.padEnd(32)} ${m.quantisation.padEnd(7)} ${`${m.ram.mib} MiB`.padStart(9)} ${`${m.minCpus}+ CPU`.padEnd(7)} ${m.pinned ? 'pinned  ' : 'unpinned'}  ${s}\n`);
      }
      for (const o of l.others) out(`${basename(o.path).padEnd(32)} (not in the catalog) staged ${gib(o.sizeBytes)}, digest ${o.digest}\n`);
    }));

  deps
    .addConfigOptions(model.command('pull').description('download a catalog model (or a GGUF URL) into llm.modelsDir, resumable, verified'))
    .argument('<id|url>', 'a catalog id or an https URL of a .gguf file')
    .option('--sha256 <hex>', 'expected digest (required to verify a model the catalog does not pin)')
    .option('--mirror <url>', 'site mirror base URL: replaces https://huggingface.co in the catalog URL')
    .option('--retries <n>', 'attempts after an interrupted transfer', '5')
    .addOption(new Option('--retry-delay-ms <ms>').default('1000').hideHelp())
    .action(act(async (what: string, opts) => {
      const { pullFile } = await import('./pull.js');
      const dir = modelsDir(opts);
      const catalog = readCatalog();
      const entry = catalog.find((m) => m.id === what);
      let url: string;
      let file: string;
      if (entry) {
        url = entry.url;
        file = entry.file;
      } else if (/^https?:\/\//.test(what)) {
        url = what;
        file = decodeURIComponent(new URL(what).pathname.split('/').pop() ?? '');
        if (!/^[^/\\]+\.gguf$/i.test(file)) throw new ModelInputError(`${what} does not name a .gguf file`);
      } else {
        throw new ModelInputError(`${what} is neither a catalog id (${catalog.map((m) => m.id).join(', ')}) nor a URL`);
      }
      if (opts.mirror) {
        const u = new URL(url);
        url = new URL(`${u.pathname.replace(/^\//, '')}${u.search}`, String(opts.mirror).replace(/\/?$/, '/')).href;
      }
      const given: string | undefined = opts.sha256?.toLowerCase();
      if (given !== undefined && !/^[0-9a-f]{64}$/.test(given)) throw new ModelInputError('--sha256 must be 64 hex characters');
      if (given && entry?.sha256 && given !== entry.sha256) throw new ModelInputError(`--sha256 differs from the catalog's pinned ${entry.sha256}`);
      const expected = given ?? entry?.sha256 ?? null;
      mkdirSync(dir, { recursive: true });
      const dest = join(dir, file);
      const known = expected ?? readSidecar(dest);
      if (known && existsSync(dest) && (await sha256Of(dest)) === known) {
        out(`${dest}: already staged, sha256 ${known} verified; nothing downloaded\n`);
        return;
      }
      process.stderr.write(`pulling ${url}\n`);
      const r = await pullFile({
        url,
        dest,
        sha256: expected,
        proxy: deps.proxy(),
        retries: Number(opts.retries),
        retryDelayMs: Number(opts.retryDelayMs),
        ...(progressBar(process.stderr) ? { onProgress: progressBar(process.stderr) } : {}),
        onNote: (line) => process.stderr.write(`${line}\n`),
      });
      out(`${r.path}: ${r.bytes} bytes, sha256 ${r.sha256}${r.resumed ? `, resumed ${r.resumed} time(s)` : ''}\n`);
      out(
        r.verified
          ? `verified against ${given ? '--sha256' : 'the catalog'}\n`
          : `not pinned: nothing to verify against; the digest is recorded in ${sidecarPath(r.path)} and checked before every load — compare it with the publisher's\n`,
      );
    }));

  deps
    .addConfigOptions(model.command('import').description('copy a GGUF file or a tarball of them (removable media) into llm.modelsDir, verified'))
    .argument('<file|tarball>', 'a .gguf file, or a .tar / .tar.gz holding .gguf files with SHA256SUMS or .sha256 files')
    .option('--sha256 <hex>', 'expected digest of a single file')
    .action(act(async (source: string, opts) => {
      const dir = modelsDir(opts);
      mkdirSync(dir, { recursive: true });
      for (const m of await importModels(resolve(source), { modelsDir: dir, catalog: readCatalog(), sha256: opts.sha256 ?? null })) {
        out(`${m.path}: ${m.bytes} bytes, sha256 ${m.sha256}, ${m.checkedAgainst ? `verified against ${m.checkedAgainst}` : 'no digest travelled with it: recorded, not verified'}${m.id ? ` (catalog id ${m.id})` : ''}\n`);
      }
    }));

  deps
    .addConfigOptions(model.command('verify').description('check a staged model (or LoRA adapter) against its pinned or recorded sha256'))
    .argument('<file|id>', 'a catalog id (its file under llm.modelsDir) or a file path')
    .action(act(async (what: string, opts) => {
      const { path } = target(what, modelsDir(opts), readCatalog());
      if (!existsSync(path)) throw new ModelInputError(`${path} does not exist`);
      const { inspectGguf } = await import('../diagnoser/gguf-check.js');
      const info = await inspectGguf(path);
      const actual = await sha256Of(path);
      const expected = expectedDigest(path, null, readCatalog());
      if (expected && expected.sha256 !== actual) throw new DigestMismatchError(path, expected.sha256, actual, `the ${expected.source} digest does not match: do not load this file`);
      out(`${path}: GGUF v${info.version} ${info.architecture}, ${info.sizeBytes} bytes, sha256 ${actual}\n`);
      out(
        expected?.source === 'catalog'
          ? 'ok: matches the digest the catalog pins\n'
          : expected
            ? `ok: matches the digest recorded at pull/import (${sidecarPath(path)}); the catalog does not pin this file\n`
            : 'no digest known: not verified (set llm.sha256, or import it with --sha256)\n',
      );
    }));

  deps
    .addConfigOptions(model.command('select').description("pick the best catalog model for this node's memory and CPUs, and say why"))
    .option('--json', 'print JSON')
    .option('--memory-mb <n>', 'plan for another node: the memory a model may use, MiB')
    .option('--cpus <n>', 'plan for another node: its CPU limit')
    .action(act(async (opts) => {
      const config = deps.config(opts);
      const num = (v: unknown, name: string) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new ModelInputError(`${name} must be a positive number, got ${String(v)}`);
        return n;
      };
      const node = nodeResources({
        budgetMB: config.llm.memoryBudgetMB,
        ...(opts.memoryMb !== undefined ? { memoryMB: num(opts.memoryMb, '--memory-mb') } : {}),
        ...(opts.cpus !== undefined ? { cpus: num(opts.cpus, '--cpus') } : {}),
      });
      // A staged file is judged by the estimate the daemon itself applies before loading it.
      const catalog = readCatalog();
      const needs = new Map<string, { mib: number; basis: string }>();
      const dir = resolve(config.llm.modelsDir);
      const staged = catalog.filter((m) => existsSync(join(dir, m.file)));
      if (staged.length > 0) {
        const { estimateMemory, inspectGguf } = await import('../diagnoser/gguf-check.js');
        for (const m of staged) {
          try {
            const g = await inspectGguf(join(dir, m.file));
            const ctx = Math.min(config.llm.contextSize, g.trainedContextLength ?? config.llm.contextSize);
            const mib = Math.ceil(estimateMemory(g, ctx, Math.min(512, ctx)).totalBytes / 1024 / 1024);
            needs.set(m.id, { mib: Math.max(mib, m.ram.mib), basis: `staged file, the daemon's pre-load estimate at ${ctx} tokens` });
          } catch {
            // An unusable file: `model verify` says why; select keeps the catalog's figure.
          }
        }
      }
      const s = selectModel(catalog, node, needs);
      if (opts.json) {
        out(`${JSON.stringify({ node: s.node, chosen: s.chosen?.id ?? null, candidates: s.candidates }, null, 2)}\n`);
        return;
      }
      out(`node: ${node.memoryMiB} MiB for a model (${node.memorySource}), ${node.cpus} CPUs (${node.cpuSource})\n`);
      out(s.chosen ? `chosen: ${s.chosen.id} — ${s.chosen.note}\n` : 'chosen: none fits — run rules-only, or point llm.backend at a site server\n');
      for (const c of s.candidates) out(`  ${c.chosen ? '*' : c.fits ? '+' : '-'} ${c.id.padEnd(32)} ${c.reason}\n`);
    }));

  deps
    .addConfigOptions(model.command('rm').description('delete a staged model (with its digest sidecar and any partial download) from llm.modelsDir'))
    .argument('<id|file>', 'a catalog id, or a file name in llm.modelsDir')
    .action(act((what: string, opts) => {
      const dir = modelsDir(opts);
      const entry = readCatalog().find((m) => m.id === what);
      const file = entry ? entry.file : basename(what);
      const path = join(dir, file);
      if (dirname(path) !== dir || !/\.gguf$/i.test(file)) throw new ModelInputError(`${what} is not a catalog id or a .gguf file in ${dir}`);
      const removed = [path, sidecarPath(path), `${path}.partial`].filter((p) => existsSync(p));
      if (removed.length === 0) throw new ModelInputError(`${path} is not staged`);
      for (const p of removed) rmSync(p, { force: true });
      out(`removed ${removed.join(', ')}\n`);
    }));
}
