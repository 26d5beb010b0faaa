/**
 * A streaming reader for the tar files operators carry models in (ustar, GNU
 * and pax, optionally gzip-compressed). Only regular files are returned, by
 * their base name: a model tarball is flat, and a name never chooses where a
 * file is written.
 */
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { CodedError } from '../errors.js';

/** One regular file of the archive, its content streamed in chunks. */
export interface TarEntry {
  /** Path inside the archive. */
  name: string;
  size: number;
  /** The content; must be consumed before the next entry is read. */
  chunks: AsyncIterable<Buffer>;
}

/** The archive is not a tar file or ends in the middle of an entry. */
export class TarFormatError extends CodedError {
  /** Stable error code. */
  readonly code = 'TAR_INVALID';
}

class ByteReader {
  #buf: Buffer = Buffer.alloc(0);
  #it: AsyncIterator<Buffer>;
  #done = false;
  constructor(source: AsyncIterable<Buffer>) {
    this.#it = source[Symbol.asyncIterator]();
  }
  async #fill(n: number): Promise<boolean> {
    while (this.#buf.length < n && !this.#done) {
      const r = await this.#it.next();
      if (r.done) this.#done = true;
      else this.#buf = this.#buf.length === 0 ? r.value : Buffer.concat([this.#buf, r.value]);
    }
    return this.#buf.length >= n;
  }
  /** Exactly n bytes, or null at the end of the input. */
  async take(n: number): Promise<Buffer | null> {
    if (!(await this.#fill(n))) return null;
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
  /** Up to n bytes (at least 1), or null at the end. */
  async some(n: number): Promise<Buffer | null> {
    if (!(await this.#fill(1))) return null;
    const k = Math.min(n, this.#buf.length);
    const out = this.#buf.subarray(0, k);
    this.#buf = this.#buf.subarray(k);
    return out;
  }
}

function field(h: Buffer, start: number, len: number): string {
  const s = h.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function octal(h: Buffer, start: number, len: number): number {
  // GNU base-256 for sizes of 8 GiB and more.
  if ((h[start]! & 0x80) !== 0) {
    let n = 0;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + h[i]!;
    return n;
  }
  const t = field(h, start, len).trim();
  return t === '' ? 0 : Number.parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === octal(h, 148, 8);
}

/** Regular files of a tar (or .tar.gz / .tgz) file, in archive order. */
export async function* readTar(path: string): AsyncGenerator<TarEntry> {
  const head = Buffer.alloc(2);
  const fh = await import('node:fs/promises').then((fs) => fs.open(path, 'r'));
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  const source = head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
  const r = new ByteReader(source as AsyncIterable<Buffer>);
  let longName: string | null = null;
  for (;;) {
    const h = await r.take(512);
    if (!h || h.every((b) => b === 0)) return;
    if (!checksumOk(h)) throw new TarFormatError(`${path}: not a tar archive (bad header checksum)`);
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 48);
    const prefix = field(h, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    longName = null;
    const padded = Math.ceil(size / 512) * 512;
    if (type === 'L' || type === 'x') {
      const data = await r.take(padded);
      if (!data) throw new TarFormatError(`${path}: ends inside a header`);
      const text = data.subarray(0, size).toString('utf8');
      longName = type === 'L' ? text.replace(/\0+$/, '') : (/(?:^|\n)\d+ path=([^\n]*)\n/.exec(text)?.[1] ?? null);
      continue;
    }
    let left = size;
    const chunks = async function* (): AsyncGenerator<Buffer> {
      while (left > 0) {
        const c = await r.some(Math.min(left, 1 << 20));
        if (!c) throw new TarFormatError(`${path}: ends inside ${name}`);
        left -= c.length;
        yield c;
      }
    };
    if (type === '0' || type === '7') {
      yield { name, size, chunks: chunks() };
    }
    // Drain what the consumer (or a skipped entry) left, then the padding.
    for await (const _ of chunks()) {
      /* skipped */
    }
    if (padded > size && !(await r.take(padded - size))) throw new TarFormatError(`${path}: ends inside ${name}`);
  }
}
