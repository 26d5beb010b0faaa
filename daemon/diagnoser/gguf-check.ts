/**
 * Checks a GGUF model file before any native code opens it, and estimates
 * what it costs in memory. A half-copied file, a file of the wrong kind or a
 * model too big for the node must be refused with a reason an operator can
 * act on, not crash or swap the node in the middle of an incident.
 */
import { readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { readGgufFileInfo } from 'node-llama-cpp';
import { llamaCpp } from './llama-cpp.js';
import { sha256Of } from '../models/digest.js';
import {
  AdapterRefusedError,
  ModelArchitectureError,
  ModelChecksumError,
  ModelFileMissingError,
  ModelNotGgufError,
  ModelOverBudgetError,
  ModelTruncatedError,
} from './errors.js';

const GGUF_MAGIC = Buffer.from('GGUF', 'latin1');
const SUPPORTED_GGUF_VERSIONS = new Set([2, 3]);

/**
 * Architectures llama.cpp knows but that cannot answer a chat prompt: encoders
 * and embedding models, vision/audio projectors, speech, speculative draft heads.
 */
export const NON_GENERATIVE_ARCHITECTURES: ReadonlySet<string> = new Set([
  'bert',
  'modern-bert',
  'nomic-bert',
  'nomic-bert-moe',
  'neo-bert',
  'jina-bert-v2',
  'jina-bert-v3',
  'eurobert',
  't5encoder',
  'gemma-embedding',
  'llama-embed',
  'clip',
  'wavtokenizer-dec',
  'qwen3tts',
  'eagle3',
  'dflash',
]);

let knownArchitectures: Promise<ReadonlySet<string>> | undefined;

/** Architecture names the bundled node-llama-cpp / llama.cpp knows (`GgufArchitectureType`). */
export function llamaCppArchitectures(): Promise<ReadonlySet<string>> {
  // The typings declare this enum `const`, which verbatimModuleSyntax cannot
  // enumerate; the module exports it as a plain object at run time.
  knownArchitectures ??= llamaCpp().then((m) => {
    const mod = m as unknown as Record<string, unknown>;
    const values = Object.values((mod.GgufArchitectureType ?? {}) as Record<string, string>);
    return new Set(values.filter((a) => a !== '(unknown)'));
  });
  return knownArchitectures;
}

/** Why an architecture is refused, or null when llama.cpp can generate text with it. */
export function architectureProblem(architecture: string, known: ReadonlySet<string>): string | null {
  if (NON_GENERATIVE_ARCHITECTURES.has(architecture)) return 'does not generate text (embedding, vision, audio or draft model)';
  if (!known.has(architecture)) return 'is not supported by the bundled llama.cpp';
  return null;
}

// [elements per block, bytes per block] of ggml types (ggml/src/ggml.c type_traits),
// keyed by type name: node-llama-cpp's GgmlType gives the numbers, once it is loaded.
const TYPE_LAYOUT_BY_NAME: Readonly<Record<string, readonly [number, number]>> = {
  F32: [1, 4],
  F16: [1, 2],
  BF16: [1, 2],
  F64: [1, 8],
  I8: [1, 1],
  I16: [1, 2],
  I32: [1, 4],
  I64: [1, 8],
  Q4_0: [32, 18],
  Q4_1: [32, 20],
  Q5_0: [32, 22],
  Q5_1: [32, 24],
  Q8_0: [32, 34],
  Q8_1: [32, 36],
  IQ4_NL: [32, 18],
  MXFP4: [32, 17],
  Q2_K: [256, 84],
  Q3_K: [256, 110],
  Q4_K: [256, 144],
  Q5_K: [256, 176],
  Q6_K: [256, 210],
  Q8_K: [256, 292],
  IQ2_XXS: [256, 66],
  IQ2_XS: [256, 74],
  IQ2_S: [256, 82],
  IQ3_XXS: [256, 98],
  IQ3_S: [256, 110],
  IQ1_S: [256, 50],
  IQ1_M: [256, 56],
  IQ4_XS: [256, 136],
  TQ1_0: [256, 54],
  TQ2_0: [256, 66],
};

let typeLayout: Promise<Partial<Record<number, readonly [number, number]>>> | undefined;

/** Block layout by ggml type number. */
function ggmlTypeLayout(): Promise<Partial<Record<number, readonly [number, number]>>> {
  typeLayout ??= llamaCpp().then(({ GgmlType }) => {
    const ids = GgmlType as unknown as Record<string, number>;
    const out: Partial<Record<number, readonly [number, number]>> = {};
    for (const [name, layout] of Object.entries(TYPE_LAYOUT_BY_NAME)) {
      const id = ids[name];
      if (typeof id === 'number') out[id] = layout;
    }
    return out;
  });
  return typeLayout;
}

// Bytes added per quantisation block when llama.cpp packs a matrix for Intel
// AMX tiles (ggml/src/ggml-cpu/amx/mmq.cpp get_row_size: an int32
// compensation per block for the signed types, 4 bytes for Q4_K/Q5_K, 2 for
// IQ4_XS; qtype_has_amx_kernels lists the packed types). Measured: Q8_0 34 ->
// 38 bytes (AMX buffer 1,748 MiB for 1,565 MiB), Q4_K 144 -> 148. The types
// not measured are counted with the compensation: over rather than under.
const AMX_EXTRA_BY_NAME: Readonly<Record<string, number>> = {
  Q4_0: 4,
  Q4_1: 4,
  Q8_0: 4,
  Q4_K: 4,
  Q5_K: 4,
  Q6_K: 4,
  IQ4_XS: 6,
};

let amxExtra: Promise<Partial<Record<number, number>>> | undefined;

/** AMX packing bytes per block by ggml type number. */
function amxExtraByType(): Promise<Partial<Record<number, number>>> {
  amxExtra ??= llamaCpp().then(({ GgmlType }) => {
    const ids = GgmlType as unknown as Record<string, number>;
    const out: Partial<Record<number, number>> = {};
    for (const [name, extra] of Object.entries(AMX_EXTRA_BY_NAME)) {
      const id = ids[name];
      if (typeof id === 'number') out[id] = extra;
    }
    return out;
  });
  return amxExtra;
}

let amxCpu: boolean | undefined;

/**
 * Whether this CPU has AMX int8 tiles (`amx_int8` in /proc/cpuinfo, Intel
 * Xeon 4th generation and later): llama.cpp's CPU backend then packs the
 * matrix weights into its larger AMX layout.
 */
export function cpuHasAmx(): boolean {
  if (amxCpu === undefined) {
    try {
      amxCpu = process.arch === 'x64' && /^flags\s*:.*\bamx_int8\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      amxCpu = false;
    }
  }
  return amxCpu;
}

/** What the engine needs to know about a model file. */
export interface GgufSummary {
  path: string;
  sizeBytes: number;
  mtimeMs: number;
  /** GGUF format version (2 or 3). */
  version: number;
  /** `general.architecture`. */
  architecture: string;
  /** `general.name`, when set. */
  name: string | null;
  /** Context length the model was trained with. */
  trainedContextLength: number | null;
  blockCount: number;
  embeddingLength: number;
  headCount: number;
  /** KV heads summed over layers (per-layer arrays are allowed by GGUF). */
  kvHeadsTotal: number;
  /** Width of one key head. */
  keyLength: number;
  /** Width of one value head. */
  valueLength: number;
  feedForwardLength: number;
  vocabSize: number;
  /** Parameter count summed over all tensors. */
  parameters: number;
  /** Bytes of tensor data (weights) in the file. */
  tensorDataBytes: number;
  tensorCount: number;
  /** Bytes of `token_embd.weight`. */
  tokenEmbeddingBytes: number;
  /** True when there is no `output.weight`: the token embedding doubles as the output matrix. */
  tiedOutput: boolean;
  /**
   * Bytes the matrix weights grow by when llama.cpp packs them for Intel AMX
   * (the tied output matrix included), 0 when no tensor has an AMX layout.
   */
  amxPackingBytes: number;
}

function num(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return null;
}

/** Sums a GGUF value that is either one number for every layer or one per layer. */
function perLayerTotal(v: unknown, layers: number): number | null {
  if (Array.isArray(v)) {
    const values = v.map(num);
    return values.every((x) => x !== null) ? (values as number[]).reduce((a, b) => a + b, 0) : null;
  }
  const n = num(v);
  return n === null ? null : n * layers;
}

async function readHeader(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Reads and validates a GGUF file's header, metadata and tensor table without
 * loading weights. Throws a {@link ModelRefusedError} subclass when the file
 * is missing, not GGUF, truncated, or of an architecture that cannot chat.
 */
export async function inspectGguf(path: string): Promise<GgufSummary> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ModelFileMissingError(path, { cause: err });
  }
  if (!st.isFile()) throw new ModelFileMissingError(path);
  const head = await readHeader(path);
  if (head.length < 8 && GGUF_MAGIC.subarray(0, head.length).equals(head)) throw new ModelTruncatedError(path, 8, st.size);
  if (head.length < 8 || !head.subarray(0, 4).equals(GGUF_MAGIC)) {
    throw new ModelNotGgufError(path, `bad magic ${JSON.stringify(head.subarray(0, 4).toString('latin1'))} (expected "GGUF")`);
  }
  const version = head.readUInt32LE(4);
  if (!SUPPORTED_GGUF_VERSIONS.has(version)) throw new ModelNotGgufError(path, `GGUF version ${version} is not supported (2 or 3)`);

  let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    info = await (await llamaCpp()).readGgufFileInfo(path, { sourceType: 'filesystem', logWarnings: false, spliceSplitFiles: false });
  } catch (err) {
    // The metadata itself runs past the end of the file: a partial copy, not a corrupt format.
    if (err instanceof RangeError || /out of range|beyond|end of (the )?file|EOF/i.test(String(err))) {
      throw new ModelTruncatedError(path, st.size + 1, st.size);
    }
    throw new ModelNotGgufError(path, err instanceof Error ? err.message : String(err), { cause: err });
  }
  // The reader pads reads past the end of the file with zeros instead of failing,
  // so a partial header parses into nonsense: compare its end with the file size first.
  if (info.infoEndOffset === undefined || info.infoEndOffset > st.size) {
    throw new ModelTruncatedError(path, info.infoEndOffset ?? st.size + 1, st.size);
  }

  const architecture = String(info.metadata.general?.architecture ?? '');
  if (!architecture) throw new ModelNotGgufError(path, 'general.architecture is missing');
  const problem = architectureProblem(architecture, await llamaCppArchitectures());
  if (problem) throw new ModelArchitectureError(architecture, problem);

  const TYPE_LAYOUT = await ggmlTypeLayout();
  const AMX_EXTRA = await amxExtraByType();
  let dataEnd = info.infoEndOffset ?? 0;
  let tensorDataBytes = 0;
  let parameters = 0;
  let tokenEmbeddingBytes = 0;
  let tokenEmbeddingAmx = 0;
  let hasOutput = false;
  let amxPackingBytes = 0;
  for (const t of info.tensorInfo ?? []) {
    const elements = t.dimensions.reduce<number>((a, d) => a * Number(d), 1);
    parameters += elements;
    const layout = TYPE_LAYOUT[t.ggmlType];
    const start = Number(t.fileOffset);
    if (!layout) {
      dataEnd = Math.max(dataEnd, start);
      continue;
    }
    const blocks = Math.ceil(elements / layout[0]);
    const bytes = blocks * layout[1];
    tensorDataBytes += bytes;
    dataEnd = Math.max(dataEnd, start + bytes);
    const amx = t.dimensions.length === 2 ? blocks * (AMX_EXTRA[t.ggmlType] ?? 0) : 0;
    if (t.name === 'token_embd.weight') {
      tokenEmbeddingBytes = bytes;
      tokenEmbeddingAmx = amx;
    } else {
      amxPackingBytes += amx;
    }
    if (t.name === 'output.weight') hasOutput = true;
  }
  // The token embedding itself is read with get_rows and stays unpacked; only its copy as the output matrix is packed.
  if (!hasOutput) amxPackingBytes += tokenEmbeddingAmx;
  if (st.size < dataEnd) throw new ModelTruncatedError(path, dataEnd, st.size);

  const arch = info.architectureMetadata as Record<string, unknown> & { attention?: Record<string, unknown> };
  const blockCount = num(arch.block_count) ?? 0;
  const embeddingLength = num(arch.embedding_length) ?? 0;
  const headCount = num(Array.isArray(arch.attention?.head_count) ? arch.attention?.head_count[0] : arch.attention?.head_count) ?? 0;
  const kvHeadsTotal = perLayerTotal(arch.attention?.head_count_kv ?? arch.attention?.head_count, blockCount) ?? headCount * blockCount;
  const headWidth = headCount > 0 ? embeddingLength / headCount : 0;
  const tokens = info.metadata.tokenizer?.ggml?.tokens;
  return {
    path,
    sizeBytes: st.size,
    mtimeMs: st.mtimeMs,
    version,
    architecture,
    name: typeof info.metadata.general?.name === 'string' ? info.metadata.general.name : null,
    trainedContextLength: num(arch.context_length),
    blockCount,
    embeddingLength,
    headCount,
    kvHeadsTotal,
    keyLength: num(arch.attention?.key_length) ?? headWidth,
    valueLength: num(arch.attention?.value_length) ?? headWidth,
    feedForwardLength: num(Array.isArray(arch.feed_forward_length) ? arch.feed_forward_length[0] : arch.feed_forward_length) ?? 0,
    vocabSize: num(arch.vocab_size) ?? (Array.isArray(tokens) ? tokens.length : 0),
    parameters,
    tensorDataBytes,
    tensorCount: Number(info.tensorCount),
    tokenEmbeddingBytes,
    tiedOutput: !hasOutput,
    amxPackingBytes,
  };
}

