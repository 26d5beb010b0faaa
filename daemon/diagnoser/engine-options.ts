/**
 * Validates and freezes the options of the LLM engine once, at construction:
 * a bad option is a TypeError naming it, before any file is read.
 */
import { basename } from 'node:path';
import type { LlmEngineOptions, LoraAdapterOption } from './engine-types.js';

/** The options with every default applied, frozen. */
export type ResolvedOptions = Readonly<Required<Omit<LlmEngineOptions, 'sha256' | 'threads' | 'logger' | 'loras'>>> & {
  readonly loras: readonly Readonly<Required<LoraAdapterOption>>[];
  readonly sha256: string | null;
  readonly threads: number | null;
};

const DEFAULT_IDLE_UNLOAD_MS = 600_000;
const DEFAULT_BATCH_SIZE = 512;

function fail(message: string): never {
  throw new TypeError(`LlmEngine options: ${message}`);
}

/** Checks `o` and applies the defaults; throws a TypeError naming the first bad option. */
export function resolveOptions(o: LlmEngineOptions): ResolvedOptions {
  if (typeof o.modelPath !== 'string' || o.modelPath === '') fail('modelPath is required');
  if (!(o.memoryBudgetBytes > 0)) fail('memoryBudgetBytes must be > 0');
  if (!Number.isInteger(o.contextSize) || o.contextSize < 256) fail('contextSize must be an integer >= 256');
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads > 0)) fail('threads must be a positive integer');
  const gpu = o.gpu ?? 'auto';
  if (gpu !== 'auto' && gpu !== 'cuda' && gpu !== 'vulkan' && gpu !== false) fail(`gpu must be 'auto', 'cuda', 'vulkan' or false`);
  const idleUnloadMs = o.idleUnloadMs ?? DEFAULT_IDLE_UNLOAD_MS;
  if (!(idleUnloadMs >= 0)) fail('idleUnloadMs must be >= 0');
  const batchSize = Math.min(o.batchSize ?? DEFAULT_BATCH_SIZE, o.contextSize);
  if (!Number.isInteger(batchSize) || batchSize < 1) fail('batchSize must be a positive integer');
  if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256.trim())) fail('sha256 must be 64 hex characters');
  const loras = (o.loras ?? []).map((l) => {
    if (typeof l.path !== 'string' || l.path === '') fail('every LoRA adapter needs a path');
    const scale = l.scale ?? 1;
    if (!Number.isFinite(scale)) fail('LoRA scale must be a number');
    if (l.sha256 && !/^[0-9a-fA-F]{64}$/.test(l.sha256.trim())) fail('LoRA sha256 must be 64 hex characters');
    return Object.freeze({ path: l.path, scale, sha256: l.sha256?.trim().toLowerCase() || null });
  });
  return Object.freeze({
    modelPath: o.modelPath,
    modelId: o.modelId ?? basename(o.modelPath).replace(/\.gguf$/i, ''),
    sha256: o.sha256?.trim().toLowerCase() ?? null,
    memoryBudgetBytes: o.memoryBudgetBytes,
    contextSize: o.contextSize,
    threads: o.threads ?? null,
    cgroupRoot: o.cgroupRoot ?? '/sys/fs/cgroup',
    gpu,
    gpuLayers: o.gpuLayers ?? 'auto',
    idleUnloadMs,
    batchSize,
    loras: Object.freeze(loras),
  });
}
