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
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Collector, LogLine, Signal, SignalSink, SourceStatus } from '../core/types.js';
import { type Clock, systemClock } from '../core/runtime/clock.js';
import { SourceHealth } from '../core/runtime/health.js';
import { Poller } from '../core/runtime/poller.js';
import { type CheckpointReader, noCheckpoints } from './checkpoints.js';
import { errCode, errorMessage } from './errno.js';
import { parsePodLogDir } from './parse.js';
import { headOf, listContainerDir, OpenFiles, readTracked } from './pod-logs/files.js';
import { lineBucket, type RateLimit } from './pod-logs/rate-limit.js';
import { type ContainerTail, isLive, readOrder, Rotations, type TrackedFile } from './pod-logs/rotation.js';

export type { RateLimit } from './pod-logs/rate-limit.js';

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
  /** Clock of polls, rate limits, rotation grace and staleness. Defaults to the system clock. */
  clock?: Clock;
}

/** Raised by a poll when `<hostRoot>/var/log/pods` cannot be listed (missing, no permission). */
export class PodLogRootError extends Error {
  readonly code = 'POD_LOG_ROOT_UNREADABLE';
  override readonly name = 'PodLogRootError';
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
  private readonly readChunkBytes: number;
  private readonly maxBytesPerPoll: number;
  private readonly rateLimit: RateLimit | null;
  private readonly useWatch: boolean;
  private readonly maxWatches: number;
  private readonly clock: Clock;
  private readonly health: SourceHealth;
  private readonly files: OpenFiles;
  private readonly rotation: Rotations;

  private readonly containers = new Map<string, ContainerTail>();
  private sink: SignalSink | undefined;
  private readonly poller: Poller;
  private rootWatcher: FSWatcher | undefined;
  private watchState: 'inotify' | 'polling' | 'off' = 'off';
  private watchers = 0;
  private buf: Buffer;
  private firstStart = false;
  private discoveries = 0;
  private lastDiscoveryAt = Number.NEGATIVE_INFINITY;
  private rescanRequested = true;
  /** What this poll pass could not read (shown as lastError until a pass reads everything). */
  private passNote: string | null = null;
  private counters = { linesRead: 0, droppedLines: 0, unparseableLines: 0, truncatedLines: 0, fileErrors: 0 };

  constructor(opts: PodLogCollectorOptions = {}) {
    this.root = join(opts.hostRoot ?? '/', 'var/log/pods');
    this.checkpoints = opts.checkpoints ?? noCheckpoints;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.scanIntervalMs = opts.scanIntervalMs ?? 10_000;
    const maxLineBytes = opts.maxLineBytes ?? 64 * 1024;
    this.readChunkBytes = Math.max(opts.readChunkBytes ?? 256 * 1024, maxLineBytes + 256);
    this.maxBytesPerPoll = opts.maxBytesPerPoll ?? 4 * 1024 * 1024;
    this.rateLimit = opts.rateLimit === undefined ? { linesPerSecond: 1000, burst: 10_000 } : opts.rateLimit;
    this.useWatch = opts.watch ?? true;
    this.maxWatches = opts.maxWatches ?? 1024;
    this.clock = opts.clock ?? systemClock;
    this.health = new SourceHealth({ name: 'pod-logs', clock: this.clock, staleAfterMs: opts.staleAfterMs ?? Math.max(30_000, 5 * this.pollIntervalMs) });
    this.poller = new Poller(() => this.poll(), {
      name: 'pod-logs',
      intervalMs: this.pollIntervalMs,
      // Where inotify watches the root and every container, a change wakes the poll within 100 ms;
      // the timer is only a safety net then, and backs off to the rescan interval while idle.
      idleMaxMs: Math.max(this.pollIntervalMs, this.scanIntervalMs),
      logger: this.logger,
      clock: this.clock,
      reader: this.health.main,
    });
    this.files = new OpenFiles(Math.max(1, opts.maxOpenFiles ?? 256), () => this.allFiles());
    this.rotation = new Rotations({
      maxLineBytes,
      initialTailBytes: opts.initialTailBytes ?? 64 * 1024,
      rotationGraceMs: opts.rotationGraceMs ?? 5000,
      now: () => this.clock.now(),
      logger: this.logger,
      head: headOf,
      close: (f) => this.files.close(f),
    });
    this.buf = Buffer.allocUnsafe(this.readChunkBytes);
  }

  private *allFiles(): Iterable<TrackedFile> {
    for (const c of this.containers.values()) yield* c.files;
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    const stored = this.checkpoints.list('pod-logs');
    this.firstStart = stored.size === 0;
    for (const [key, value] of stored) this.restore(key, value);
    await this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
    this.rootWatcher?.close();
    this.rootWatcher = undefined;
    for (const c of this.containers.values()) {
      c.watcher?.close();
      c.watcher = undefined;
      for (const f of c.files) await this.files.close(f);
    }
    this.watchers = 0;
    this.containers.clear();
  }

  /** Polls now when the next poll is due within `withinMs`, or while idle (Collector.catchUp). */
  async catchUp(withinMs: number): Promise<void> {
    await this.poller.catchUp(withinMs);
  }

  /** Reads every container once now (after a poll in progress); for tests and `--once` runs. */
  async pollNow(): Promise<void> {
    await this.poller.pollNow();
  }