/** Memory a loaded model is expected to take, by part. */
export interface MemoryEstimate {
  /**
   * The weights: the file size, since the CPU path reads them into RAM (no
   * mmap), plus the token embedding a second time when it doubles as the
   * output matrix: llama.cpp keeps one copy for the lookup and one in the
   * matrix-multiply buffer type whenever the CPU repacks that type
   * (llama-model-loader.cpp create_tensor, TENSOR_DUPLICATED); counted
   * always, since which types a CPU repacks is not known before loading.
   */
  weightsBytes: number;
  /** What the matrix weights grow by in llama.cpp's AMX layout; 0 on CPUs without AMX. */
  packingBytes: number;
  /** f16 K and V for every layer and every context cell. */
  kvCacheBytes: number;
  /** The part of the compute buffers a prompt batch really touches (see {@link estimateMemory}). */
  computeBytes: number;
  /** llama.cpp runtime, the tokenizer's tables, the native addon and allocator slack ({@link RUNTIME_OVERHEAD_BYTES}, {@link OVERHEAD_PER_VOCAB_ENTRY_BYTES}, {@link LOAD_SLACK_FRACTION}). */
  overheadBytes: number;
  totalBytes: number;
}

/** CPU facts the estimate depends on. */
export interface EstimateCpu {
  /** The CPU has AMX int8 tiles. Defaults to {@link cpuHasAmx}(). */
  amx?: boolean;
}

