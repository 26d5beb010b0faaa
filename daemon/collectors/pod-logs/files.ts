/**
 * The pod-log source's file I/O: listing a container's log folder, reading a
 * file's first bytes, keeping open descriptors under a budget, and reading a
 * tracked file forward from its offset. No rotation decisions are made here
 * (rotation.ts makes them).
 */
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogLine } from '../../core/types.js';
import { errCode } from '../errno.js';
import { readGzipFrom, readGzipHead, readHead } from '../file-identity.js';
import { type ContainerTail, LOG_NAME, type ListedFile, type TrackedFile } from './rotation.js';

/** A container folder's log files, or `gone` when the folder no longer exists. */
export type Listing = { listed: ListedFile[]; unreadable: Map<string, unknown> } | 'gone';

/** Lists `<n>.log*` files of a container folder with their identity; files that cannot be stat'ed (other than vanished) are `unreadable`. */
export async function listContainerDir(dir: string): Promise<Listing> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return 'gone';
    throw err;
  }
  const listed: ListedFile[] = [];
  const unreadable = new Map<string, unknown>();
  for (const name of names) {
    if (!LOG_NAME.test(name) || name.endsWith('.tmp')) continue;
    try {
      const st = await stat(join(dir, name));
      if (!st.isFile()) continue;
      listed.push({ name, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, gz: name.endsWith('.gz') });
    } catch (err) {
      // ENOENT: deleted between readdir and stat. Anything else must not pass for a vanished file.
      if (errCode(err) !== 'ENOENT') unreadable.set(name, err);
    }
  }
  return { listed, unreadable };
}

/** The first bytes of a listed file (decompressed for gzip), read once and kept on the listing; empty when unreadable. */
export async function headOf(c: ContainerTail, l: ListedFile, fh?: FileHandle): Promise<Buffer> {
  if (l.head) return l.head;
  const path = join(c.dir, l.name);
  try {
    if (l.gz) l.head = await readGzipHead(path);
    else if (fh) l.head = await readHead(fh);
    else {
      const own = await open(path, 'r');
      try {
        l.head = await readHead(own);
      } finally {
        await own.close();
      }
    }
  } catch {
    l.head = Buffer.alloc(0);
  }
  return l.head;
}

/** Open descriptors of tracked files, at most `max` (the least recently read one is closed to make room). */
export class OpenFiles {
  /** Descriptors open now. */
  count = 0;

  constructor(
    private readonly max: number,
    /** Every tracked file of every container, to choose a victim from. */
    private readonly all: () => Iterable<TrackedFile>,
  ) {}

  /** Closes a file's descriptor, if open. */
  async close(f: TrackedFile): Promise<void> {
    if (!f.fh) return;
    const fh = f.fh;
    f.fh = undefined;
    this.count--;
    await fh.close().catch(() => undefined);
  }

  /** Opens a tracked file by its name, checking it is still the same inode; undefined when it is not or no room can be made. */
  async open(c: ContainerTail, f: TrackedFile): Promise<FileHandle | undefined> {
    if (f.fh) return f.fh;
    if (!f.present) return undefined;
    if (this.count >= this.max) {
      let victim: TrackedFile | undefined;
      for (const g of this.all()) {
        if (g.fh && g.present && !g.alias && g !== f && (!victim || g.lastUsed < victim.lastUsed)) victim = g;
      }
      if (!victim) return undefined;
      await this.close(victim);
    }
    const fh = await open(join(c.dir, f.name), 'r');
    const st = await fh.stat();
    if (st.dev !== f.dev || st.ino !== f.ino) {
      await fh.close();
      return undefined; // Replaced since the listing; the next listing sorts it out.
    }
    f.fh = fh;
    this.count++;
    return fh;
  }
}

/** Reads up to `budget` bytes of one tracked file into `out` through its CRI reader; `eof` when it reached the end. */
export async function readTracked(
  c: ContainerTail,
  f: TrackedFile,
  budget: number,
  out: LogLine[],
  files: OpenFiles,
  buf: Buffer,
  nowMs: number,
): Promise<{ bytes: number; eof: boolean }> {
  f.lastUsed = nowMs;
  if (f.gz && !f.fh) {
    const start = f.reader.offset;
    const r = await readGzipFrom(join(c.dir, f.name), start, budget, (b) => f.reader.consume(b, 0, b.length, out));
    return { bytes: r.end - start, eof: r.eof };
  }
  const fh = await files.open(c, f);
  if (!fh) return { bytes: 0, eof: false };
  let total = 0;
  while (total < budget) {
    const want = Math.min(buf.length, Math.max(budget - total, f.reader.minReadBytes));
    const { bytesRead } = await fh.read(buf, 0, want, f.reader.offset);
    if (bytesRead === 0) return { bytes: total, eof: true };
    if (f.align) {
      // Started inside a file: drop the partial first line.
      const nl = buf.indexOf(10);
      if (nl < 0 || nl >= bytesRead) {
        f.reader.setPosition({ offset: f.reader.offset + bytesRead, skip: 0 });
        total += bytesRead;
        continue;
      }
      f.reader.setPosition({ offset: f.reader.offset + nl + 1, skip: 0 });
      f.align = false;
      total += nl + 1;
      continue;
    }
    const n = f.reader.consume(buf, 0, bytesRead, out);
    total += n;
    if (n === 0 || bytesRead < want) {
      // An incomplete last line: wait for the writer.
      return { bytes: total, eof: true };
    }
  }
  return { bytes: total, eof: false };
}
