/**
 * Container logs: tails `<hostRoot>/var/log/pods/<ns>_<pod>_<uid>/<container>/*.log`
 * as the kubelet and the container runtime write them (CRI format), through
 * every kind of rotation seen on nodes:
 *
 * - rename + create (kubelet: `0.log` → `0.log.<timestamp>`, new `0.log`): the
 *   renamed file is finished, through its open descriptor, before the new one;
 * - the kubelet's later gzip of a rotated file (`.gz` appears, the plain file
 *   goes): recognised by the fingerprint of its content, never read twice;
 * - copytruncate (the file shrinks below the read offset): read from 0, counted;
 * - inode reuse (same inode, other first bytes): a new file.
 *
 * A file is identified by device + inode + a hash of its first 64 bytes. The
 * checkpoint of a container (key `<ns>_<pod>_<uid>/<container>`) lists its
 * files with their identity and the offset from which a restart re-reads
 * (see CriReader.position), so a crash never loses or doubles a line; a file
 * that vanished before it was read to the end is reported as a `gap` signal.
 */
import { type FSWatcher, watch } from 'node:fs';
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Collector, ContainerRef, LogLine, Signal, SignalSink, SourceStatus, Timestamp } from '../core/types.js';
import { type Periodic, type Timers, periodic } from './backoff.js';
import { type CheckpointReader, noCheckpoints, readJsonCheckpoint } from './checkpoints.js';
import {
  FINGERPRINT_BYTES,
  type Fingerprint,
  fingerprintOf,
  headMatches,
  readGzipFrom,
  readGzipHead,
  readHead,
  type StoredPosition,
} from './file-identity.js';
import { CriReader, containerRefFromPath, parsePodLogDir } from './parse.js';
import { errCode, errorMessage } from './errno.js';

/** Per-container rate limit of delivered lines. */
export interface RateLimit {
  /** Lines per second refilled. */
  linesPerSecond: number;
  /** Lines that may arrive at once. */
  burst: number;
}

/** Options of {@link PodLogCollector}. */
export interface PodLogCollectorOptions {
  /** Prefix of host paths; logs are read from `<hostRoot>/var/log/pods`. Defaults to "/". */
  hostRoot?: string;
  /** Checkpoints stored at the last commit. Defaults to none (first start). */
  checkpoints?: CheckpointReader;
  /** Logger. Defaults to a silent pino logger. */
  logger?: Logger;
  /** Milliseconds between reads of every container. Defaults to 1000. */
  pollIntervalMs?: number;
  /** Milliseconds between rescans of the pod directories (watch events rescan sooner). Defaults to 10000. */
  scanIntervalMs?: number;
  /** On the first start (no checkpoint at all), bytes read back from the end of each live file. Defaults to 65536. */
  initialTailBytes?: number;
  /** Longest message kept (bytes, partial lines joined); longer ones are cut and marked truncated. Defaults to 65536. */
  maxLineBytes?: number;
  /** Bytes per read() call. Defaults to 262144 (raised to maxLineBytes + 256 when smaller). */
  readChunkBytes?: number;
  /** Bytes read per container per poll, so one chatty container cannot starve the rest. Defaults to 4194304. */
  maxBytesPerPoll?: number;
  /** Per-container rate limit; lines above it are dropped and counted, null = none. Defaults to 1000 lines/s, burst 10000. */
  rateLimit?: RateLimit | null;
  /** Open file descriptors kept at most (least recently read ones are closed and reopened later). Defaults to 256. */
  maxOpenFiles?: number;
  /** Use fs.watch (inotify) to react sooner; polling alone is always enough. Defaults to true. */
  watch?: boolean;
  /** Directories watched at most, so inotify watches are not exhausted. Defaults to 1024. */
  maxWatches?: number;
  /** A rotated file at its end is finished once its successor has data or it was not written for this long. Defaults to 5000. */
  rotationGraceMs?: number;
  /** No successful poll for this long makes the source stale. Defaults to max(30000, 5 × pollIntervalMs). */
  staleAfterMs?: number;
  /** Clock in milliseconds. Defaults to Date.now. */
  now?: () => number;
  /** Timers. Defaults to the process timers. */
  timers?: Timers;
}