/**
 * Fixed part of the overhead: node-llama-cpp's modules and native addon,
 * ggml's threads and graph metadata, malloc slack. The tiny test model
 * (2,048-token vocabulary, 3 MiB of weights, KV cache and compute) peaked
 * 65-82 MiB above the process's RSS before load across runs, on Linux x64,
 * 2 cores (test/bench/RESULTS.md, "LLM memory: the pre-load estimate against
 * the measured peak").
 */
export const RUNTIME_OVERHEAD_BYTES = 80 * 1024 * 1024;

/**
 * Overhead per vocabulary entry: llama.cpp's tokenizer tables (token texts,
 * the text-to-id map, BPE merge ranks) and the GGUF metadata node-llama-cpp
 * and the pre-load check parse into JavaScript. Measured with Qwen2.5's
 * 151,936 entries on the 0.5B and 1.5B shapes: 290-316 MiB resident beyond
 * weights and KV cache after load, 300-325 MiB at the peak beyond those and
 * the compute estimate, against ~80 MiB for the tiny model: 1.69 KiB an
 * entry, rounded up.
 */
export const OVERHEAD_PER_VOCAB_ENTRY_BYTES = 1800;

/**
 * Allocator slack as a fraction of the weights: the peak of the same file
 * varied by up to 40 MiB between runs (2,435-2,476 MiB for the 1.5B Q8_0
 * shape, 1,460-1,487 MiB for its Q4_K form); 5% keeps the estimate above
 * the peak across runs.
 */
