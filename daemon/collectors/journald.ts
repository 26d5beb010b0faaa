/**
 * journald: runs `journalctl -o json --follow` filtered to the node's runtime
 * units (kubelet, containerd, crio, docker, k3s), time sync units and the
 * kernel transport, and checkpoints `__CURSOR`, so a restart resumes right
 * after the last committed record. journalctl is restarted with backoff when
 * it exits. Without journalctl, or without a journal under the host root, it
 * falls back to following `/var/log/syslog` or `/var/log/messages`.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { Collector, LogLine, Signal, SignalSink, SourceStatus, Timestamp } from '../core/types.js';
import { ABSENT, Backoff, type BackoffOptions, IDLE_POLL_MAX_MS, type Periodic, type RestartLoop, type RunOutcome, periodic, restartLoop } from '../core/runtime/backoff.js';
import { type Clock, after, isoAt, systemClock } from '../core/runtime/clock.js';
import { type HealthReader, SourceHealth } from '../core/runtime/health.js';
import { type CheckpointReader, noCheckpoints } from './checkpoints.js';
import { type JournalRecord, journalToLogLine } from './parse.js';
import { FileFollower, parseSyslogLine, syslogToLogLine } from './syslog.js';
import { errCode } from './errno.js';

/** Checkpoint key of the journal cursor. */
export const JOURNAL_CURSOR_KEY = 'cursor';
/** Checkpoint key of the syslog fallback position. */
export const SYSLOG_POSITION_KEY = 'syslog';

/** Units read by default: the node agent and the container runtimes. */
export const DEFAULT_JOURNAL_UNITS = ['kubelet', 'containerd', 'crio', 'docker', 'k3s', 'k3s-agent'];
/** A log file an edge distribution's embedded component writes instead of the journal, read as that pseudo-unit's journal. */
export interface EmbeddedLogFile {
  /** Path under the host root. */
  path: string;
  /** Unit name its lines carry (a member of a log-rule unit group, e.g. `rke2-kubelet`). */
  unit: string;
}

/**
 * k3s and RKE2 write their embedded containerd's log (and RKE2 its kubelet's)
 * to files under /var/lib/rancher, not to the journal. A file that does not
 * exist is skipped and picked up when it appears.
 */
export const DEFAULT_EMBEDDED_LOG_FILES: readonly EmbeddedLogFile[] = Object.freeze([
  { path: 'var/lib/rancher/k3s/agent/containerd/containerd.log', unit: 'k3s-containerd' },
  { path: 'var/lib/rancher/rke2/agent/containerd/containerd.log', unit: 'rke2-containerd' },
  { path: 'var/lib/rancher/rke2/agent/logs/kubelet.log', unit: 'rke2-kubelet' },
]);

const LOGFMT_TIME = /^time="([^"]+)"/;
const KLOG_HEAD = /^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{1,6})\s/;

/**
 * Time of a line of an embedded log file: containerd's logfmt `time="…"`, or
 * klog's `I1206 10:00:00.123456` header (no year: the year that puts it not more
 * than a day ahead of now). Lines without either take `nowMs`.
 */
