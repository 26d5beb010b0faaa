/**
 * Digests of model files. A file's expected sha256 comes from, in order: the
 * configuration (`llm.sha256`, `--sha256`), the catalog when the project has
 * pinned one, or the `<file>.sha256` sidecar that `model pull` / `model
 * import` write after verifying a transfer. The sidecar is in `sha256sum`
 * format, so `sha256sum -c model.gguf.sha256` checks it by hand too.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { CatalogModel } from './catalog.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** sha256 of a file, streamed (hex, lower case). */
export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Path of a model file's digest sidecar. */
export function sidecarPath(file: string): string {
  return `${file}.sha256`;
}

/** The digest in the text of a `<file>.sha256` sidecar (`sha256sum` format), or null when it holds none. */
export function parseSidecar(text: string): string | null {
  const hex = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  return HEX64.test(hex) ? hex : null;
}

/** The digest recorded next to a file, or null when there is none (or it is not a digest). */
export function readSidecar(file: string): string | null {
  const p = sidecarPath(file);
  return existsSync(p) ? parseSidecar(readFileSync(p, 'utf8')) : null;
}

/** Writes `<file>.sha256` atomically. */
export function writeSidecar(file: string, hex: string): void {
  const p = sidecarPath(file);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, `${hex}  ${basename(file)}\n`);
  renameSync(tmp, p);
}

/** Where an expected digest came from. */
export type DigestSource = 'config' | 'catalog' | 'sidecar';

/** An expected digest and its origin. */
export interface ExpectedDigest {
  sha256: string;
  source: DigestSource;
}

/**
 * The digest a model file must have: the configured one, else the catalog's
 * pinned one for that file name, else its sidecar; null when nothing is known.
 */
export function expectedDigest(file: string, configured: string | null | undefined, catalog: readonly CatalogModel[]): ExpectedDigest | null {
  if (configured) return { sha256: configured.trim().toLowerCase(), source: 'config' };
  const entry = catalog.find((m) => m.file === basename(file));
  if (entry?.sha256) return { sha256: entry.sha256, source: 'catalog' };
  const side = readSidecar(file);
  return side ? { sha256: side, source: 'sidecar' } : null;
}
