/**
 * Kernel log: `<hostRoot>/dev/kmsg`. On the real character device every read()
 * returns one record; reads never block (O_NONBLOCK, EAGAIN = nothing new) and
 * EPIPE means the ring buffer overwrote records before we read them, which is
 * reported as a `gap`. A regular file at that path (bundles, tests) holds one
 * record per line and is followed as it grows.
 *
 * The checkpoint is the last sequence number read together with the boot id:
 * after a daemon restart in the same boot nothing is replayed; after a reboot
 * the new boot's buffer is read from its beginning.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Collector, Signal, SignalSink, SourceStatus } from '../core/types.js';
import { ABSENT, IDLE_POLL_MAX_MS, type RunOutcome } from '../core/runtime/backoff.js';
import { type Clock, isoAt, systemClock } from '../core/runtime/clock.js';
import { SourceHealth } from '../core/runtime/health.js';
import { Poller } from '../core/runtime/poller.js';
import { type CheckpointReader, noCheckpoints, readJsonCheckpoint } from './checkpoints.js';
import { type KmsgRecord, kmsgToLogLines, parseKmsgRecord } from './parse.js';
import { errCode } from './errno.js';

/** The one checkpoint key of this source. */
export const KMSG_CHECKPOINT_KEY = 'position';

/** Checkpoint value: last sequence number read in a boot. */
export interface KmsgPosition {
  boot: string;
  seq: number;
}

/** The kmsg character device, reduced to what the collector does with it (tests inject overruns). */
export interface KmsgDevice {
  /** Reads one record into buf; rejects with code EAGAIN (nothing new) or EPIPE (records overwritten). */
  read(buf: Buffer): Promise<number>;
  close(): Promise<void>;
}

/** Options of {@link KmsgCollector}. */
export interface KmsgCollectorOptions {
  /** Prefix of host paths (`dev/kmsg`, `proc/stat`, `proc/sys/kernel/random/boot_id`). Defaults to "/". */
  hostRoot?: string;
  /** Checkpoints stored at the last commit. Defaults to none. */
  checkpoints?: CheckpointReader;
  /** Logger. Defaults to a silent pino logger. */
  logger?: Logger;
  /** Milliseconds between reads. Defaults to 1000. */
  pollIntervalMs?: number;
  /** Records read per poll at most. Defaults to 10000. */
  maxRecordsPerPoll?: number;
  /** No successful poll for this long makes the source stale. Defaults to max(60000, 5 × pollIntervalMs): twice the longest idle wait. */
  staleAfterMs?: number;
  /** Opens the character device. Defaults to a non-blocking open of the path. */
  openDevice?: (path: string) => Promise<KmsgDevice>;
  /** Clock of polls, record times and staleness. Defaults to the system clock. */
  clock?: Clock;
}

/** Raised when the kmsg path exists but cannot be opened (no CAP_SYSLOG, dmesg_restrict, not a device or file). */
export class KmsgOpenError extends Error {
  readonly code = 'KMSG_OPEN_FAILED';
  override readonly name = 'KmsgOpenError';
}

/** Opens a kmsg character device for non-blocking reads. */
export async function openKmsgDevice(path: string): Promise<KmsgDevice> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return {
    async read(buf: Buffer) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      return bytesRead;
    },
    close: () => fh.close(),
  };
}

/** Boot time of the host in epoch milliseconds: `btime` of /proc/stat, else now − /proc/uptime. */
export async function readBootTimeMs(hostRoot: string, now: () => number = Date.now): Promise<number | undefined> {
  try {
    const m = /^btime (\d+)$/m.exec(await readFile(join(hostRoot, 'proc/stat'), 'utf8'));
    if (m) return Number(m[1]) * 1000;
  } catch {
    // fall through to uptime
  }
  try {
    const up = Number.parseFloat(await readFile(join(hostRoot, 'proc/uptime'), 'utf8'));
    if (Number.isFinite(up)) return Math.round(now() - up * 1000);
  } catch {
    // no clock reference
  }
  return undefined;
}