export const LOAD_SLACK_FRACTION = 0.05;

/**
 * Estimates the RAM a model costs the process at a context size, on CPU with
 * mmap off, flash attention on (node-llama-cpp's default "auto" turns it on
 * for CPU) and logits for one token per batch (node-llama-cpp asks for the
 * last token's only).
 *
 * llama.cpp reserves its compute buffer for the worst case of `batchSize`
 * tokens that all produce logits: batch x vocab x f32, 297 MiB for Qwen2.5's
 * vocabulary (llama-context.cpp graph_reserve(n_tokens, n_seqs, n_tokens)).
 * That memory is allocated but a real batch never touches the logits part,
 * so it never becomes resident and is not counted here: what a batch touches
 * is the feed-forward activations (gate, up and their product: 3 x ff), a
 * few embedding-wide tensors, the f16 attention mask (context x batch), the
 * activations quantised for the matrix products, and one row of logits in
 * the graph and in the output buffer. Measured on the 0.5B and 1.5B shapes,
 * the touched part did not grow with a context filled to 3,500 tokens.
 * node-llama-cpp's GgufInsights is not used: it counts the reserved buffers.
 */
export function estimateMemory(model: GgufSummary, contextSize: number, batchSize: number, cpu: EstimateCpu = {}): MemoryEstimate {
  const weightsBytes = model.sizeBytes + (model.tiedOutput ? model.tokenEmbeddingBytes : 0);
  const packingBytes = (cpu.amx ?? cpuHasAmx()) ? model.amxPackingBytes : 0;
  const kvCacheBytes = model.kvHeadsTotal * (model.keyLength + model.valueLength) * contextSize * 2;
  const ff = model.feedForwardLength;
  const computeBytes =
    batchSize * (3 * ff + 4 * model.embeddingLength) * 4 + contextSize * batchSize * 2 + Math.ceil((batchSize * ff * 34) / 32) + 2 * model.vocabSize * 4;
  const overheadBytes =
    RUNTIME_OVERHEAD_BYTES + model.vocabSize * OVERHEAD_PER_VOCAB_ENTRY_BYTES + Math.ceil((weightsBytes + packingBytes) * LOAD_SLACK_FRACTION);
  return {
    weightsBytes,
    packingBytes,
    kvCacheBytes,
    computeBytes,
    overheadBytes,
    totalBytes: weightsBytes + packingBytes + kvCacheBytes + computeBytes + overheadBytes,
  };
}