  status(): SourceStatus {
    let pendingFiles = 0;
    for (const f of this.allFiles()) if (!f.done) pendingFiles++;
    return this.health.status({
      containers: this.containers.size,
      filesOpen: this.files.count,
      filesTailed: pendingFiles,
      watch: this.watchState,
      ...this.counters,
      rotations: this.rotation.rotations,
      truncations: this.rotation.truncations,
    });
  }

  private restore(key: string, value: string): void {
    const slash = key.indexOf('/');
    const podDir = key.slice(0, slash);
    const container = key.slice(slash + 1);
    if (slash < 0 || !parsePodLogDir(podDir)) return;
    this.rotation.restore(this.newContainer(podDir, container, false), value);
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
      bucket: this.rateLimit ? lineBucket(this.rateLimit, () => this.clock.now()) : undefined,
      lastValue: undefined,
      watcher: undefined,
    };
    this.containers.set(key, c);
    return c;
  }

  /**
   * One poll: rescan when due, then read every container. Throws only when the
   * pods directory cannot be read. Resolves false when nothing changed and
   * inotify watches everything (so the timer may back off).
   */
  private async poll(): Promise<boolean> {
    if (this.poller.stopped) return true;
    // A file that could not be read is shown until a pass reads everything again, not for good.
    this.passNote = null;
    const before = this.activity();
    const now = this.clock.now();
    if (this.rescanRequested || now - this.lastDiscoveryAt >= this.scanIntervalMs) {
      this.rescanRequested = false;
      await this.discover();
      this.lastDiscoveryAt = now;
    }
    for (const c of [...this.containers.values()]) {
      if (this.poller.stopped) return true;
      try {
        await this.pollContainer(c);
      } catch (err) {
        this.counters.fileErrors++;
        this.passNote = `${c.key}: ${errorMessage(err)}`;
        this.logger.warn({ err, container: c.key }, 'reading container logs failed');
      }
    }
    this.health.note(this.passNote);
    const watched = this.watchState === 'inotify' && this.rootWatcher !== undefined && [...this.containers.values()].every((c) => c.watcher !== undefined);
    return this.activity() !== before || !watched;
  }

  /** A number that changes whenever a poll reads, drops or fails on something, or the containers change. */
  private activity(): number {
    const c = this.counters;
    return c.linesRead + c.droppedLines + c.unparseableLines + c.truncatedLines + c.fileErrors + this.containers.size;
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
    if (!this.useWatch || this.rootWatcher || this.poller.stopped) return;
    try {
      this.rootWatcher = watch(this.root, () => {
        this.rescanRequested = true;
        this.poller.trigger(100);
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
      c.watcher = watch(c.dir, () => this.poller.trigger(100));
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
    if (c.removed) this.rotation.reportVanished(c, signals, true);

    const out: LogLine[] = [];
    let budget = this.maxBytesPerPoll;
    const order = c.files.filter((f) => !f.done && (f.present || f.fh)).sort(readOrder);
    for (const f of order) {
      if (budget <= 0) break;
      const r = await readTracked(c, f, budget, out, this.files, this.buf, this.clock.now());
      budget -= r.bytes;
      if (!r.eof) break;
      if (this.rotation.finished(c, f)) await this.rotation.finish(f, out);
      // Keep the order of lines: nothing newer is read before a rotated file is finished.
      else if (!isLive(f)) break;
    }
    this.countReaders(c);
    // Files that are gone and finished are forgotten.
    c.files = c.files.filter((f) => f.present || f.fh);

    this.counters.linesRead += out.length;
    let dropped = 0;
    for (const line of out) {
      if (c.bucket && !c.bucket.take()) {
        dropped++;
        continue;
      }
      signals.push({ type: 'log', line });
    }
    this.counters.droppedLines += dropped;
    this.health.drop(dropped);

    if (c.removed && c.files.every((f) => !f.fh)) {
      for (const f of c.files) await this.files.close(f);
      c.watcher?.close();
      if (c.watcher) this.watchers--;
      c.watcher = undefined;
      this.containers.delete(c.key);
      signals.push({ type: 'checkpoint', source: 'pod-logs', key: c.key, value: null });
    } else {
      const value = this.rotation.checkpointValue(c);
      if (value !== c.lastValue) {
        signals.push({ type: 'checkpoint', source: 'pod-logs', key: c.key, value });
        c.lastValue = value;
      }
    }
    if (!this.poller.stopped) this.health.emit(this.sink, signals);
  }

  /** Counts what the CRI readers dropped (unparseable) or cut (truncated) since the last poll. */
  private countReaders(c: ContainerTail): void {
    for (const f of c.files) {
      const u = f.reader.unparseable - f.countedUnparseable;
      const t = f.reader.truncated - f.countedTruncated;
      f.countedUnparseable = f.reader.unparseable;
      f.countedTruncated = f.reader.truncated;
      this.counters.unparseableLines += u;
      this.counters.truncatedLines += t;
      this.health.drop(u);
    }
  }

  /** Lists the container directory and matches its files to the tracked ones. */
  private async listFiles(c: ContainerTail, signals: Signal[]): Promise<void> {
    const listing = await listContainerDir(c.dir);
    if (listing === 'gone') {
      c.removed = true;
      for (const f of c.files) f.present = false;
      return;
    }
    for (const [name, err] of listing.unreadable) {
      this.counters.fileErrors++;
      this.passNote = `${c.key}/${name}: ${errorMessage(err)}`;
    }
    await this.rotation.match(c, listing.listed, new Set(listing.unreadable.keys()), signals);
  }
}