/** The boot id of the host, or "unknown". */
export async function readBootId(hostRoot: string): Promise<string> {
  try {
    return (await readFile(join(hostRoot, 'proc/sys/kernel/random/boot_id'), 'utf8')).trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Reads kernel log records from /dev/kmsg (or a file of records). */
export class KmsgCollector implements Collector {
  readonly name = 'kmsg' as const;
  /** The path read: `<hostRoot>/dev/kmsg`. */
  readonly path: string;
  private readonly hostRoot: string;
  private readonly checkpoints: CheckpointReader;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly maxRecordsPerPoll: number;
  private readonly openDevice: (path: string) => Promise<KmsgDevice>;
  private readonly clock: Clock;
  private readonly health: SourceHealth;

  private sink: SignalSink | undefined;
  private readonly poller: Poller;
  private mode: 'device' | 'file' | 'none' = 'none';
  private device: KmsgDevice | undefined;
  private file: FileHandle | undefined;
  private fileOffset = 0;
  private fileIno = -1;
  private boot = 'unknown';
  private bootTimeMs: number | undefined;
  private lastSeq = -1;
  /** True when the last seq came from a checkpoint or a read of this boot (a jump after it is a gap). */
  private seqKnown = false;
  private overrun = false;
  private readonly recordBuf = Buffer.alloc(8192);
  private counters = { records: 0, lostRecords: 0, unparseable: 0, reopens: 0 };

  constructor(opts: KmsgCollectorOptions = {}) {
    this.hostRoot = opts.hostRoot ?? '/';
    this.path = join(this.hostRoot, 'dev/kmsg');
    this.checkpoints = opts.checkpoints ?? noCheckpoints;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.maxRecordsPerPoll = opts.maxRecordsPerPoll ?? 10_000;
    this.openDevice = opts.openDevice ?? openKmsgDevice;
    this.clock = opts.clock ?? systemClock;
    this.health = new SourceHealth({ name: 'kmsg', clock: this.clock, staleAfterMs: opts.staleAfterMs ?? Math.max(2 * IDLE_POLL_MAX_MS, 5 * this.pollIntervalMs) });
    this.poller = new Poller(() => this.poll(), {
      name: 'kmsg',
      intervalMs: this.pollIntervalMs,
      idleMaxMs: IDLE_POLL_MAX_MS,
      logger: this.logger,
      clock: this.clock,
      reader: this.health.main,
    });
  }

  private now(): number {
    return this.clock.now();
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    this.boot = await readBootId(this.hostRoot);
    this.bootTimeMs = await readBootTimeMs(this.hostRoot, () => this.now());
    const stored = readJsonCheckpoint<KmsgPosition>(this.checkpoints.get('kmsg', KMSG_CHECKPOINT_KEY));
    if (stored && stored.boot === this.boot && typeof stored.seq === 'number') {
      this.lastSeq = stored.seq;
      this.seqKnown = true;
    }
    await this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
    await this.closeSource();
  }

  /** Polls now when the next poll is due within `withinMs`, or while idle (Collector.catchUp). */
  async catchUp(withinMs: number): Promise<void> {
    await this.poller.catchUp(withinMs);
  }

  /** Reads what is there now (after a poll in progress); for tests. */
  async pollNow(): Promise<void> {
    await this.poller.pollNow();
  }

  status(): SourceStatus {
    const detail: Record<string, string | number | boolean> = { mode: this.mode, boot: this.boot, lastSeq: this.lastSeq, ...this.counters };
    if (this.bootTimeMs === undefined) detail.bootTime = 'unknown';
    return this.health.status(detail);
  }

  private async closeSource(): Promise<void> {
    const d = this.device;
    const f = this.file;
    this.device = undefined;
    this.file = undefined;
    await d?.close().catch(() => undefined);
    await f?.close().catch(() => undefined);
  }

  /** Opens the device or file; a missing path disables the source (it is retried), other errors make it fail. */
  private async ensureOpen(): Promise<boolean> {
    if (this.device || this.file) return true;
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(this.path);
    } catch (err) {
      if (errCode(err) === 'ENOENT') {
        this.health.main.disable(`${this.path} not found`);
        this.mode = 'none';
        return false;
      }
      throw err;
    }
    if (st.isCharacterDevice()) {
      this.device = await this.openDevice(this.path);
      this.mode = 'device';
    } else if (st.isFile()) {
      this.file = await open(this.path, 'r');
      this.fileIno = st.ino;
      this.fileOffset = 0;
      this.mode = 'file';
    } else {
      throw new KmsgOpenError(`${this.path} is neither the kmsg device nor a file of records`);
    }
    this.health.main.enable();
    this.counters.reopens++;
    return true;
  }

  /** Resolves whether anything new was read (false lets the poll back off while idle), or ABSENT while /dev/kmsg is missing or refused. */
  private async poll(): Promise<RunOutcome> {
    if (this.poller.stopped) return true;
    try {
      if (!(await this.ensureOpen())) return ABSENT;
    } catch (err) {
      const code = errCode(err);
      if (code === 'EPERM' || code === 'EACCES') {
        // Container runtimes refuse /dev/kmsg to unprivileged pods whatever their capabilities:
        // not a fault to page anyone about. Kernel lines still come through journald.
        this.health.main.disable(`cannot open ${this.path}: ${code} (unprivileged container or dmesg_restrict); kernel messages come from journald (_TRANSPORT=kernel) instead`);
        return ABSENT;
      }
      throw new KmsgOpenError(`cannot open ${this.path}: ${(err as Error).message}`);
    }
    const out: Signal[] = [];
    const before = this.lastSeq;
    try {
      if (this.device) await this.readDevice(out);
      else await this.readFile(out);
    } catch (err) {
      await this.closeSource();
      this.emit(out, before);
      throw err;
    }
    this.emit(out, before);
    return out.length > 0;
  }

  private emit(out: Signal[], seqBefore: number): void {
    if (this.lastSeq !== seqBefore) {
      const value: KmsgPosition = { boot: this.boot, seq: this.lastSeq };
      out.push({ type: 'checkpoint', source: 'kmsg', key: KMSG_CHECKPOINT_KEY, value: JSON.stringify(value) });
    }
    if (!this.poller.stopped) this.health.emit(this.sink, out);
  }

  private async readDevice(out: Signal[]): Promise<void> {
    const dev = this.device!;
    for (let n = 0; n < this.maxRecordsPerPoll; n++) {
      let len: number;
      try {
        len = await dev.read(this.recordBuf);
      } catch (err) {
        const code = errCode(err);
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        if (code === 'EPIPE') {
          // Records were overwritten; the next read returns the oldest one still there.
          this.overrun = true;
          continue;
        }
        throw err;
      }
      if (len === 0) return;
      // One record per read: the header line, then dictionary lines (" KEY=value") we do not need.
      let end = this.recordBuf.indexOf(10);
      if (end < 0 || end > len) end = len;
      this.record(this.recordBuf.toString('utf8', 0, end), out);
    }
  }

  private async readFile(out: Signal[]): Promise<void> {
    const st = await stat(this.path).catch(() => undefined);
    if (!st) {
      await this.closeSource();
      return;
    }
    if (st.ino !== this.fileIno || st.size < this.fileOffset) {
      // Replaced or truncated: read again from the start; sequence numbers drop what was read.
      await this.closeSource();
      await this.ensureOpen();
    }
    const fh = this.file!;
    const buf = Buffer.allocUnsafe(256 * 1024);
    let records = 0;
    while (records < this.maxRecordsPerPoll) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.fileOffset);
      if (bytesRead === 0) return;
      let pos = 0;
      for (;;) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0 || nl >= bytesRead) break;
        if (buf[pos] !== 32) {
          this.record(buf.toString('utf8', pos, nl), out);
          records++;
        }
        pos = nl + 1;
      }
      if (pos === 0) {
        if (bytesRead === buf.length) pos = bytesRead; // a record longer than the buffer: drop it
        else return; // an unfinished last line
      }
      this.fileOffset += pos;
    }
  }

  private record(text: string, out: Signal[]): void {
    const rec = parseKmsgRecord(text);
    if (!rec) {
      this.counters.unparseable++;
      this.health.drop();
      return;
    }
    if (this.seqKnown && rec.seq <= this.lastSeq) return;
    if (this.seqKnown && rec.seq > this.lastSeq + 1) this.gap(rec, out);
    this.overrun = false;
    this.lastSeq = rec.seq;
    this.seqKnown = true;
    this.counters.records++;
    const bootMs = this.bootTimeMs ?? this.now() - Math.floor(rec.usec / 1000);
    for (const line of kmsgToLogLines(rec, bootMs)) out.push({ type: 'log', line });
  }

  private gap(rec: KmsgRecord, out: Signal[]): void {
    const from = this.lastSeq + 1;
    const to = rec.seq - 1;
    const lost = to - from + 1;
    const why = this.overrun ? 'overwritten in the kernel ring buffer before they were read (EPIPE)' : 'no longer in the kernel ring buffer when reading resumed';
    this.counters.lostRecords += lost;
    out.push({ type: 'gap', at: isoAt(this.now()), source: 'kmsg', detail: `kmsg records ${from}..${to} (${lost}) ${why}` });
    this.logger.warn({ from, to, lost }, 'kernel log records lost');
  }
}
