/**
 * Parsers for the three log formats nodesage reads: CRI container log lines,
 * /dev/kmsg records and `journalctl -o json` records. Pure functions: the live
 * collectors and the bundle reader share them.
 */
import type { ContainerRef, LogLine, Timestamp } from '../core/types.js';

/** One parsed CRI log line: `<RFC3339Nano> <stdout|stderr> <P|F> <message>`. */
export interface CriLine {
  /** The original RFC3339Nano time. */
  time: string;
  stream: 'stdout' | 'stderr';
  /** True for `P`: the message continues in the next line. */
  partial: boolean;
  message: string;
}

/**
 * Parses one CRI log line, or returns null when it is not one (binary garbage,
 * a Docker json-file line): callers count and skip those.
 */
export function parseCriLine(line: string): CriLine | null {
  const s1 = line.indexOf(' ');
  if (s1 < 20) return null;
  const s2 = line.indexOf(' ', s1 + 1);
  if (s2 < 0) return null;
  const stream = line.slice(s1 + 1, s2);
  if (stream !== 'stdout' && stream !== 'stderr') return null;
  // Older runtimes wrote no tag; accept `P`/`F` and fall back to full line.
  const tag = line.charCodeAt(s2 + 1);
  const afterTag = line.charCodeAt(s2 + 2);
  let partial = false;
  let msgStart = s2 + 1;
  if ((tag === 80 /* P */ || tag === 70 /* F */) && (afterTag === 32 || Number.isNaN(afterTag))) {
    partial = tag === 80;
    msgStart = s2 + 3;
  }
  const time = line.slice(0, s1);
  // Cheap shape check of the time: digits and a 'T' at position 10.
  if (time.charCodeAt(10) !== 84 /* T */) return null;
  return { time, stream, partial, message: msgStart <= line.length ? line.slice(msgStart) : '' };
}