/** Raised by a poll when `<hostRoot>/var/log/pods` cannot be listed (missing, no permission). */
export class PodLogRootError extends Error {
  readonly code = 'POD_LOG_ROOT_UNREADABLE';
  override readonly name = 'PodLogRootError';
}

/** A token bucket: `take()` is true while the rate allows one more line. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number,
  ) {
    this.tokens = limit.burst;
    this.last = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((t - this.last) * this.limit.linesPerSecond) / 1000);
      this.last = t;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

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

interface TrackedFile {
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
}

interface ContainerTail {
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
  dropped: number;
  lastValue: string | undefined;
  watcher: FSWatcher | undefined;
}

interface ListedFile {
  name: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  gz: boolean;
  head?: Buffer;
}

const LOG_NAME = /^(\d+)\.log(?:\.(.+))?$/;
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
function isLive(f: TrackedFile): boolean {
  return f.present && !f.alias && isLiveName(f.name);
}

/** Order in which a container's files are read: by restart, rotated before live, oldest rotation first. */
function readOrder(a: TrackedFile, b: TrackedFile): number {
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

/** Tails the container log files of every pod on this node. */
export class PodLogCollector implements Collector {
  readonly name = 'pod-logs' as const;
  /** The directory scanned: `<hostRoot>/var/log/pods`. */
  readonly root: string;
  private readonly checkpoints: CheckpointReader;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly scanIntervalMs: number;
  private readonly initialTailBytes: number;
  private readonly maxLineBytes: number;
  private readonly readChunkBytes: number;
  private readonly maxBytesPerPoll: number;
  private readonly rateLimit: RateLimit | null;
  private readonly maxOpenFiles: number;
  private readonly useWatch: boolean;
  private readonly maxWatches: number;
  private readonly rotationGraceMs: number;
  private readonly staleAfterMs: number;
  private readonly now: () => number;
  private readonly timers: Timers | undefined;

  private readonly containers = new Map<string, ContainerTail>();
  private sink: SignalSink | undefined;
  private task: Periodic | undefined;
  private rootWatcher: FSWatcher | undefined;
  private watchState: 'inotify' | 'polling' | 'off' = 'off';
  private watchers = 0;
  private buf: Buffer;
  private firstStart = false;
  private discoveries = 0;
  private lastDiscoveryAt = Number.NEGATIVE_INFINITY;
  private rescanRequested = true;
  private openFiles = 0;
  private stopped = false;

  private signals = 0;
  private lastSignalAt: Timestamp | null = null;
  private lastError: string | null = null;
  private lastPollFailed = false;
  private lastOkAt: number | null = null;
  private startedAt = 0;
  private readonly forgotten = { unparseable: 0, truncated: 0 };
  private counters = {
    linesRead: 0,
    droppedLines: 0,
    gaps: 0,
    truncations: 0,
    rotations: 0,
    fileErrors: 0,
  };

  constructor(opts: PodLogCollectorOptions = {}) {
    this.root = join(opts.hostRoot ?? '/', 'var/log/pods');
    this.checkpoints = opts.checkpoints ?? noCheckpoints;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.scanIntervalMs = opts.scanIntervalMs ?? 10_000;
    this.initialTailBytes = opts.initialTailBytes ?? 64 * 1024;
    this.maxLineBytes = opts.maxLineBytes ?? 64 * 1024;
    this.readChunkBytes = Math.max(opts.readChunkBytes ?? 256 * 1024, this.maxLineBytes + 256);
    this.maxBytesPerPoll = opts.maxBytesPerPoll ?? 4 * 1024 * 1024;
    this.rateLimit = opts.rateLimit === undefined ? { linesPerSecond: 1000, burst: 10_000 } : opts.rateLimit;
    this.maxOpenFiles = Math.max(1, opts.maxOpenFiles ?? 256);
    this.useWatch = opts.watch ?? true;
    this.maxWatches = opts.maxWatches ?? 1024;
    this.rotationGraceMs = opts.rotationGraceMs ?? 5000;
    this.staleAfterMs = opts.staleAfterMs ?? Math.max(30_000, 5 * this.pollIntervalMs);
    this.now = opts.now ?? Date.now;
    this.timers = opts.timers;
    this.buf = Buffer.allocUnsafe(this.readChunkBytes);
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    this.stopped = false;
    this.startedAt = this.now();
    const stored = this.checkpoints.list('pod-logs');
    this.firstStart = stored.size === 0;
    for (const [key, value] of stored) this.restore(key, value);
    const opts: Parameters<typeof periodic>[1] = {
      name: 'pod-logs',
      intervalMs: this.pollIntervalMs,
      logger: this.logger,
      onRun: (err) => {
        this.lastPollFailed = err !== null;
        if (err) this.lastError = err.message;
        else this.lastOkAt = this.now();
      },
    };
    if (this.timers) opts.timers = this.timers;
    this.task = periodic(() => this.poll(), opts);
    await this.task.runNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.task?.stop();
    this.task = undefined;
    this.rootWatcher?.close();
    this.rootWatcher = undefined;
    for (const c of this.containers.values()) {
      c.watcher?.close();
      c.watcher = undefined;
      for (const f of c.files) await this.closeFile(f);
    }
    this.watchers = 0;
    this.containers.clear();
  }

  /** Reads every container once now (after a poll in progress); for tests and `--once` runs. */
  async pollNow(): Promise<void> {
    if (this.task) await this.task.runNow();
    else await this.poll();
  }

  status(): SourceStatus {
    const now = this.now();
    let state: SourceStatus['state'] = 'healthy';
    if (this.lastPollFailed) state = 'failing';
    else if (this.task && now - (this.lastOkAt ?? this.startedAt) > this.staleAfterMs) state = 'stale';
    let pendingFiles = 0;
    let unparseable = this.forgotten.unparseable;
    let truncated = this.forgotten.truncated;
    for (const c of this.containers.values()) {
      for (const f of c.files) {
        if (!f.done) pendingFiles++;
        unparseable += f.reader.unparseable;
        truncated += f.reader.truncated;
      }
    }
    return {
      name: 'pod-logs',
      state,
      signals: this.signals,
      lastSignalAt: this.lastSignalAt,
      lastError: this.lastError,
      detail: {
        containers: this.containers.size,
        filesOpen: this.openFiles,
        filesTailed: pendingFiles,
        watch: this.watchState,
        ...this.counters,
        unparseableLines: unparseable,
        truncatedLines: truncated,
      },
    };
  }

  private restore(key: string, value: string): void {
    const slash = key.indexOf('/');
    const podDir = key.slice(0, slash);
    const container = key.slice(slash + 1);
    if (slash < 0 || !parsePodLogDir(podDir)) return;
    const c = this.newContainer(podDir, container, false);
    const stored = readJsonCheckpoint<StoredContainer>(value);
    for (const s of stored?.files ?? []) {
      if (typeof s.n !== 'string' || typeof s.o !== 'number') continue;
      const f = this.newFile(c, s.n, {
        dev: s.d,
        ino: s.i,
        fp: { hash: s.f, len: s.l },
        size: s.z,
        mtimeMs: 0,
        gz: s.g === 1,
      });
      f.reader.setPosition({ offset: s.o, skip: s.k ?? 0 });
      f.done = s.x === 1;
      f.restored = true;
      f.present = false;
    }
    c.lastValue = value;
  }

  private newContainer(podDir: string, container: string, tailOnFirstListing: boolean): ContainerTail {
    const key = `${podDir}/${container}`;
    const c: ContainerTail = {
      key,
      dir: join(this.root, podDir, container),
      podDir,
      container,
      files: [],
      removed: false,
      tailOnFirstListing,
      listed: false,
      bucket: this.rateLimit ? new TokenBucket(this.rateLimit, this.now) : undefined,
      dropped: 0,
      lastValue: undefined,
      watcher: undefined,
    };
    this.containers.set(key, c);
    return c;
  }

  private newFile(
    c: ContainerTail,
    name: string,
    id: { dev: number; ino: number; fp: Fingerprint; size: number; mtimeMs: number; gz: boolean },
  ): TrackedFile {
    const ref: ContainerRef = containerRefFromPath(c.podDir, c.container, name) ?? {
      namespace: '',
      pod: c.podDir,
      uid: '',
      container: c.container,
    };
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
      reader: new CriReader(ref, { maxLineBytes: this.maxLineBytes }),
    };
    c.files.push(f);
    return f;
  }

  /** One poll: rescan when due, then read every container. Throws only when the pods directory cannot be read. */
  private async poll(): Promise<void> {
    if (this.stopped) return;
    const now = this.now();
    if (this.rescanRequested || now - this.lastDiscoveryAt >= this.scanIntervalMs) {
      this.rescanRequested = false;
      await this.discover();
      this.lastDiscoveryAt = now;
    }
    for (const c of [...this.containers.values()]) {
      if (this.stopped) return;
      try {
        await this.pollContainer(c);
      } catch (err) {
        this.counters.fileErrors++;
        this.lastError = `${c.key}: ${errorMessage(err)}`;
        this.logger.warn({ err, container: c.key }, 'reading container logs failed');
      }
    }
  }

  private async discover(): Promise<void> {
    let podDirs: string[];
    try {
      podDirs = await readdir(this.root);
    } catch (err) {
      this.rescanRequested = true;
      throw new PodLogRootError(errCode(err) === 'ENOENT' ? `${this.root} not found` : `${this.root}: ${errorMessage(err)}`);
    }
    const tail = this.firstStart && this.discoveries === 0;
    this.discoveries++;
    this.ensureRootWatch();
    const seen = new Set<string>();
    for (const podDir of podDirs) {
      if (!parsePodLogDir(podDir)) continue;
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(join(this.root, podDir), { withFileTypes: true });
      } catch {
        continue; // Pod directory removed while listing.
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const key = `${podDir}/${e.name}`;
        seen.add(key);
        const c = this.containers.get(key) ?? this.newContainer(podDir, e.name, tail);
        c.removed = false;
        this.ensureWatch(c);
      }
    }
    for (const c of this.containers.values()) {
      if (!seen.has(c.key)) c.removed = true;
    }
  }

  private ensureRootWatch(): void {
    if (!this.useWatch || this.rootWatcher || this.stopped) return;
    try {
      this.rootWatcher = watch(this.root, () => {
        this.rescanRequested = true;
        this.task?.trigger(100);
      });
      // Watches only make polls come sooner; they must not keep a stopping process alive.
      this.rootWatcher.unref();
      this.rootWatcher.on('error', () => {
        this.rootWatcher?.close();
        this.rootWatcher = undefined;
      });
      this.watchState = 'inotify';
    } catch (err) {
      // inotify missing or exhausted (ENOSPC): polling alone keeps working.
      this.watchState = 'polling';
      this.logger.info({ err }, 'fs.watch unavailable, polling only');
    }
  }

  private ensureWatch(c: ContainerTail): void {
    if (!this.useWatch || c.watcher || this.watchState !== 'inotify' || this.watchers >= this.maxWatches) return;
    try {
      c.watcher = watch(c.dir, () => this.task?.trigger(100));
      c.watcher.unref();
      c.watcher.on('error', () => {
        c.watcher?.close();
        c.watcher = undefined;
        this.watchers--;
      });
      this.watchers++;
    } catch {
      // The directory may be gone already; the next scan settles it.
    }
  }

  private async pollContainer(c: ContainerTail): Promise<void> {
    const signals: Signal[] = [];
    if (!c.removed) await this.listFiles(c, signals);
    else for (const f of c.files) f.present = false;
    if (c.removed) this.reportVanished(c, signals, true);

    const out: LogLine[] = [];
    let budget = this.maxBytesPerPoll;
    const order = c.files.filter((f) => !f.done && (f.present || f.fh)).sort(readOrder);
    for (const f of order) {
      if (budget <= 0) break;
      const r = await this.readFile(c, f, budget, out);
      budget -= r.bytes;
      if (!r.eof) break;
      if (this.finished(c, f)) {
        f.reader.flush(out);
        f.done = true;
        await this.closeFile(f);
        if (f.alias) {
          Object.assign(f, { name: f.alias.name, dev: f.alias.dev, ino: f.alias.ino, gz: true, size: -1, alias: undefined });
          this.counters.rotations++;
        }
      } else if (!isLive(f)) {
        // Keep the order of lines: nothing newer is read before a rotated file is finished.
        break;
      }
    }
    // Files that are gone and finished are forgotten.
    const kept: TrackedFile[] = [];
    for (const f of c.files) {
      if (f.present || f.fh) kept.push(f);
      else this.forget(f);
    }
    c.files = kept;

    this.counters.linesRead += out.length;
    let delivered = 0;
    for (const line of out) {
      if (c.bucket && !c.bucket.take()) {
        c.dropped++;
        this.counters.droppedLines++;
        continue;
      }
      signals.push({ type: 'log', line });
      delivered++;
    }
    const gaps = signals.length - delivered;
    if (delivered + gaps > 0) {
      this.signals += delivered + gaps;
      this.lastSignalAt = new Date(this.now()).toISOString();
    }

    if (c.removed && c.files.every((f) => !f.fh)) {
      for (const f of c.files) {
        await this.closeFile(f);
        this.forget(f);
      }
      c.watcher?.close();
      if (c.watcher) this.watchers--;
      c.watcher = undefined;
      this.containers.delete(c.key);
      signals.push({ type: 'checkpoint', source: 'pod-logs', key: c.key, value: null });
    } else {
      const value = this.checkpointValue(c);
      if (value !== c.lastValue) {
        signals.push({ type: 'checkpoint', source: 'pod-logs', key: c.key, value });
        c.lastValue = value;
      }
    }
    if (signals.length > 0 && this.sink && !this.stopped) this.sink(signals);
  }

  /** Keeps the counts of a reader that is dropped. */
  private forget(f: TrackedFile): void {
    this.forgotten.unparseable += f.reader.unparseable;
    this.forgotten.truncated += f.reader.truncated;
  }

  private checkpointValue(c: ContainerTail): string {
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

  /** Lists the container directory and matches its files to the tracked ones. */
  private async listFiles(c: ContainerTail, signals: Signal[]): Promise<void> {
    let names: string[];
    try {
      names = await readdir(c.dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT') {
        c.removed = true;
        for (const f of c.files) f.present = false;
        return;
      }
      throw err;
    }
    const listed: ListedFile[] = [];
    const unreadable = new Set<string>();
    for (const name of names) {
      if (!LOG_NAME.test(name) || name.endsWith('.tmp')) continue;
      try {
        const st = await stat(join(c.dir, name));
        if (!st.isFile()) continue;
        listed.push({ name, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, gz: name.endsWith('.gz') });
      } catch (err) {
        // ENOENT: deleted between readdir and stat. Anything else must not pass for a vanished file.
        if (errCode(err) !== 'ENOENT') {
          unreadable.add(name);
          this.counters.fileErrors++;
          this.lastError = `${c.key}/${name}: ${errorMessage(err)}`;
        }
      }
    }
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
        const head = await this.head(c, l, f.fh);
        if (f.fp.len > 0 ? !headMatches(head, f.fp) : l.size < f.reader.offset) {
          // Same inode, other content: copytruncate or a reused inode. The old content may live on in a copy.
          if (l.size < f.reader.offset || l.name === f.name) {
            this.counters.truncations++;
            this.logger.info({ container: c.key, file: l.name, offset: f.reader.offset, size: l.size }, 'log file truncated or replaced, reading it from the start');
          }
          await this.closeFile(f);
          lost.add(f);
          unmatched.push(l);
          continue;
        }
        if (f.fp.len < FINGERPRINT_BYTES && head.length > f.fp.len) f.fp = fingerprintOf(head);
      }
      if (f.name !== l.name) {
        this.counters.rotations++;
        this.logger.debug({ container: c.key, from: f.name, to: l.name }, 'log file renamed');
      }
      Object.assign(f, { name: l.name, size: l.size, mtimeMs: l.mtimeMs, present: true, restored: false });
    }

    // 2. Other inode, same first bytes: a copy (copytruncate) or the gzip of a file we know.
    const newFiles: ListedFile[] = [];
    for (const l of unmatched) {
      const head = await this.head(c, l);
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
        await this.closeFile(f);
      }
      if (f.name !== l.name) this.counters.rotations++;
      Object.assign(f, { name: l.name, dev: l.dev, ino: l.ino, gz: l.gz, size: l.gz ? -1 : l.size, mtimeMs: l.mtimeMs, present: true, restored: false });
      if (!l.gz && f.fp.len < FINGERPRINT_BYTES && head.length > f.fp.len) f.fp = fingerprintOf(head);
    }

    // 3. Files never seen: read from the start (or only their tail on the first start).
    const tailMode = c.tailOnFirstListing && !c.listed;
    const liveRestart = Math.max(-1, ...listed.filter((l) => isLiveName(l.name)).map((l) => restartOf(l.name)));
    for (const l of newFiles) {
      const head = l.head ?? Buffer.alloc(0);
      const f = this.newFile(c, l.name, {
        dev: l.dev,
        ino: l.ino,
        fp: fingerprintOf(head),
        size: l.gz ? -1 : l.size,
        mtimeMs: l.mtimeMs,
        gz: l.gz,
      });
      if (tailMode) {
        if (isLiveName(l.name) && restartOf(l.name) === liveRestart) {
          if (l.size > this.initialTailBytes) {
            f.reader.setPosition({ offset: l.size - this.initialTailBytes, skip: 0 });
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

  /** Reports tracked files that are gone before they were finished, and forgets them. */
  private reportVanished(c: ContainerTail, signals: Signal[], dirGone: boolean): void {
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
      this.counters.gaps++;
      signals.push({ type: 'gap', at: new Date(this.now()).toISOString(), source: 'pod-logs', detail });
      this.logger.warn({ container: c.key, file: f.name, offset: off }, 'log file vanished before it was read to the end');
    }
  }

  /** The first bytes of a listed file (decompressed for gzip). */
  private async head(c: ContainerTail, l: ListedFile, fh?: FileHandle): Promise<Buffer> {
    if (l.head) return l.head;
    const path = join(c.dir, l.name);
    try {
      if (l.gz) l.head = await readGzipHead(path);
      else if (fh) l.head = await readHead(fh);
      else {
        const fh = await open(path, 'r');
        try {
          l.head = await readHead(fh);
        } finally {
          await fh.close();
        }
      }
    } catch {
      l.head = Buffer.alloc(0);
    }
    return l.head;
  }

  /**
   * A file at its end is finished when nothing will be appended to it any more:
   * a file after it (a later rotation, the new live file, a later restart) has
   * data — the runtime reopened its log before writing there — or it is rotated
   * away and was not written for rotationGraceMs.
   */
  private finished(c: ContainerTail, f: TrackedFile): boolean {
    if (f.gz || c.removed) return true;
    const order = [...c.files].sort(readOrder);
    const later = order.slice(order.indexOf(f) + 1);
    if (later.some((g) => (g.present || g.fh) && g.size !== 0)) return true;
    return !isLive(f) && this.now() - f.mtimeMs > this.rotationGraceMs;
  }

  private async closeFile(f: TrackedFile): Promise<void> {
    if (!f.fh) return;
    const fh = f.fh;
    f.fh = undefined;
    this.openFiles--;
    await fh.close().catch(() => undefined);
  }

  /** Opens a tracked file by its name, checking it is still the same inode; bounded by maxOpenFiles. */
  private async openFile(c: ContainerTail, f: TrackedFile): Promise<FileHandle | undefined> {
    if (f.fh) return f.fh;
    if (!f.present) return undefined;
    if (this.openFiles >= this.maxOpenFiles) {
      let victim: TrackedFile | undefined;
      for (const other of this.containers.values()) {
        for (const g of other.files) {
          if (g.fh && g.present && !g.alias && g !== f && (!victim || g.lastUsed < victim.lastUsed)) victim = g;
        }
      }
      if (!victim) return undefined;
      await this.closeFile(victim);
    }
    const fh = await open(join(c.dir, f.name), 'r');
    const st = await fh.stat();
    if (st.dev !== f.dev || st.ino !== f.ino) {
      await fh.close();
      return undefined; // Replaced since the listing; the next listing sorts it out.
    }
    f.fh = fh;
    this.openFiles++;
    return fh;
  }

  /** Reads up to `budget` bytes of one file; `eof` when it reached the end. */
  private async readFile(c: ContainerTail, f: TrackedFile, budget: number, out: LogLine[]): Promise<{ bytes: number; eof: boolean }> {
    f.lastUsed = this.now();
    if (f.gz && !f.fh) {
      const start = f.reader.offset;
      const r = await readGzipFrom(join(c.dir, f.name), start, budget, (buf) => f.reader.consume(buf, 0, buf.length, out));
      return { bytes: r.end - start, eof: r.eof };
    }
    const fh = await this.openFile(c, f);
    if (!fh) return { bytes: 0, eof: false };
    const buf = this.buf;
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
}