/** Throws {@link ModelOverBudgetError} when the estimate exceeds the budget. */
export function assertWithinBudget(estimate: MemoryEstimate, budgetBytes: number, contextSize: number): void {
  if (estimate.totalBytes <= budgetBytes) return;
  const m = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  throw new ModelOverBudgetError(
    estimate.totalBytes,
    budgetBytes,
    `weights ${m(estimate.weightsBytes)}${estimate.packingBytes > 0 ? ` + AMX packing ${m(estimate.packingBytes)}` : ''} + KV cache ${m(estimate.kvCacheBytes)} at ${contextSize} tokens + compute ${m(estimate.computeBytes)} + runtime ${m(estimate.overheadBytes)}`,
  );
}

const digestCache = new Map<string, string>();

/**
 * sha256 of a file, streamed. Cached per path + size + mtime: the check runs
 * on every (re)load and hashing 0.5-5 GB takes seconds to minutes on a small node.
 */
export async function sha256File(path: string, sizeBytes: number, mtimeMs: number): Promise<string> {
  const key = `${path}\0${sizeBytes}\0${mtimeMs}`;
  const cached = digestCache.get(key);
  if (cached) return cached;
  const hex = await sha256Of(path);
  digestCache.set(key, hex);
  return hex;
}

/** Throws {@link ModelChecksumError} unless the file's (model or adapter) sha256 equals `expected` (hex, any case). */
export async function assertSha256(model: Pick<GgufSummary, 'path' | 'sizeBytes' | 'mtimeMs'>, expected: string): Promise<void> {
  const actual = await sha256File(model.path, model.sizeBytes, model.mtimeMs);
  if (actual !== expected.trim().toLowerCase()) throw new ModelChecksumError(model.path, expected.trim().toLowerCase(), actual);
}