/** Normalises an RFC3339(Nano) time to an ISO string with milliseconds, or null. */
export function toIso(time: string): Timestamp | null {
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** Parses `<ns>_<pod>_<uid>` (a /var/log/pods directory name). */
export function parsePodLogDir(dir: string): { namespace: string; pod: string; uid: string } | null {
  // Namespace and pod names cannot contain '_', the UID cannot either.
  const parts = dir.split('_');
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return null;
  return { namespace: parts[0]!, pod: parts[1]!, uid: parts[2]! };
}

/** Builds a ContainerRef from a pod log dir name, container dir name and file name (`<n>.log`). */
export function containerRefFromPath(podDir: string, container: string, file?: string): ContainerRef | null {
  const p = parsePodLogDir(podDir);
  if (!p) return null;
  const ref: ContainerRef = { namespace: p.namespace, pod: p.pod, uid: p.uid, container };
  const m = file ? /^(\d+)\.log/.exec(file) : null;
  if (m) ref.restart = Number(m[1]);
  return ref;
}

/** One parsed /dev/kmsg record. */
export interface KmsgRecord {
  /** Syslog priority (0..7), without the facility bits. */
  priority: number;
  facility: number;
  seq: number;
  /** Microseconds since boot. */
  usec: number;
  /** Continuation flag: `c` = more fragments follow, `+` continuation, `-` otherwise. */
  flags: string;
  message: string;
}

/**
 * Parses one kmsg record `<pri>,<seq>,<usec>,<flags>[,...];<message>`. Kernel
 * escapes (`\x0a`) are decoded so multi-line records become real lines.
 * Continuation lines (starting with a space, `KEY=value` dictionary) return null.
 */
export function parseKmsgRecord(record: string): KmsgRecord | null {
  const semi = record.indexOf(';');
  if (semi < 0) return null;
  const head = record.slice(0, semi).split(',');
  if (head.length < 4) return null;
  const pri = Number(head[0]);
  const seq = Number(head[1]);
  const usec = Number(head[2]);
  if (!Number.isFinite(pri) || !Number.isFinite(seq) || !Number.isFinite(usec)) return null;
  let message = record.slice(semi + 1);
  if (message.endsWith('\n')) message = message.slice(0, -1);
  message = message.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  return { priority: pri & 7, facility: pri >> 3, seq, usec, flags: head[3] ?? '-', message };
}

/** Converts a kmsg record to LogLines (one per message line), with wall time from the boot time. */
export function kmsgToLogLines(rec: KmsgRecord, bootTimeMs: number): LogLine[] {
  const at = new Date(bootTimeMs + Math.floor(rec.usec / 1000)).toISOString();
  return rec.message.split('\n').filter((t) => t.length > 0).map((text) => ({ source: 'kmsg', at, text, priority: rec.priority }));
}

/** The fields of a `journalctl -o json` record that nodesage reads. */
export interface JournalRecord {
  __REALTIME_TIMESTAMP?: string;
  __CURSOR?: string;
  _SYSTEMD_UNIT?: string;
  UNIT?: string;
  SYSLOG_IDENTIFIER?: string;
  _TRANSPORT?: string;
  PRIORITY?: string;
  /** A string, or an array of bytes when the message is not valid UTF-8. */
  MESSAGE?: string | number[] | null;
  [k: string]: unknown;
}

/**
 * The unit a journal record is about: systemd's own lines about a unit carry
 * `_SYSTEMD_UNIT=init.scope` and `UNIT=<unit>`; kernel lines have no unit.
 */
export function journalUnit(r: JournalRecord): string {
  if (r._TRANSPORT === 'kernel') return 'kernel';
  if (r._SYSTEMD_UNIT === 'init.scope' && r.UNIT) return r.UNIT;
  return r._SYSTEMD_UNIT ?? (r.SYSLOG_IDENTIFIER ? `${r.SYSLOG_IDENTIFIER}` : 'unknown');
}

/** Converts a journal record to a LogLine, or null when it has no message or time. */
export function journalToLogLine(r: JournalRecord): LogLine | null {
  let msg = r.MESSAGE;
  if (msg == null) return null;
  if (Array.isArray(msg)) msg = Buffer.from(msg).toString('utf8');
  const usec = Number(r.__REALTIME_TIMESTAMP);
  if (!Number.isFinite(usec)) return null;
  const line: LogLine = {
    source: 'journald',
    at: new Date(Math.floor(usec / 1000)).toISOString(),
    text: msg,
    unit: journalUnit(r),
  };
  const pri = Number(r.PRIORITY);
  if (r.PRIORITY !== undefined && Number.isFinite(pri)) line.priority = pri;
  return line;
}

/** Joins CRI partial lines per stream; a line longer than `maxBytes` is cut and marked. */
export class PartialJoiner {
  private readonly pending = new Map<string, { time: string; parts: string[]; bytes: number; truncated: boolean }>();

  /** @param maxBytes longest joined message kept. Defaults to 64 KiB. */
  constructor(private readonly maxBytes = 64 * 1024) {}

  /** Adds one parsed line; returns the complete message when the line is final. */
  push(key: string, l: CriLine): { time: string; message: string; truncated: boolean } | null {
    let p = this.pending.get(key);
    if (!p) {
      p = { time: l.time, parts: [], bytes: 0, truncated: false };
      this.pending.set(key, p);
    }
    if (!p.truncated) {
      const room = this.maxBytes - p.bytes;
      if (l.message.length > room) {
        p.parts.push(l.message.slice(0, Math.max(0, room)));
        p.bytes = this.maxBytes;
        p.truncated = true;
      } else {
        p.parts.push(l.message);
        p.bytes += l.message.length;
      }
    }
    if (l.partial) return null;
    this.pending.delete(key);
    return { time: p.time, message: p.parts.join(''), truncated: p.truncated };
  }
}

/** Options of {@link CriReader}. */
export interface CriReaderOptions {
  /** Longest message kept, in bytes, after joining partial lines; the rest is cut and the line marked truncated. Defaults to 65536. */
  maxLineBytes?: number;
  /** A partial-line group still open this many file bytes after it began is emitted as it is, marked truncated. Defaults to 1048576. */
  maxPendingBytes?: number;
}

/** Where a {@link CriReader} resumes: re-reading from `offset` and dropping the first `skip` messages reproduces its output exactly. */
export interface CriPosition {
  offset: number;
  skip: number;
}

interface PendingGroup {
  /** File offset of the first part. */
  start: number;
  at: Timestamp | null;
  parts: Buffer[];
  bytes: number;
  truncated: boolean;
}

const NL = 10;
const SPACE = 32;
const STREAMS = ['stdout', 'stderr'] as const;

/** Length of the longest prefix of buf[start, start+max) that ends on a UTF-8 character boundary. */
function utf8Cut(buf: Buffer, start: number, max: number): number {
  let end = start + max;
  // Back off over continuation bytes (10xxxxxx) so a multi-byte character is never split.
  let back = 0;
  while (back < 4 && end > start && ((buf[end] ?? 0) & 0xc0) === 0x80) {
    end--;
    back++;
  }
  return end - start;
}

/**
 * Reads CRI log bytes (`<RFC3339Nano> <stdout|stderr> <P|F> <message>\n`) into
 * LogLines: partial lines joined per stream up to `maxLineBytes`, garbage lines
 * counted and skipped. It works on bytes and decodes only the message, because
 * this is the hottest path of the daemon on a busy node. It keeps track of the
 * earliest byte a restart must re-read (an open partial group) and how many
 * messages after it were already emitted, so a checkpoint never loses or doubles a line.
 */
export class CriReader {
  /** File offset of the next byte to consume. */
  offset = 0;
  /** Lines that were not CRI lines (garbage, foreign format, bad time). */
  unparseable = 0;
  /** Messages cut at maxLineBytes (or emitted without their final part). */
  truncated = 0;
  /** Messages completed since construction, emitted or suppressed. */
  completions = 0;
  /** Smallest read that always makes progress: the longest line kept plus room for its header. */
  readonly minReadBytes: number;
  private readonly container: ContainerRef | undefined;
  private readonly maxLineBytes: number;
  private readonly maxPendingBytes: number;
  private readonly pend: (PendingGroup | undefined)[] = [undefined, undefined];
  private pendCount = 0;
  /** Start offset of an overlong physical line whose rest is being discarded, or -1. */
  private discardFrom = -1;
  /** Messages still to drop after a restore. */
  private suppress = 0;
  /** File offsets of messages completed since the earliest open group began. */
  private doneOffsets: number[] = [];
  private readonly secBytes = Buffer.alloc(19);
  private secIso = '';

  /** @param container set on every emitted line. */
  constructor(container?: ContainerRef, opts: CriReaderOptions = {}) {
    this.container = container;
    this.maxLineBytes = opts.maxLineBytes ?? 64 * 1024;
    this.maxPendingBytes = opts.maxPendingBytes ?? 1024 * 1024;
    this.minReadBytes = this.maxLineBytes + 256;
  }

  /** The position to store in a checkpoint. */
  position(): CriPosition {
    let safe = this.offset;
    for (const g of this.pend) if (g && g.start < safe) safe = g.start;
    if (this.discardFrom >= 0 && this.discardFrom < safe) safe = this.discardFrom;
    // Messages still to be suppressed after a restore were emitted before: they stay counted.
    if (safe === this.offset) return { offset: safe, skip: this.suppress };
    let skip = this.suppress;
    for (const o of this.doneOffsets) if (o >= safe) skip++;
    return { offset: safe, skip };
  }

  /** Resumes from a stored position (before any consume). */
  setPosition(p: CriPosition): void {
    this.offset = p.offset;
    this.suppress = p.skip;
    this.pend[0] = this.pend[1] = undefined;
    this.pendCount = 0;
    this.discardFrom = -1;
    this.doneOffsets = [];
  }

  /** True while a partial group is open (its final part not read yet). */
  get pending(): boolean {
    return this.pendCount > 0;
  }

  /**
   * Consumes the complete lines of buf[start, end), which holds the file bytes
   * from `this.offset` on, appending finished messages to `out`. Returns the
   * bytes consumed: an incomplete last line is left for the next read, unless
   * it is already longer than the longest line kept (then it is cut).
   */
  consume(buf: Buffer, start: number, end: number, out: LogLine[]): number {
    let pos = start;
    const base = this.offset - start;
    while (pos < end) {
      const nl = buf.indexOf(NL, pos);
      if (nl < 0 || nl >= end) {
        // The rest of a line already cut is dropped as it comes; a new line is cut once it cannot fit.
        if (this.discardFrom >= 0) pos = end;
        else if (end - pos >= this.minReadBytes) {
          this.discardFrom = base + pos;
          this.line(buf, pos, end, base + pos, out, true);
          pos = end;
        }
        break;
      }
      if (this.discardFrom >= 0) {
        this.discardFrom = -1;
        if (this.pendCount === 0) this.doneOffsets.length = 0;
      } else {
        this.line(buf, pos, nl, base + pos, out, false);
      }
      pos = nl + 1;
    }
    this.offset = base + pos;
    return pos - start;
  }

  /** Emits open partial groups as they are (the file ended without their final part). */
  flush(out: LogLine[]): void {
    for (let i = 0; i < 2; i++) {
      const g = this.pend[i];
      if (g) this.finishGroup(i, g, undefined, 0, 0, g.start, out, true);
    }
    this.discardFrom = -1;
    this.doneOffsets.length = 0;
  }

  private line(buf: Buffer, ls: number, le: number, lo: number, out: LogLine[], overlong: boolean): void {
    if (this.pendCount > 0) this.expirePending(lo, out);
    // Header: time up to the first space (at least "YYYY-MM-DDTHH:MM:SSZ").
    const s1 = buf.indexOf(SPACE, ls);
    if (s1 < ls + 20 || s1 + 8 > le || buf[ls + 10] !== 84 /* T */ || buf[s1 + 1] !== 115 /* s */ || buf[s1 + 2] !== 116 /* t */ || buf[s1 + 3] !== 100 /* d */) {
      this.unparseable++;
      return;
    }
    let idx: number;
    const c4 = buf[s1 + 4];
    const c5 = buf[s1 + 5];
    const c6 = buf[s1 + 6];
    if (c4 === 111 && c5 === 117 && c6 === 116) idx = 0; // out
    else if (c4 === 101 && c5 === 114 && c6 === 114) idx = 1; // err
    else {
      this.unparseable++;
      return;
    }
    const s2 = s1 + 7;
    if (s2 < le && buf[s2] !== SPACE) {
      this.unparseable++;
      return;
    }
    // Older runtimes wrote no P/F tag: a missing tag means a full line.
    let partial = false;
    let msgStart = s2 + 1;
    const tag = buf[s2 + 1];
    if ((tag === 80 /* P */ || tag === 70 /* F */) && (s2 + 2 === le || buf[s2 + 2] === SPACE)) {
      partial = tag === 80;
      msgStart = Math.min(le, s2 + 3);
    }
    if (msgStart > le) msgStart = le;
    const g = this.pend[idx];
    if (partial || g) {
      const grp = g ?? { start: lo, at: this.isoAt(buf, ls, s1), parts: [], bytes: 0, truncated: false };
      if (!g) {
        this.pend[idx] = grp;
        this.pendCount++;
      }
      if (!partial) {
        this.finishGroup(idx, grp, buf, msgStart, le, lo, out, overlong);
        return;
      }
      const room = this.maxLineBytes - grp.bytes;
      const len = le - msgStart;
      if (len > room) {
        if (room > 0) {
          const cut = utf8Cut(buf, msgStart, room);
          grp.parts.push(Buffer.from(buf.subarray(msgStart, msgStart + cut)));
          grp.bytes += cut;
        }
        grp.truncated = true;
      } else if (len > 0) {
        grp.parts.push(Buffer.from(buf.subarray(msgStart, le)));
        grp.bytes += len;
      }
      if (overlong) grp.truncated = true;
      return;
    }
    // The common case: one F line is one message.
    let len = le - msgStart;
    let truncated = overlong;
    if (len > this.maxLineBytes) {
      len = utf8Cut(buf, msgStart, this.maxLineBytes);
      truncated = true;
    }
    this.complete(this.isoAt(buf, ls, s1), idx, buf.toString('utf8', msgStart, msgStart + len), truncated, lo, out);
  }

  private finishGroup(idx: number, g: PendingGroup, buf: Buffer | undefined, ms: number, me: number, lo: number, out: LogLine[], truncated: boolean): void {
    this.pend[idx] = undefined;
    this.pendCount--;
    if (buf && me > ms) {
      const room = this.maxLineBytes - g.bytes;
      if (me - ms > room) {
        if (room > 0) g.parts.push(buf.subarray(ms, ms + utf8Cut(buf, ms, room)));
        g.truncated = true;
      } else {
        g.parts.push(buf.subarray(ms, me));
      }
    }
    const text = g.parts.length === 1 ? g.parts[0]!.toString('utf8') : Buffer.concat(g.parts).toString('utf8');
    this.complete(g.at, idx, text, g.truncated || truncated, lo, out);
  }

  /** Emits groups that stayed open too long, so a writer that died mid-line cannot pin the checkpoint. */
  private expirePending(lo: number, out: LogLine[]): void {
    for (let i = 0; i < 2; i++) {
      const g = this.pend[i];
      if (g && lo - g.start > this.maxPendingBytes) this.finishGroup(i, g, undefined, 0, 0, lo, out, true);
    }
  }

  private complete(at: Timestamp | null, idx: number, text: string, truncated: boolean, lo: number, out: LogLine[]): void {
    this.completions++;
    if (this.pendCount === 0 && this.discardFrom < 0) this.doneOffsets.length = 0;
    else {
      this.doneOffsets.push(lo);
      if (this.doneOffsets.length > 4096) {
        const safe = this.position().offset;
        this.doneOffsets = this.doneOffsets.filter((o) => o >= safe);
      }
    }
    if (this.suppress > 0) {
      this.suppress--;
      return;
    }
    if (at === null) {
      this.unparseable++;
      return;
    }
    // One literal with every usual field keeps a single object shape on the hot path.
    const line: LogLine = this.container
      ? { source: 'podLog', at, text, stream: STREAMS[idx]!, container: this.container }
      : { source: 'podLog', at, text, stream: STREAMS[idx]! };
    if (truncated) {
      line.truncated = true;
      this.truncated++;
    }
    out.push(line);
  }

  /** RFC3339Nano bytes → ISO string with milliseconds; the per-second prefix is validated once and cached. */
  private isoAt(buf: Buffer, ls: number, s1: number): Timestamp | null {
    const z = buf[s1 - 1] === 90; /* Z */
    const c19 = buf[ls + 19];
    if (z && (c19 === 46 /* . */ || (c19 === 90 && s1 === ls + 20))) {
      if (buf.compare(this.secBytes, 0, 19, ls, ls + 19) !== 0) {
        const p = buf.toString('latin1', ls, ls + 19);
        const ms = Date.parse(`${p}Z`);
        if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== p) return toIso(buf.toString('latin1', ls, s1));
        buf.copy(this.secBytes, 0, ls, ls + 19);
        this.secIso = p;
      }
      if (c19 === 90) return `${this.secIso}.000Z`;
      const fracLen = s1 - 1 - (ls + 20);
      for (let i = ls + 20; i < s1 - 1; i++) {
        const d = buf[i]!;
        if (d < 48 || d > 57) return toIso(buf.toString('latin1', ls, s1));
      }
      if (fracLen >= 3) return `${this.secIso}${buf.toString('latin1', ls + 19, ls + 23)}Z`;
      if (fracLen <= 0) return toIso(buf.toString('latin1', ls, s1));
      return `${this.secIso}${buf.toString('latin1', ls + 19, s1 - 1)}${'0'.repeat(3 - fracLen)}Z`;
    }
    return toIso(buf.toString('latin1', ls, s1));
  }
}
