/**
 * The shipped model catalog: it parses under the schema the daemon and the
 * CLI use, its entries are consistent, and the README table is generated
 * from it (regenerate with `npm run catalog:readme`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CatalogError, parseCatalog, readCatalog } from '../daemon/models/catalog.js';
import { estimateMemory, type GgufSummary } from '../daemon/diagnoser/gguf-check.js';
import { withCatalogTable } from '../scripts/catalog-readme.ts';

const ROOT = join(import.meta.dirname, '..');
const text = readFileSync(join(ROOT, 'models/catalog.json'), 'utf8');

describe('models/catalog.json', () => {
  const models = parseCatalog(text, 'models/catalog.json');

  it('holds 6 to 8 models, each complete under the schema', () => {
    expect(models.length).toBeGreaterThanOrEqual(6);
    expect(models.length).toBeLessThanOrEqual(8);
    expect(readCatalog().map((m) => m.id)).toEqual(models.map((m) => m.id));
  });

  it('points every entry at a Hugging Face file of the same name', () => {
    for (const m of models) expect(m.url, m.id).toMatch(new RegExp(`^https://huggingface\\.co/[^/]+/[^/]+/resolve/main/${m.file.replace(/\./g, '\\.')}$`));
  });

  it('needs more RAM than the file size for every model, and more for more quality', () => {
    for (const m of models) expect(m.ram.mib * 1024 * 1024, m.id).toBeGreaterThan(m.sizeBytes);
    const measured = models.filter((m) => m.ram.basis === 'measured');
    expect(measured.length).toBeGreaterThanOrEqual(3);
    for (const m of measured) expect(m.speed?.basis, m.id).toBe('measured');
  });

  it("states the budget the daemon's own pre-load estimate needs, from each model's published shape", () => {
    // [blocks, KV heads, head width, vocabulary, feed-forward, embedding, output tied to the token embedding]
    // from each model's config.json. Qwen's own GGUF files store output.weight separately (the 0.5B Q8_0
    // file's 676 MB is 630M stored parameters, not the 494M of the tied model); the others are counted tied.
    const shapes: Record<string, [number, number, number, number, number, number, boolean]> = {
      'qwen2.5-0.5b-instruct-q4_k_m': [24, 2, 64, 151936, 4864, 896, false],
      'qwen2.5-0.5b-instruct-q8_0': [24, 2, 64, 151936, 4864, 896, false],
      'llama-3.2-1b-instruct-q4_k_m': [16, 8, 64, 128256, 8192, 2048, true],
      'qwen2.5-1.5b-instruct-q4_k_m': [28, 2, 128, 151936, 8960, 1536, false],
      'qwen3-1.7b-q4_k_m': [28, 8, 128, 151936, 6144, 2048, true],
      'qwen2.5-3b-instruct-q4_k_m': [36, 2, 128, 151936, 11008, 2048, false],
      'llama-3.2-3b-instruct-q4_k_m': [28, 8, 128, 128256, 8192, 3072, true],
      'qwen2.5-7b-instruct-q4_k_m': [28, 4, 128, 152064, 18944, 3584, false],
    };
    for (const m of models) {
      const shape = shapes[m.id];
      expect(shape, `published shape of ${m.id}`).toBeDefined();
      const [blocks, kv, head, vocab, ff, emb, tied] = shape!;
      const summary = {
        sizeBytes: m.sizeBytes,
        kvHeadsTotal: blocks * kv,
        keyLength: head,
        valueLength: head,
        vocabSize: vocab,
        feedForwardLength: ff,
        embeddingLength: emb,
        tiedOutput: tied,
        // The token embedding's type is not published: counted as Q8_0, the largest a Q4_K_M file uses for it.
        tokenEmbeddingBytes: (vocab * emb * 34) / 32,
        amxPackingBytes: 0,
      } as GgufSummary;
      // Budgets are stated for CPUs without AMX (every edge CPU); AMX Xeons pack the weights larger.
      const mib = estimateMemory(summary, m.ram.contextSize, 512, { amx: false }).totalBytes / 1024 / 1024;
      expect(Math.abs(m.budgetMiB - mib), m.id).toBeLessThan(3);
    }
  });

  it('the README table is the one generated from the catalog', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(withCatalogTable(readme, models), 'run npm run catalog:readme').toBe(readme);
  });
});

describe('the catalog schema', () => {
  const good = JSON.parse(text) as { models: Record<string, unknown>[] };
  // JSON.stringify drops the undefined ones: a missing field.
  const variant = (change: Record<string, unknown>) => JSON.stringify({ ...good, models: [{ ...good.models[0], ...change }, ...good.models.slice(1)] });

  it.each([
    ['a file name with a path', { file: '../../etc/passwd.gguf' }, 'models.0.file'],
    ['pinned without a digest', { pinned: true }, 'pinned must be true exactly when sha256 is set'],
    ['a digest that is not hex', { sha256: 'abc' }, 'models.0.sha256'],
    ['a missing RAM figure', { ram: undefined }, 'models.0.ram'],
    ['an unknown field', { ramMiB: 3 }, 'models.0'],
    ['a RAM basis that is neither measured nor estimated', { ram: { mib: 1, basis: 'guessed', contextSize: 4096 } }, 'models.0.ram.basis'],
  ])('refuses %s', (_what, change, message) => {
    expect(() => parseCatalog(variant(change))).toThrow(CatalogError);
    expect(() => parseCatalog(variant(change))).toThrow(message);
  });

  it('refuses two entries with one id', () => {
    const c = structuredClone(good);
    c.models.push({ ...c.models[0]!, file: 'other.gguf' });
    expect(() => parseCatalog(JSON.stringify(c))).toThrow('ids must be unique');
  });
});
