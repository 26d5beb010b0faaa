/**
 * The model catalog (models/catalog.json, shipped in the image), parsed
 * against one schema: the daemon, `nodesage model` and the README table all
 * read it through here, and a test holds the shipped file to it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CodedError } from '../errors.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** One catalog entry. */
export const CatalogEntrySchema = z
  .object({
    /** Stable id: what `model` and `nodesage model pull` accept. */
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    /** File name under llm.modelsDir. */
    file: z.string().regex(/^[^/\\]+\.gguf$/i),
    /** Where the project knows the file is published (a Hugging Face resolve URL). */
    url: z.string().url().startsWith('https://'),
    /** Confirmed digest, or null when the project has not confirmed one. */
    sha256: z.string().regex(SHA256).nullable(),
    /** True exactly when sha256 is set. */
    pinned: z.boolean(),
    sizeBytes: z.number().int().positive(),
    licence: z.string().min(1),
    /** Context length the model was trained with. */
    contextLength: z.number().int().min(2048),
    quantisation: z.string().regex(/^(?:Q\d_[0-9A-Z_]+|F16|BF16)$/),
    /** Parameter count as published, e.g. "1.5B". */
    parameters: z.string().regex(/^\d+(?:\.\d+)?B$/),
    ram: z.object({
      /** Resident MiB at `contextSize` on CPU (weights + KV cache + compute + runtime). */
      mib: z.number().int().positive(),
      basis: z.enum(['measured', 'estimated']),
      contextSize: z.number().int().positive(),
    }),
    /** llm.memoryBudgetMB the daemon's pre-load estimate needs at ram.contextSize (gguf-check.ts estimateMemory). */
    budgetMiB: z.number().int().positive(),
    /** Throughput measured here, when it was. */
    speed: z
      .object({
        promptTokensPerSecond: z.number().positive(),
        generatedTokensPerSecond: z.number().positive(),
        cpus: z.number().int().positive(),
        basis: z.literal('measured'),
      })
      .optional(),
    /** Smallest CPU limit at which a diagnosis stays reasonably fast. */
    minCpus: z.number().int().min(1),
    /** Rank for `model select`: higher explains better. */
    quality: z.number().int().min(1),
    /** When to pick it, one line. */
    note: z.string().min(10).max(160),
  })
  .strict()
  .refine((m) => m.pinned === (m.sha256 !== null), { message: 'pinned must be true exactly when sha256 is set' });

/** One model of the catalog. */
export type CatalogModel = z.infer<typeof CatalogEntrySchema>;

/** The whole file. */
export const CatalogSchema = z
  .object({ $comment: z.string().optional(), models: z.array(CatalogEntrySchema).min(1) })
  .strict()
  .refine((c) => new Set(c.models.map((m) => m.id)).size === c.models.length, { message: 'ids must be unique' })
  .refine((c) => new Set(c.models.map((m) => m.file.toLowerCase())).size === c.models.length, { message: 'files must be unique' });

// This module runs from daemon/models/ (tests) or dist/daemon/models/ (built): the catalog is at the package root.
const CANDIDATES = ['../../models/catalog.json', '../../../models/catalog.json'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

/** Path of the shipped catalog, or null in a build without models/. */
export function catalogPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** A catalog file that does not match the schema. */
export class CatalogError extends CodedError {
  /** Stable error code. */
  readonly code = 'CATALOG_INVALID';
}

/** Parses a catalog text; throws {@link CatalogError} naming the first bad field. */
export function parseCatalog(text: string, from = 'catalog'): CatalogModel[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new CatalogError(`${from}: not JSON (${(err as Error).message})`);
  }
  const r = CatalogSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new CatalogError(`${from}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`);
  }
  return r.data.models;
}

/** The catalog's models; empty when there is no catalog file (a build without models/). */
export function readCatalog(path?: string): CatalogModel[] {
  const file = path ?? catalogPath();
  if (!file || !existsSync(file)) return [];
  return parseCatalog(readFileSync(file, 'utf8'), file);
}