export function embeddedLineTime(line: string, nowMs: number): Timestamp {
  const lf = LOGFMT_TIME.exec(line);
  if (lf) {
    const ms = Date.parse(lf[1]!.replace(' ', 'T').replace(/(\d\d:\d\d:\d\d(?:\.\d+)?)$/, '$1Z'));
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  const k = KLOG_HEAD.exec(line);
  if (k) {
    const year = new Date(nowMs).getUTCFullYear();
    const [mo, d, h, mi, se] = [k[1], k[2], k[3], k[4], k[5]].map(Number) as [number, number, number, number, number];
    const frac = Number(k[6]!.padEnd(3, '0').slice(0, 3));
    let ms = Date.UTC(year, mo - 1, d, h, mi, se, frac);
    if (ms > nowMs + 86_400_000) ms = Date.UTC(year - 1, mo - 1, d, h, mi, se, frac);
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  return new Date(nowMs).toISOString();
}

/** Time synchronisation units read by default (ClockSkew). */
export const DEFAULT_TIME_SYNC_UNITS = ['chronyd', 'chrony', 'systemd-timesyncd'];

/** Options of {@link JournaldCollector}. */
export interface JournaldCollectorOptions {
  /** Prefix of host paths; with "/" the host's default journal is read. Defaults to "/". */
  hostRoot?: string;
  /** Checkpoints stored at the last commit. Defaults to none. */
  checkpoints?: CheckpointReader;
  /** Logger. Defaults to a silent pino logger. */
  logger?: Logger;
  /** The journalctl command (looked up on PATH unless absolute). Defaults to "journalctl". */
  journalctl?: string;
  /** Units read (".service" is added when there is no suffix). Defaults to DEFAULT_JOURNAL_UNITS. */
  units?: string[];
  /** Time sync units read as well. Defaults to DEFAULT_TIME_SYNC_UNITS. */
  timeSyncUnits?: string[];
  /** Log files of embedded components read alongside the journal. Defaults to DEFAULT_EMBEDDED_LOG_FILES. */
  logFiles?: readonly EmbeddedLogFile[];
  /** Read kernel messages (`_TRANSPORT=kernel`). Defaults to true. */
  kernel?: boolean;
  /** Records read back when there is no cursor yet. Defaults to 1000. */
  initialLines?: number;
  /** Milliseconds records are batched before they are handed on. Defaults to 200. */
  flushIntervalMs?: number;
  /** Records per batch at most. Defaults to 1000. */
  maxBatch?: number;
  /** Backoff between journalctl restarts. Defaults to 1 s doubling up to 60 s, jitter 0.2. */
  backoff?: BackoffOptions;
  /** Milliseconds start() waits for journalctl's first output or exit. Defaults to 1000. */
  startSettleMs?: number;
  /** Milliseconds between reads of the syslog fallback. Defaults to 1000. */
  syslogPollIntervalMs?: number;
  /**
   * No sign of life for this long makes the source stale: no record and no
   * running (not stopped, not stuck in the kernel) journalctl, or no finished
   * read of the syslog or embedded files. Defaults to 60000.
   */
  staleAfterMs?: number;
  /** Clock of batching, restarts, polls and staleness. Defaults to the system clock. */
  clock?: Clock;
}

/** Checkpoint key of an embedded log file's position. */
function embeddedKey(file: EmbeddedLogFile): string {
  return `file:${file.path}`;
}

/** Unit name with its type suffix (`kubelet` → `kubelet.service`). */
export function unitName(u: string): string {
  return /\.[a-z]+$/.test(u) ? u : `${u}.service`;
}

/** The journalctl match arguments: any of the units (as the process or as systemd's subject), or the kernel. */
export function journalMatches(units: readonly string[], kernel: boolean): string[] {
  const names = units.map(unitName);
  const args: string[] = [];
  if (names.length > 0) {
    args.push(...names.map((u) => `_SYSTEMD_UNIT=${u}`), '+', ...names.map((u) => `UNIT=${u}`));
  }
  if (kernel) {
    if (args.length > 0) args.push('+');
    args.push('_TRANSPORT=kernel');
  }
  return args;
}

/** The realtime (epoch seconds) a journal cursor points at, from its `t=` field. */
export function cursorTimeSeconds(cursor: string): number | undefined {
  const m = /(?:^|;)t=([0-9a-f]+)/.exec(cursor);
  return m ? Math.floor(Number.parseInt(m[1]!, 16) / 1e6) : undefined;
}

/**
 * Whether a process is alive and making progress: not stopped (SIGSTOP,
 * traced), not a zombie, and not in uninterruptible sleep (stuck on a hung
 * disk). Where /proc cannot tell, a process that has not exited counts as alive.
 */
async function processMakesProgress(pid: number): Promise<boolean> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  // The command name in parentheses may hold spaces and parentheses; the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === '' || !'TtZXD'.includes(state);
}

/** Raised when journalctl exits. */
export class JournalctlExitError extends Error {
  readonly code = 'JOURNALCTL_EXITED';
  override readonly name = 'JournalctlExitError';
  constructor(
    message: string,
    /** Exit code, or null when killed by a signal. */
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

/** Reads the systemd journal (or syslog as a fallback). */
export class JournaldCollector implements Collector {
  readonly name = 'journald' as const;
  private readonly hostRoot: string;
  private readonly checkpoints: CheckpointReader;
  private readonly logger: Logger;
  private readonly journalctl: string;
  private readonly units: string[];
  private readonly unitSet: Set<string>;
  private readonly kernel: boolean;
  private readonly initialLines: number;
  private readonly flushIntervalMs: number;
  private readonly maxBatch: number;
  private readonly backoffOpts: BackoffOptions;
  private readonly startSettleMs: number;
  private readonly syslogPollIntervalMs: number;
  private readonly clock: Clock;
  private readonly health: SourceHealth;
  /** journalctl, or the syslog file that stands in for it. */
  private readonly journal: HealthReader;

  private sink: SignalSink | undefined;
  private backend: 'journalctl' | 'syslog' | 'none' = 'none';
  /** `--directory` given to journalctl, or undefined for the default journal. */
  readonly journalDir: string | undefined;
  private loop: RestartLoop | undefined;
  private child: ChildProcessByStdio<null, Readable, Readable> | undefined;
  private cursor: string | undefined;
  private cursorFailures = 0;
  private since: number | undefined;
  private batch: LogLine[] = [];
  private batchCursor: string | undefined;
  private cancelFlush: (() => void) | undefined;
  private syslog: FileFollower | undefined;
  private syslogTask: Periodic | undefined;
  private readonly logFiles: readonly EmbeddedLogFile[];
  private embedded: { file: EmbeddedLogFile; follower: FileFollower }[] = [];
  private embeddedTask: Periodic | undefined;
  private firstAttempt: (() => void) | undefined;
  private stopped = false;
  private counters = { records: 0, unparseable: 0 };

  constructor(opts: JournaldCollectorOptions = {}) {
    this.hostRoot = opts.hostRoot ?? '/';
    this.checkpoints = opts.checkpoints ?? noCheckpoints;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.journalctl = opts.journalctl ?? 'journalctl';
    this.units = [...new Set([...(opts.units ?? DEFAULT_JOURNAL_UNITS), ...(opts.timeSyncUnits ?? DEFAULT_TIME_SYNC_UNITS)].map(unitName))];
    this.unitSet = new Set(this.units);
    this.kernel = opts.kernel ?? true;
    this.logFiles = opts.logFiles ?? DEFAULT_EMBEDDED_LOG_FILES;
    this.initialLines = opts.initialLines ?? 1000;
    this.flushIntervalMs = opts.flushIntervalMs ?? 200;
    this.maxBatch = opts.maxBatch ?? 1000;
    this.backoffOpts = opts.backoff ?? { initialMs: 1000, maxMs: 60_000, jitter: 0.2 };
    this.startSettleMs = opts.startSettleMs ?? 1000;
    this.syslogPollIntervalMs = opts.syslogPollIntervalMs ?? 1000;
    this.clock = opts.clock ?? systemClock;
    this.health = new SourceHealth({ name: 'journald', clock: this.clock, staleAfterMs: opts.staleAfterMs ?? 60_000 });
    this.journal = this.health.reader('journal');
    if (this.hostRoot !== '/') {
      // Persistent journal first; a volatile-only host keeps it under /run.
      const persistent = join(this.hostRoot, 'var/log/journal');
      const volatile = join(this.hostRoot, 'run/log/journal');
      this.journalDir = existsSync(persistent) ? persistent : existsSync(volatile) ? volatile : undefined;
    }
  }

  async start(sink: SignalSink): Promise<void> {
    this.sink = sink;
    this.stopped = false;
    this.cursor = this.checkpoints.get('journald', JOURNAL_CURSOR_KEY);
    await this.startEmbedded();
    if (this.hostRoot !== '/' && !this.journalDir) {
      await this.startSyslog(`no journal under ${this.hostRoot} (var/log/journal, run/log/journal)`);
      return;
    }
    this.backend = 'journalctl';
    const first = new Promise<void>((resolve) => {
      this.firstAttempt = resolve;
    });
    const cancelSettle = after(this.clock, this.startSettleMs, () => this.settleFirst());
    this.loop = restartLoop((signal) => this.runJournalctl(signal), {
      name: 'journalctl',
      backoff: new Backoff({ clock: this.clock, ...this.backoffOpts }),
      clock: this.clock,
      reader: this.journal,
      logger: this.logger,
    });
    await first;
    cancelSettle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.settleFirst();
    await this.loop?.stop();
    this.loop = undefined;
    this.flush();
    await this.syslogTask?.stop();
    this.syslogTask = undefined;
    await this.syslog?.close();
    this.syslog = undefined;
    await this.embeddedTask?.stop();
    this.embeddedTask = undefined;
    for (const e of this.embedded) await e.follower.close();
    this.embedded = [];
  }

  /** Reads the embedded log files and the syslog file now when their next read is due within `withinMs`, or while idle (Collector.catchUp). */
  async catchUp(withinMs: number): Promise<void> {
    await Promise.all([this.embeddedTask?.catchUp(withinMs), this.syslogTask?.catchUp(withinMs)]);
  }

  /** Reads the embedded log files now (after a read in progress); for tests. */
  async pollEmbeddedNow(): Promise<void> {
    await this.embeddedTask?.runNow();
  }

  private async startEmbedded(): Promise<void> {
    if (this.logFiles.length === 0) return;
    this.embedded = this.logFiles.map((file) => {
      const follower = new FileFollower(join(this.hostRoot, file.path));
      follower.restore(this.checkpoints.get('journald', embeddedKey(file)));
      return { file, follower };
    });
    this.embeddedTask = periodic(() => this.pollEmbedded(), {
      name: 'embedded-logs',
      intervalMs: this.syslogPollIntervalMs,
      idleMaxMs: IDLE_POLL_MAX_MS,
      logger: this.logger,
      clock: this.clock,
      reader: this.health.reader('embedded'),
    });
    await this.embeddedTask.runNow();
  }

  /** Resolves whether anything new was read (false lets the poll back off while idle), or ABSENT while none of the files exists. */
  private async pollEmbedded(): Promise<RunOutcome> {
    const out: Signal[] = [];
    const nowMs = this.clock.now();
    for (const { file, follower } of this.embedded) {
      if (this.stopped) return true;
      const before = follower.checkpoint();
      const { lines, gaps } = await follower.poll();
      for (const g of gaps) out.push({ type: 'gap', at: isoAt(nowMs), source: 'journald', detail: g });
      for (const text of lines) {
        if (text.length === 0) continue;
        this.counters.records++;
        out.push({ type: 'log', line: { source: 'journald', unit: file.unit, at: embeddedLineTime(text, nowMs), text } });
      }
      const position = follower.checkpoint();
      if (position !== undefined && position !== before) out.push({ type: 'checkpoint', source: 'journald', key: embeddedKey(file), value: position });
    }
    // Files that do not exist (another distribution) are no source of this node; they are picked up when they appear.
    const embedded = this.health.reader('embedded');
    const present = this.embedded.some((e) => e.follower.following);
    if (present) embedded.enable();
    else embedded.disable('no embedded component log file present');
    this.deliver(out);
    return out.length > 0 || (present ? false : ABSENT);
  }

  status(): SourceStatus {
    const detail: Record<string, string | number | boolean> = { backend: this.backend, ...this.counters };
    if (this.journalDir) detail.directory = this.journalDir;
    if (this.backend === 'journalctl') detail.running = this.child !== undefined;
    return this.health.status(detail);
  }

  /** Reads the syslog fallback now (after a read in progress); for tests. */
  async pollSyslogNow(): Promise<void> {
    await this.syslogTask?.runNow();
  }

  private settleFirst(): void {
    const f = this.firstAttempt;
    this.firstAttempt = undefined;
    f?.();
  }

  /** The journalctl command line for the current position. */
  journalctlArgs(): string[] {
    // --merge: without it, systemd 252's --follow limits the read to the current boot, so a
    // journal folder with no entries yet makes journalctl exit 1 ("No such boot ID in journal")
    // and a cursor from before a reboot would skip that boot's last records (the interesting ones
    // after a power cut or panic).
    const args = ['-o', 'json', '--follow', '--merge', '--no-pager', '--output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,UNIT,SYSLOG_IDENTIFIER,_TRANSPORT'];
    if (this.journalDir) args.push(`--directory=${this.journalDir}`);
    if (this.cursor) args.push(`--after-cursor=${this.cursor}`, '--no-tail');
    else if (this.since !== undefined) args.push(`--since=@${this.since}`, '--no-tail');
    else args.push(`--lines=${this.initialLines}`);
    args.push(...journalMatches(this.units, this.kernel));
    return args;
  }

  private runJournalctl(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const usedCursor = this.cursor !== undefined;
      const recordsBefore = this.counters.records;
      const child = spawn(this.journalctl, this.journalctlArgs(), { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      let stderr = '';
      let carry = '';
      let spawned = false;
      const onAbort = () => {
        child.kill('SIGTERM');
        const cancelKill = after(this.clock, 2000, () => child.kill('SIGKILL'));
        child.once('close', cancelKill);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const alive = new AbortController();
      child.once('spawn', () => {
        spawned = true;
        // Running for a while without exiting counts as recovered; so does the first record.
        void this.watchLiveness(child, alive.signal);
      });
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        const text = carry + chunk;
        const lines = text.split('\n');
        carry = lines.pop() ?? '';
        for (const l of lines) this.record(l);
        if (this.batch.length >= this.maxBatch) this.flush();
        else this.scheduleFlush();
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        // Keep the tail: it says why journalctl gave up.
        stderr = (stderr + chunk).slice(-2000);
      });
      child.once('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        this.child = undefined;
        if (errCode(err) === 'ENOENT' && !spawned) {
          void this.startSyslog('journalctl not found').then(() => {
            this.settleFirst();
            resolve();
          });
          // Nothing to restart: stop the loop from rerunning a missing binary.
          void this.loop?.stop();
          return;
        }
        this.settleFirst();
        reject(err);
      });
      child.once('close', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        alive.abort();
        if (carry) this.record(carry);
        carry = '';
        this.flush();
        this.child = undefined;
        if (!spawned) return; // 'error' handled it
        this.settleFirst();
        if (signal.aborted) {
          resolve();
          return;
        }
        const produced = this.counters.records > recordsBefore;
        if (usedCursor && !produced && code !== 0) {
          // A cursor from another journal (machine re-imaged, journal vacuumed) cannot be sought:
          // after two tries, resume by time instead of failing forever.
          this.cursorFailures++;
          if (this.cursorFailures >= 2 && this.cursor) {
            this.since = cursorTimeSeconds(this.cursor);
            this.logger.warn({ cursor: this.cursor, since: this.since }, 'journal cursor unusable, resuming by time');
            // Records between the cursor and now may have been vacuumed, and some at that second come again: say so.
            const at = this.since === undefined ? 'the last --lines records' : isoAt(this.since * 1000);
            this.deliver([
              { type: 'gap', at: isoAt(this.clock.now()), source: 'journald', detail: `journal cursor not found (journal rotated, vacuumed or replaced); resumed from ${at}: records after the cursor that were removed are lost, records of that second may repeat` },
            ]);
            this.cursor = undefined;
            this.cursorFailures = 0;
          }
        } else if (produced) {
          this.cursorFailures = 0;
        }
        const why = stderr.trim().split('\n').pop() ?? '';
        reject(new JournalctlExitError(`journalctl exited with ${code === null ? `signal ${sig}` : `code ${code}`}${why ? `: ${why}` : ''}`, code));
      });
    });
  }

  private record(line: string): void {
    if (line.length === 0) return;
    let r: JournalRecord;
    try {
      r = JSON.parse(line) as JournalRecord;
    } catch {
      this.unparseable();
      return;
    }
    this.counters.records++;
    this.journal.ok();
    if (typeof r.__CURSOR === 'string') this.batchCursor = r.__CURSOR;
    const l = journalToLogLine(r);
    if (l) this.batch.push(l);
    else this.unparseable();
  }

  private unparseable(): void {
    this.counters.unparseable++;
    this.health.drop();
  }

  /**
   * journalctl --follow prints nothing while the journal is quiet, so its
   * life is checked instead: after startSettleMs and then three times per
   * staleAfterMs, a journalctl that runs and is not stopped or stuck counts
   * as live. One that stays stopped or stuck makes the source stale.
   */
  private async watchLiveness(child: ChildProcessByStdio<null, Readable, Readable>, signal: AbortSignal): Promise<void> {
    let wait = this.startSettleMs;
    while (!signal.aborted) {
      await this.clock.sleep(wait, signal);
      if (signal.aborted || this.child !== child || child.pid === undefined) return;
      if (await processMakesProgress(child.pid)) {
        if (!signal.aborted) this.journal.ok();
      }
      wait = Math.max(1000, Math.floor(this.health.staleAfterMs / 3));
    }
  }

  private scheduleFlush(): void {
    if (this.cancelFlush !== undefined) return;
    this.cancelFlush = after(this.clock, this.flushIntervalMs, () => {
      this.cancelFlush = undefined;
      this.flush();
    });
  }

  private flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    const lines = this.batch;
    const cursor = this.batchCursor;
    this.batch = [];
    this.batchCursor = undefined;
    if (lines.length === 0 && cursor === undefined) return;
    const out: Signal[] = lines.map((line) => ({ type: 'log', line }));
    if (cursor !== undefined) {
      this.cursor = cursor;
      this.since = undefined;
      out.push({ type: 'checkpoint', source: 'journald', key: JOURNAL_CURSOR_KEY, value: cursor });
    }
    this.deliver(out);
    // start() waits for the first batch (or exit, or startSettleMs).
    this.settleFirst();
  }

  private deliver(out: Signal[]): void {
    if (!this.stopped) this.health.emit(this.sink, out);
  }

  private async startSyslog(reason: string): Promise<void> {
    const candidates = ['var/log/syslog', 'var/log/messages'].map((p) => join(this.hostRoot, p));
    const path = candidates.find((p) => existsSync(p));
    if (!path) {
      this.backend = 'none';
      this.journal.disable(`${reason}, and no ${candidates.join(' or ')}`);
      this.logger.warn({ reason }, 'journald source disabled');
      return;
    }
    this.backend = 'syslog';
    this.health.note(reason);
    this.logger.info({ reason, path }, 'reading syslog instead of the journal');
    this.syslog = new FileFollower(path);
    this.syslog.restore(this.checkpoints.get('journald', SYSLOG_POSITION_KEY));
    this.syslogTask = periodic(() => this.pollSyslog(), {
      name: 'syslog',
      intervalMs: this.syslogPollIntervalMs,
      idleMaxMs: IDLE_POLL_MAX_MS,
      logger: this.logger,
      clock: this.clock,
      reader: this.journal,
    });
    await this.syslogTask.runNow();
  }

  /** Resolves whether anything new was read (false lets the poll back off while idle). */
  private async pollSyslog(): Promise<boolean> {
    const f = this.syslog;
    if (!f || this.stopped) return true;
    const before = f.checkpoint();
    const { lines, gaps } = await f.poll();
    const out: Signal[] = [];
    const nowMs = this.clock.now();
    for (const g of gaps) out.push({ type: 'gap', at: isoAt(nowMs), source: 'journald', detail: g });
    for (const raw of lines) {
      const s = parseSyslogLine(raw, nowMs);
      if (!s) {
        this.unparseable();
        continue;
      }
      this.counters.records++;
      const l = syslogToLogLine(s, this.unitSet, this.kernel);
      if (l) out.push({ type: 'log', line: l });
    }
    const position = f.checkpoint();
    if (position !== undefined && position !== before) out.push({ type: 'checkpoint', source: 'journald', key: SYSLOG_POSITION_KEY, value: position });
    this.deliver(out);
    return out.length > 0;
  }
}
