/**
 * The pod-log source's rotation state machine: which listed file is which
 * tracked file (renamed, copied, gzipped, truncated, reused inode), in which
 * order a container's files are read, when a file is finished, what is
 * reported as lost, and how it all goes into a checkpoint. Reading bytes and
 * holding descriptors is files.ts's job; this file only asks for a file's
 * first bytes and for a descriptor to be closed.
 */
import type { FSWatcher } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ContainerRef, LogLine, Signal } from '../../core/types.js';
import { isoAt } from '../../core/runtime/clock.js';
import { readJsonCheckpoint } from '../checkpoints.js';
import { FINGERPRINT_BYTES, type Fingerprint, fingerprintOf, headMatches, type StoredPosition } from '../file-identity.js';
import { CriReader, containerRefFromPath } from '../parse.js';
import type { TokenBucket } from '../../core/runtime/token-bucket.js';

/** One file of a container as stored in its checkpoint (`n` is its name in the container directory). */
interface StoredFile extends StoredPosition {
  /** Messages to skip after the resume offset (CriReader.position). */
  k: number;
  /** Size last seen (-1 for gzip files). */
  z: number;
  /** 1 when read to the end and finished. */
  x?: 1;
  /** 1 when the file is gzip-compressed. */
  g?: 1;
}

/** Checkpoint value of one container. */
interface StoredContainer {
  v: 1;
  files: StoredFile[];
}

/** A log file of a container that is being followed. */
export interface TrackedFile {
  name: string;
  dev: number;
  ino: number;
  fp: Fingerprint;
  size: number;
  mtimeMs: number;
  gz: boolean;
  done: boolean;
  /** Seen in the latest directory listing. */
  present: boolean;
  /** Came from a checkpoint and not yet matched to a file. */
  restored: boolean;
  /** Skip to the first line start before reading (tail of a file on the first start). */
  align: boolean;
  fh: FileHandle | undefined;
  /** The .gz that replaced this file while it is still read through its descriptor. */
  alias: ListedFile | undefined;
  lastUsed: number;
  reader: CriReader;
  /** reader.unparseable / reader.truncated already counted by the source. */
  countedUnparseable: number;
  countedTruncated: number;
}

/** One container's log folder and its files. */
export interface ContainerTail {
  key: string;
  dir: string;
  podDir: string;
  container: string;
  files: TrackedFile[];
  /** Directory gone: drain open files, then forget. */
  removed: boolean;
  /** Files found in the first listing are only tailed (first start). */
  tailOnFirstListing: boolean;
  listed: boolean;
  bucket: TokenBucket | undefined;
  lastValue: string | undefined;
  watcher: FSWatcher | undefined;
}

/** A file as a directory listing shows it. */
export interface ListedFile {
  name: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  gz: boolean;
  head?: Buffer;
}

/** Names of container log files: `<restart>.log`, rotated `<restart>.log.<suffix>`. */
export const LOG_NAME = /^(\d+)\.log(?:\.(.+))?$/;
const KUBELET_ROTATED = /^(\d{8}-\d{6})/;

function restartOf(name: string): number {
  const m = LOG_NAME.exec(name);
  return m ? Number(m[1]) : 0;
}

function isLiveName(name: string): boolean {
  return /^\d+\.log$/.test(name);
}

/** Renames that rotation does: none, or `<n>.log` → `<n>.log.<suffix>`. */
function plausibleRename(from: string, to: string): boolean {
  return from === to || (isLiveName(from) && to.startsWith(`${from}.`));
}

/** The file the runtime writes to now: listed under `<n>.log` (not deleted, not replaced by a .gz). */
export function isLive(f: TrackedFile): boolean {
  return f.present && !f.alias && isLiveName(f.name);
}

