/**
 * File identity for log tailing: device + inode + a fingerprint of the first
 * bytes. The inode alone is not enough (inodes are reused, copytruncate keeps
 * the inode and replaces the content, gzip makes a new inode with the same
 * content), so content is identified by the hash of its first bytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';

/** Bytes hashed for a fingerprint once a file has them. */
export const FINGERPRINT_BYTES = 64;

/** Fingerprint of a file's first `len` bytes. */
export interface Fingerprint {
  /** Hash of the first `len` bytes (hex, 16 characters). */
  hash: string;
  /** Bytes hashed: FINGERPRINT_BYTES, or fewer while the file is shorter. */
  len: number;
}

/**
 * A followed file as a checkpoint stores it (short keys: one per file, in
 * SQLite). A file is the same file again when device, inode and fingerprint
 * all match; reading resumes at `o`.
 */
export interface StoredPosition {
  /** Name or path the file had. */
  n: string;
  /** Device and inode. */
  d: number;
  i: number;
  /** Fingerprint hash and length. */
  f: string;
  l: number;
  /** Resume offset. */
  o: number;
}

/** Hash of buf[0, len). */
export function hashPrefix(buf: Buffer, len: number): string {
  return createHash('sha256').update(buf.subarray(0, len)).digest('hex').slice(0, 16);
}

/** Reads up to FINGERPRINT_BYTES from the start of an open file. */
export async function readHead(fh: FileHandle, max = FINGERPRINT_BYTES): Promise<Buffer> {
  const buf = Buffer.alloc(max);
  const { bytesRead } = await fh.read(buf, 0, max, 0);
  return buf.subarray(0, bytesRead);
}

/** Reads up to `max` decompressed bytes from the start of a gzip file (stops decompressing early). */
export function readGzipHead(path: string, max = FINGERPRINT_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const src = createReadStream(path);
    const gunzip = createGunzip();
    let settled = false;
    const done = (err: Error | null) => {
      if (settled) return;
      settled = true;
      src.destroy();
      gunzip.destroy();
      if (err && have === 0) reject(err);
      else resolve(Buffer.concat(chunks).subarray(0, max));
    };
    gunzip.on('data', (c: Buffer) => {
      chunks.push(c);
      have += c.length;
      if (have >= max) done(null);
    });
    gunzip.on('end', () => done(null));
    gunzip.on('error', (e) => done(e));
    src.on('error', (e) => done(e));
    src.pipe(gunzip);
  });
}

/** The fingerprint of a head buffer. */
export function fingerprintOf(head: Buffer): Fingerprint {
  const len = Math.min(head.length, FINGERPRINT_BYTES);
  return { hash: hashPrefix(head, len), len };
}

/** True when `head` starts with the content fingerprinted as `fp` (an empty fingerprint matches nothing). */
export function headMatches(head: Buffer, fp: Fingerprint): boolean {
  if (fp.len === 0 || head.length < fp.len) return false;
  return hashPrefix(head, fp.len) === fp.hash;
}

/**
 * Streams the decompressed bytes of a gzip file from offset `from`, handing
 * `onData` a buffer whose first byte is the first byte not yet consumed;
 * `onData` returns how many bytes it consumed (complete lines). Stops once
 * `budget` bytes were consumed. Resolves `eof: true` when the whole file was
 * decompressed; `end` is the decompressed offset after the last consumed byte.
 */
export function readGzipFrom(
  path: string,
  from: number,
  budget: number,
  onData: (buf: Buffer) => number,
): Promise<{ eof: boolean; end: number }> {
  return new Promise((resolve, reject) => {
    const src = createReadStream(path);
    const gunzip = createGunzip();
    let pos = 0;
    let carry: Buffer = Buffer.alloc(0);
    let consumed = 0;
    let settled = false;
    const finish = (err: Error | null, eof: boolean) => {
      if (settled) return;
      settled = true;
      src.destroy();
      gunzip.destroy();
      if (err) reject(err);
      else resolve({ eof, end: from + consumed });
    };
    gunzip.on('data', (chunk: Buffer) => {
      if (settled) return;
      let c = chunk;
      if (pos + c.length <= from) {
        pos += c.length;
        return;
      }
      if (pos < from) c = c.subarray(from - pos);
      pos += chunk.length;
      const buf = carry.length > 0 ? Buffer.concat([carry, c]) : c;
      let n: number;
      try {
        n = onData(buf);
      } catch (e) {
        finish(e as Error, false);
        return;
      }
      consumed += n;
      // Copy the unconsumed tail: zlib may reuse the chunk's memory.
      carry = Buffer.from(buf.subarray(n));
      if (consumed >= budget) finish(null, false);
    });
    gunzip.on('end', () => finish(null, true));
    gunzip.on('error', (e) => finish(e, false));
    src.on('error', (e) => finish(e, false));
    src.pipe(gunzip);
  });
}