/** What the engine needs to know about a LoRA adapter file. */
export interface AdapterSummary {
  path: string;
  sizeBytes: number;
  mtimeMs: number;
  /** `adapter.lora.alpha`, when set. */
  alpha: number | null;
  tensorCount: number;
}

/**
 * Checks a LoRA adapter before llama.cpp opens it: a GGUF file with
 * `general.type = adapter` and `adapter.type = lora`, made for the model's
 * architecture (llama.cpp refuses the others, llama-adapter.cpp). Throws
 * {@link AdapterRefusedError}.
 */
export async function inspectAdapter(path: string, modelArchitecture: string): Promise<AdapterSummary> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    throw new AdapterRefusedError(path, 'file not found', { cause: err });
  }
  const head = await readHeader(path);
  if (head.length < 4 || !head.subarray(0, 4).equals(GGUF_MAGIC)) throw new AdapterRefusedError(path, 'not a GGUF file');
  let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    info = await (await llamaCpp()).readGgufFileInfo(path, { sourceType: 'filesystem', logWarnings: false, spliceSplitFiles: false });
  } catch (err) {
    throw new AdapterRefusedError(path, err instanceof Error ? err.message : String(err), { cause: err });
  }
  if (info.infoEndOffset === undefined || info.infoEndOffset > st.size) throw new AdapterRefusedError(path, 'the file is truncated');
  const meta = info.metadata as unknown as { general?: { type?: unknown; architecture?: unknown }; adapter?: { type?: unknown; lora?: { alpha?: unknown } } };
  if (meta.general?.type !== 'adapter' || meta.adapter?.type !== 'lora') {
    throw new AdapterRefusedError(path, `not a LoRA adapter (general.type=${String(meta.general?.type)}, adapter.type=${String(meta.adapter?.type)})`);
  }
  if (meta.general?.architecture !== modelArchitecture) {
    throw new AdapterRefusedError(path, `made for architecture "${String(meta.general?.architecture)}", the model is "${modelArchitecture}"`);
  }
  return { path, sizeBytes: st.size, mtimeMs: st.mtimeMs, alpha: num(meta.adapter?.lora?.alpha), tensorCount: Number(info.tensorCount) };
}