/** Order in which a container's files are read: by restart, rotated before live, oldest rotation first. */
export function readOrder(a: TrackedFile, b: TrackedFile): number {
  const ra = restartOf(a.name);
  const rb = restartOf(b.name);
  if (ra !== rb) return ra - rb;
  const la = isLive(a) ? 1 : 0;
  const lb = isLive(b) ? 1 : 0;
  if (la !== lb) return la - lb;
  const sa = LOG_NAME.exec(a.name)?.[2] ?? '';
  const sb = LOG_NAME.exec(b.name)?.[2] ?? '';
  const ka = KUBELET_ROTATED.exec(sa)?.[1];
  const kb = KUBELET_ROTATED.exec(sb)?.[1];
  if (ka && kb && ka !== kb) return ka < kb ? -1 : 1;
  return a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** What the state machine needs from the source. */
export interface RotationOptions {
  /** Longest message a CRI reader keeps (PodLogCollectorOptions.maxLineBytes). */
  maxLineBytes: number;
  /** Bytes read back from the end of a live file found on the first start. */
  initialTailBytes: number;
  /** A rotated file at its end, not written for this long, is finished. */
  rotationGraceMs: number;
  /** Clock time in milliseconds. */
  now: () => number;
  /** Where renames, truncations and vanished files are logged. */
  logger: Logger;
  /** First bytes of a listed file (files.ts headOf). */
  head: (c: ContainerTail, l: ListedFile, fh?: FileHandle) => Promise<Buffer>;
  /** Closes a tracked file's descriptor. */
  close: (f: TrackedFile) => Promise<void>;
}

/** Identity of a file being tracked. */
type FileId = { dev: number; ino: number; fp: Fingerprint; size: number; mtimeMs: number; gz: boolean };

/** Tracks the files of containers across rotations. */
export class Rotations {
  /** Renames, gzips and copies followed. */
  rotations = 0;
  /** Files read again from the start (copytruncate, reused inode). */
  truncations = 0;

  constructor(private readonly o: RotationOptions) {}

  /** Starts tracking a file of `c`. */
  newFile(c: ContainerTail, name: string, id: FileId): TrackedFile {
    const ref: ContainerRef = containerRefFromPath(c.podDir, c.container, name) ?? { namespace: '', pod: c.podDir, uid: '', container: c.container };
    const f: TrackedFile = {
      name,
      ...id,
      done: false,
      present: true,
      restored: false,
      align: false,
      fh: undefined,
      alias: undefined,
      lastUsed: 0,
      reader: new CriReader(ref, { maxLineBytes: this.o.maxLineBytes }),
      countedUnparseable: 0,
      countedTruncated: 0,
    };
    c.files.push(f);
    return f;
  }

  /** Restores a container's files from its checkpoint value. */
  restore(c: ContainerTail, value: string): void {
    const stored = readJsonCheckpoint<StoredContainer>(value);
    for (const s of stored?.files ?? []) {
      if (typeof s.n !== 'string' || typeof s.o !== 'number') continue;
      const f = this.newFile(c, s.n, { dev: s.d, ino: s.i, fp: { hash: s.f, len: s.l }, size: s.z, mtimeMs: 0, gz: s.g === 1 });
      f.reader.setPosition({ offset: s.o, skip: s.k ?? 0 });
      f.done = s.x === 1;
      f.restored = true;
      f.present = false;
    }
    c.lastValue = value;
  }

  /** The checkpoint value of a container: its files with identity and resume position. */
  checkpointValue(c: ContainerTail): string {
    const files: StoredFile[] = [];
    for (const f of c.files) {
      const p = f.reader.position();
      const s: StoredFile = { n: f.name, d: f.dev, i: f.ino, f: f.fp.hash, l: f.fp.len, o: p.offset, k: p.skip, z: f.size };
      if (f.done) s.x = 1;
      if (f.gz) s.g = 1;
      files.push(s);
    }
    const v: StoredContainer = { v: 1, files };
    return JSON.stringify(v);
  }

  /**
   * Matches a listing of the container folder to the tracked files; files in
   * `unreadable` keep their presence. Gaps for files gone before their end go
   * to `signals`.
   */
  async match(c: ContainerTail, listed: ListedFile[], unreadable: ReadonlySet<string>, signals: Signal[]): Promise<void> {
    for (const f of c.files) {
      f.present = unreadable.has(f.name) ? f.present : false;
      f.alias = undefined;
    }
    const unmatched: ListedFile[] = [];
    const lost = new Set<TrackedFile>();

    // 1. Same device and inode, and the same first bytes: the same file, maybe renamed.
    for (const l of listed) {
      const f = l.gz ? undefined : c.files.find((t) => !t.gz && !t.present && !lost.has(t) && t.dev === l.dev && t.ino === l.ino);
      if (!f || (f.fp.len < FINGERPRINT_BYTES && !plausibleRename(f.name, l.name))) {
        // A short file's few bytes prove little: a freed inode reused under another name is another file.
        unmatched.push(l);
        continue;
      }
      const changed = f.restored || l.size !== f.size || l.mtimeMs !== f.mtimeMs || f.fp.len < FINGERPRINT_BYTES;
      if (changed) {
        const head = await this.o.head(c, l, f.fh);
        if (f.fp.len > 0 ? !headMatches(head, f.fp) : l.size < f.reader.offset) {
          // Same inode, other content: copytruncate or a reused inode. The old content may live on in a copy.
          if (l.size < f.reader.offset || l.name === f.name) {
            this.truncations++;
            this.o.logger.info({ container: c.key, file: l.name, offset: f.reader.offset, size: l.size }, 'log file truncated or replaced, reading it from the start');
          }
          await this.o.close(f);
          lost.add(f);
          unmatched.push(l);
          continue;
        }
        if (f.fp.len < FINGERPRINT_BYTES && head.length > f.fp.len) f.fp = fingerprintOf(head);
      }
      if (f.name !== l.name) {
        this.rotations++;
        this.o.logger.debug({ container: c.key, from: f.name, to: l.name }, 'log file renamed');
      }
      Object.assign(f, { name: l.name, size: l.size, mtimeMs: l.mtimeMs, present: true, restored: false });
    }

    // 2. Other inode, same first bytes: a copy (copytruncate) or the gzip of a file we know.
    const newFiles: ListedFile[] = [];
    for (const l of unmatched) {
      const head = await this.o.head(c, l);
      const f = c.files.find((t) => !t.present && t.fp.len > 0 && headMatches(head, t.fp));
      if (!f) {
        newFiles.push(l);
        continue;
      }
      lost.delete(f);
      if (l.gz && f.fh) {
        // Still open on the deleted plain file: finish it through the descriptor (cheaper than gunzip),
        // then it is known under the .gz name.
        f.present = true;
        f.alias = l;
        continue;
      }
      if (f.fh && f.ino !== l.ino) {
        // A copy of a file whose descriptor now shows other content: read the copy.
        await this.o.close(f);
      }
      if (f.name !== l.name) this.rotations++;
      Object.assign(f, { name: l.name, dev: l.dev, ino: l.ino, gz: l.gz, size: l.gz ? -1 : l.size, mtimeMs: l.mtimeMs, present: true, restored: false });
      if (!l.gz && f.fp.len < FINGERPRINT_BYTES && head.length > f.fp.len) f.fp = fingerprintOf(head);
    }

    // 3. Files never seen: read from the start (or only their tail on the first start).
    const tailMode = c.tailOnFirstListing && !c.listed;
    const liveRestart = Math.max(-1, ...listed.filter((l) => isLiveName(l.name)).map((l) => restartOf(l.name)));
    for (const l of newFiles) {
      const head = l.head ?? Buffer.alloc(0);
      const f = this.newFile(c, l.name, { dev: l.dev, ino: l.ino, fp: fingerprintOf(head), size: l.gz ? -1 : l.size, mtimeMs: l.mtimeMs, gz: l.gz });
      if (tailMode) {
        if (isLiveName(l.name) && restartOf(l.name) === liveRestart) {
          if (l.size > this.o.initialTailBytes) {
            f.reader.setPosition({ offset: l.size - this.o.initialTailBytes, skip: 0 });
            f.align = true;
          }
        } else {
          // History from before the first start is not replayed.
          f.reader.setPosition({ offset: Math.max(0, l.size), skip: 0 });
          f.done = true;
        }
      }
    }
    c.listed = true;
    this.reportVanished(c, signals, false);
  }

  /** Reports tracked files that are gone before they were finished, and marks them done. */
  reportVanished(c: ContainerTail, signals: Signal[], dirGone: boolean): void {
    for (const f of c.files) {
      if (f.present || f.fh || f.done) continue;
      const off = f.reader.position().offset;
      const known = f.size >= 0 && f.size > off ? `at least ${f.size - off} bytes` : 'an unknown number of bytes';
      const why = f.restored ? 'vanished while nodesage was not running' : dirGone ? 'vanished with its directory' : 'vanished';
      const detail = `${c.key}: ${f.name} (dev ${f.dev} inode ${f.ino}) ${why} before it was read past byte ${off}; ${known} and any file rotated from it were not read`;
      const known0 = f.size >= 0 && f.size <= off && !f.restored && !isLiveName(f.name);
      f.done = true;
      f.restored = false;
      if (known0) continue; // Read to its end and rotated away: nothing lost.
      signals.push({ type: 'gap', at: isoAt(this.o.now()), source: 'pod-logs', detail });
      this.o.logger.warn({ container: c.key, file: f.name, offset: off }, 'log file vanished before it was read to the end');
    }
  }

  /**
   * A file at its end is finished when nothing will be appended to it any more:
   * a file after it (a later rotation, the new live file, a later restart) has
   * data — the runtime reopened its log before writing there — or it is rotated
   * away and was not written for rotationGraceMs.
   */
  finished(c: ContainerTail, f: TrackedFile): boolean {
    if (f.gz || c.removed) return true;
    const order = [...c.files].sort(readOrder);
    const later = order.slice(order.indexOf(f) + 1);
    if (later.some((g) => (g.present || g.fh) && g.size !== 0)) return true;
    return !isLive(f) && this.o.now() - f.mtimeMs > this.o.rotationGraceMs;
  }

  /** Marks a file read to its end as done; a plain file replaced by its .gz is known under the .gz name from now on. */
  async finish(f: TrackedFile, out: LogLine[]): Promise<void> {
    f.reader.flush(out);
    f.done = true;
    await this.o.close(f);
    if (f.alias) {
      Object.assign(f, { name: f.alias.name, dev: f.alias.dev, ino: f.alias.ino, gz: true, size: -1, alias: undefined });
      this.rotations++;
    }
  }
}
