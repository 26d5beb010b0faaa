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
