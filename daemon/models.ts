/**
 * The model catalog (models/catalog.json, shipped in the image): `model` may
 * name a catalog id instead of a file path. The id resolves to the entry's
 * file under `llm.modelsDir`, and the entry's sha256, when the project has
 * verified one, is checked unless the configuration gives its own. Nothing
 * is ever downloaded: the file must already be staged on the node.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One model of the catalog, as far as the daemon uses it. */
export interface CatalogModel {
  id: string;
  file: string;
  sha256: string | null;
  ramMiB?: number;
}

// daemon/models.ts runs from daemon/ (tests) or dist/daemon/ (built): the catalog is at the package root.
const CANDIDATES = ['../models/catalog.json', '../../models/catalog.json'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

/** The catalog's models; empty when the file is not there (a build without models/). */
export function readCatalog(path?: string): CatalogModel[] {
  const file = path ?? CANDIDATES.find((p) => existsSync(p));
  if (!file || !existsSync(file)) return [];
  const data = JSON.parse(readFileSync(file, 'utf8')) as { models?: unknown };
  if (!Array.isArray(data.models)) return [];
  return data.models.filter(
    (m): m is CatalogModel =>
      typeof m === 'object' && m !== null && typeof (m as CatalogModel).id === 'string' && typeof (m as CatalogModel).file === 'string' && /^[^/\\]+\.gguf$/i.test((m as CatalogModel).file),
  );
}

/** True when `model` names a catalog id rather than a file: no path separator and no `.gguf` ending. */
export function looksLikeId(model: string): boolean {
  return !/[/\\]/.test(model) && !/\.gguf$/i.test(model);
}

/** What `model` resolves to: a catalog entry under `modelsDir`, or the path itself; null for an unknown id. */
export function resolveModel(
  model: string,
  modelsDir: string,
  catalog: readonly CatalogModel[] = readCatalog(),
): { path: string; id: string | null; sha256: string | null } | null {
  if (!looksLikeId(model)) return { path: model, id: null, sha256: null };
  const entry = catalog.find((m) => m.id === model);
  if (!entry) return null;
  return { path: join(modelsDir, entry.file), id: entry.id, sha256: entry.sha256 && /^[0-9a-f]{64}$/.test(entry.sha256) ? entry.sha256 : null };
}
