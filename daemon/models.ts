/**
 * `model` may name a catalog id instead of a file path. The id resolves to
 * the entry's file under `llm.modelsDir`, with the entry's sha256 when the
 * project has pinned one. Nothing is ever downloaded by the daemon: the file
 * must already be staged on the node (`nodesage model pull|import`, hostPath,
 * PVC or a model image).
 */
import { join } from 'node:path';
import { type CatalogModel, readCatalog } from './models/catalog.js';

export { type CatalogModel, readCatalog } from './models/catalog.js';

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
  return { path: join(modelsDir, entry.file), id: entry.id, sha256: entry.sha256 };
}
