/**
 * `nodesage model import`: models from removable media, a GGUF file or a
 * tarball of them (`.tar`, `.tar.gz`), copied into llm.modelsDir and
 * verified on the way. The expected digest is, in order: `--sha256`, the
 * catalog's pinned one, a `SHA256SUMS` or `<file>.sha256` that travels with
 * the file (next to it, or in the tarball). A file with none is imported with
 * its digest recorded and the output says it was not verified against
 * anything; a mismatch keeps nothing.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CatalogModel } from './catalog.js';
import { parseSidecar, readSidecar, writeSidecar } from './digest.js';
import { DigestMismatchError, ModelInputError } from './errors.js';
import { readTar } from './tar.js';

/** Options of {@link importModels}. */
export interface ImportOptions {
  modelsDir: string;
  catalog: readonly CatalogModel[];
  /** Expected sha256 when importing one file. Defaults to none. */
  sha256?: string | null;
}

/** One imported file. */
export interface ImportedModel {
  file: string;
  path: string;
  sha256: string;
  bytes: number;
  /** What the digest was checked against; null when nothing was known (it is only recorded). */
  checkedAgainst: '--sha256' | 'catalog' | 'SHA256SUMS' | 'sidecar' | null;
  /** Catalog id of the file, when it is a catalog file. */
  id: string | null;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Parses `sha256sum` output: base name → digest. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$/.exec(line);
    if (m) out.set(basename(m[2]!), m[1]!.toLowerCase());
  }
  return out;
}

function isTarball(path: string): boolean {
  return /\.(?:tar|tar\.gz|tgz)$/i.test(path);
}

/** Copies `chunks` to `<dest>.partial`, hashing on the way; returns the digest, the size and whether it starts with the GGUF magic. */
async function copyHashed(chunks: AsyncIterable<Buffer>, dest: string): Promise<{ sha256: string; bytes: number; gguf: boolean }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let head = Buffer.alloc(0);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4)]);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(Readable.from(chunks), tap, createWriteStream(`${dest}.partial`));
  return { sha256: hash.digest('hex'), bytes, gguf: head.subarray(0, 4).toString('latin1') === 'GGUF' };
}

/** Imports a GGUF file or every GGUF of a tarball into `modelsDir`. */
export async function importModels(source: string, o: ImportOptions): Promise<ImportedModel[]> {
  if (!existsSync(source)) throw new ModelInputError(`${source} does not exist`);
  const given = o.sha256?.trim().toLowerCase() ?? null;
  if (given !== null && !HEX64.test(given)) throw new ModelInputError('--sha256 must be 64 hex characters');
  const copied: { file: string; sha256: string; bytes: number; gguf: boolean }[] = [];
  const sums = new Map<string, string>();
  const sidecars = new Map<string, string>();
  try {
    if (isTarball(source)) {
      for await (const entry of readTar(source)) {
        const name = basename(entry.name);
        if (/\.gguf$/i.test(name)) {
          copied.push({ file: name, ...(await copyHashed(entry.chunks, join(o.modelsDir, name))) });
        } else if (name === 'SHA256SUMS' || name.endsWith('.sha256')) {
          const parts: Buffer[] = [];
          for await (const c of entry.chunks) parts.push(c);
          const text = Buffer.concat(parts).toString('utf8');
          if (name === 'SHA256SUMS') for (const [k, v] of parseSums(text)) sums.set(k, v);
          else {
            const hex = parseSidecar(text);
            if (hex) sidecars.set(name.slice(0, -'.sha256'.length), hex);
          }
        }
      }
      if (copied.length === 0) throw new ModelInputError(`${source} holds no .gguf file`);
      if (given !== null && copied.length > 1) throw new ModelInputError('--sha256 applies to one file; this tarball holds several');
    } else {
      if (!/\.gguf$/i.test(source)) throw new ModelInputError(`${source} is neither a .gguf file nor a tarball (.tar, .tar.gz, .tgz)`);
      const name = basename(source);
      copied.push({ file: name, ...(await copyHashed(createReadStream(source, { highWaterMark: 1 << 20 }), join(o.modelsDir, name))) });
      const side = readSidecar(source);
      if (side) sidecars.set(name, side);
      const sumsFile = join(dirname(source), 'SHA256SUMS');
      if (existsSync(sumsFile)) for (const [k, v] of parseSums(readFileSync(sumsFile, 'utf8'))) sums.set(k, v);
    }

    const out: ImportedModel[] = [];
    for (const c of copied) {
      const dest = join(o.modelsDir, c.file);
      const entry = o.catalog.find((m) => m.file === c.file);
      if (!c.gguf) throw new ModelInputError(`${c.file} is not a GGUF file (bad magic)`);
      const expected: [string, ImportedModel['checkedAgainst']] | null = given
        ? [given, '--sha256']
        : entry?.sha256
          ? [entry.sha256, 'catalog']
          : sums.has(c.file)
            ? [sums.get(c.file)!, 'SHA256SUMS']
            : sidecars.has(c.file)
              ? [sidecars.get(c.file)!, 'sidecar']
              : null;
      if (expected && expected[0] !== c.sha256) throw new DigestMismatchError(c.file, expected[0], c.sha256, 'nothing was imported');
      out.push({ file: c.file, path: dest, sha256: c.sha256, bytes: c.bytes, checkedAgainst: expected?.[1] ?? null, id: entry?.id ?? null });
    }
    // Every file checked: only now does any of them take its place.
    for (const m of out) {
      renameSync(`${m.path}.partial`, m.path);
      writeSidecar(m.path, m.sha256);
    }
    return out;
  } finally {
    for (const c of copied) rmSync(join(o.modelsDir, `${c.file}.partial`), { force: true });
  }
}
