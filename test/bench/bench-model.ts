/**
 * The benchmark model: the generator's `realistic` preset, the shape of
 * Qwen2.5-0.5B-Instruct Q8_0 (qwen2, 24 blocks of 896, 14 heads / 2 KV heads,
 * feed-forward 4864, separate output matrix: 630M stored parameters, ~676 MB)
 * with Qwen2.5's real tokenizer and random weights, generated once into
 * node_modules/.cache/nodesage-bench-models/ and reused by every later run.
 * The file name carries a hash of the generator source and the preset, so a
 * changed generator never serves a stale file.
 *
 *   node test/bench/bench-model.ts      prints the path, generating it if needed
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ModelShape, type PresetName, PRESETS, writeTestModel } from '../../scripts/make-test-model.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GENERATOR = join(ROOT, 'scripts/make-test-model.ts');

/** Folder of the cached benchmark models (ignored by git with node_modules). */
export const BENCH_MODEL_CACHE = join(ROOT, 'node_modules/.cache/nodesage-bench-models');

/** The benchmark model and how it was obtained. */
export interface BenchModel {
  path: string;
  bytes: number;
  /** Parameters, from the preset's shape. */
  parameters: number;
  shape: Readonly<ModelShape>;
  /** Milliseconds spent generating it in this run; null when it came from the cache. */
  generatedMs: number | null;
}

/**
 * Parameters the generator writes for a shape, counted as llama.cpp counts them
 * (every stored tensor): a separate output matrix counts twice the vocabulary
 * embedding, and qwen2 adds the q/k/v biases. Qwen2.5-0.5B's published 0.49B
 * counts the tied embedding once; its q8_0 file stores 630M.
 */
export function parametersOf(s: ModelShape): number {
  const headDim = s.embedding / s.heads;
  const kv = headDim * s.headsKv;
  const attn = s.embedding * s.embedding * 2 + s.embedding * kv * 2 + (s.architecture === 'qwen2' ? s.embedding + 2 * kv : 0);
  const ffn = s.embedding * s.feedForward * 3;
  const perBlock = attn + ffn + 2 * s.embedding;
  return s.vocab * s.embedding * (s.separateOutput ? 2 : 1) + s.blocks * perBlock + s.embedding;
}

/** Path of a preset's benchmark model (default `realistic`, changed by `override`), generating it on first use. */
export function ensureBenchModel(preset: PresetName = 'realistic', override: Partial<ModelShape> = {}): BenchModel {
  const shape: ModelShape = { ...PRESETS[preset], ...override };
  const hash = createHash('sha256').update(readFileSync(GENERATOR)).update(JSON.stringify(shape)).digest('hex').slice(0, 12);
  const path = join(BENCH_MODEL_CACHE, `${preset}-${hash}.gguf`);
  let generatedMs: number | null = null;
  if (!existsSync(path)) {
    const w = writeTestModel({ outFile: path, shape, seed: 1 });
    generatedMs = w.ms;
  }
  return { path, bytes: statSync(path).size, parameters: parametersOf(shape), shape, generatedMs };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const m = ensureBenchModel();
  console.log(
    `${m.path}: ${(m.bytes / 1e6).toFixed(1)} MB, ${(m.parameters / 1e6).toFixed(1)}M parameters, ` +
      (m.generatedMs === null ? 'cached' : `generated in ${(m.generatedMs / 1000).toFixed(1)} s`),
  );
}
