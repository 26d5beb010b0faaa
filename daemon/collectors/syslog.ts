/**
 * The journald collector's fallback on hosts without journalctl or without a
 * journal: `/var/log/syslog` (Debian, Ubuntu) or `/var/log/messages` (RHEL,
 * SUSE, Alpine), in the traditional BSD format or rsyslog's RFC3339 one. The
 * file is followed across rename rotation (the renamed file is finished first)
 * and truncation; its checkpoint is the file identity and offset.
 */
import { type FileHandle, open, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { LogLine, Timestamp } from '../core/types.js';
import { type Fingerprint, FINGERPRINT_BYTES, fingerprintOf, headMatches, readHead, type StoredPosition } from './file-identity.js';

/** One syslog line: time, host, identifier (program), pid and message. */
export interface SyslogLine {
  at: Timestamp;
  host: string;
  ident: string;
  pid?: number;
  message: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const BSD = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\S+) ([^\s:[]+)(?:\[(\d+)\])?: ?(.*)$/;
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) (\S+) ([^\s:[]+)(?:\[(\d+)\])?: ?(.*)$/;

/**
 * Parses a syslog line. BSD lines carry no year: the year that puts the line
 * not more than a day in the future of `nowMs` is used, in the process's time zone.
 */
export function parseSyslogLine(line: string, nowMs: number = Date.now()): SyslogLine | null {
  let m = RFC3339.exec(line);
  if (m) {
    const ms = Date.parse(m[1]!);
    if (Number.isNaN(ms)) return null;
    const out: SyslogLine = { at: new Date(ms).toISOString(), host: m[2]!, ident: m[3]!, message: m[5]! };
    if (m[4]) out.pid = Number(m[4]);
    return out;
  }
  m = BSD.exec(line);
  if (!m) return null;
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return null;
  const now = new Date(nowMs);
  let d = new Date(now.getFullYear(), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  if (d.getTime() > nowMs + 86_400_000) d = new Date(now.getFullYear() - 1, month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  if (Number.isNaN(d.getTime())) return null;
  const out: SyslogLine = { at: d.toISOString(), host: m[6]!, ident: m[7]!, message: m[9]! };
  if (m[8]) out.pid = Number(m[8]);
  return out;
}

/**
 * Turns a syslog line into a LogLine named like journald would name it:
 * `kernel`, the unit of a configured program (`kubelet` → `kubelet.service`),
 * or for systemd's own lines the unit they are about. Null when the line is
 * about none of `units` (kernel lines count when `kernel` is true).
 */
export function syslogToLogLine(s: SyslogLine, units: ReadonlySet<string>, kernel: boolean): LogLine | null {
  if (s.ident === 'kernel') {
    if (!kernel) return null;
    // Older kernels' lines carry "[ seconds.micros]" after the ident; the time is already in the line head.
    return { source: 'journald', at: s.at, text: s.message.replace(/^\[\s*\d+\.\d+\] /, ''), unit: 'kernel' };
  }
  let unit: string | undefined;
  if (s.ident === 'systemd' || s.ident === 'init') {
    const m = /^([\w@.-]+\.service)[: ]/.exec(s.message);
    if (m && units.has(m[1]!)) unit = m[1]!;
  } else if (units.has(`${s.ident}.service`)) unit = `${s.ident}.service`;
  else if (units.has(s.ident)) unit = s.ident;
  if (!unit) return null;
  return { source: 'journald', at: s.at, text: s.message, unit };
}

/** Checkpoint of a followed file (`n` is its path). */
type FollowPosition = StoredPosition;

interface Followed {
  path: string;
  fh: FileHandle;
  dev: number;
  ino: number;
  fp: Fingerprint;
  off: number;
}

/** Options of {@link FileFollower}. */
export interface FileFollowerOptions {
  /** Bytes read back from the end when starting without a checkpoint. Defaults to 65536. */
  initialTailBytes?: number;
  /** Bytes read per poll. Defaults to 4194304. */
  maxBytesPerPoll?: number;
}

/** Follows one log file (syslog style: rotated by renaming to `<name>.1` or `<name>-<date>`). */
export class FileFollower {
  readonly path: string;
  private readonly initialTailBytes: number;
  private readonly maxBytesPerPoll: number;
  private cur: Followed | undefined;
  /** A renamed file still being finished before `cur` is read. */
  private old: Followed | undefined;
  private restored: FollowPosition | undefined;
  private started = false;
  private readonly buf = Buffer.allocUnsafe(256 * 1024);

  constructor(path: string, opts: FileFollowerOptions = {}) {
    this.path = path;
    this.initialTailBytes = opts.initialTailBytes ?? 64 * 1024;
    this.maxBytesPerPoll = opts.maxBytesPerPoll ?? 4 * 1024 * 1024;
  }

  /** Resumes from a checkpoint value (before the first poll). */
  restore(value: string | undefined): void {
    if (!value) return;
    try {
      const p = JSON.parse(value) as FollowPosition;
      if (typeof p.o === 'number' && typeof p.i === 'number') this.restored = p;
    } catch {
      // A corrupt value starts like a first start.
    }
  }

  /** True while a file is open at the path (it existed at the last poll). */
  get following(): boolean {
    return this.cur !== undefined;
  }

  /** The checkpoint value of the position reached. */
  checkpoint(): string | undefined {
    const f = this.old ?? this.cur;
    if (!f) return undefined;
    const p: FollowPosition = { n: f.path, d: f.dev, i: f.ino, f: f.fp.hash, l: f.fp.len, o: f.off };
    return JSON.stringify(p);
  }

  /** Reads new complete lines. Returns them and gap descriptions (a checkpointed file that is gone). */
  async poll(): Promise<{ lines: string[]; gaps: string[] }> {
    const lines: string[] = [];
    const gaps: string[] = [];
    if (!this.started) {
      this.started = true;
      await this.begin(gaps);
    }
    const st = await stat(this.path).catch(() => undefined);
    if (this.cur && st && (st.ino !== this.cur.ino || st.dev !== this.cur.dev) && !this.old) {
      // Renamed away and a new file created: finish the old one first.
      this.old = this.cur;
      this.cur = undefined;
    }
    let budget = this.maxBytesPerPoll;
    if (this.old) {
      const r = await this.read(this.old, budget, lines);
      budget -= r.bytes;
      if (!r.eof) return { lines, gaps };
      await this.old.fh.close().catch(() => undefined);
      this.old = undefined;
    }
    if (!st) return { lines, gaps };
    if (!this.cur) this.cur = await this.openAt(this.path, 0);
    if (!this.cur) return { lines, gaps };
    if (st.size < this.cur.off) this.cur.off = 0; // truncated in place
    await this.read(this.cur, budget, lines);
    if (this.cur.fp.len < FINGERPRINT_BYTES) this.cur.fp = fingerprintOf(await readHead(this.cur.fh));
    return { lines, gaps };
  }

  /** Closes the open files. */
  async close(): Promise<void> {
    await this.old?.fh.close().catch(() => undefined);
    await this.cur?.fh.close().catch(() => undefined);
    this.old = this.cur = undefined;
  }

  private async begin(gaps: string[]): Promise<void> {
    const r = this.restored;
    if (!r) {
      const st = await stat(this.path).catch(() => undefined);
      if (!st) return;
      const f = await this.openAt(this.path, Math.max(0, st.size - this.initialTailBytes));
      if (f && f.off > 0) await this.alignToLine(f);
      this.cur = f;
      return;
    }
    // Find the checkpointed file: still at its path, or renamed next to it (syslog.1, messages-20250115).
    const dir = dirname(this.path);
    const base = basename(this.path);
    const names = await readdir(dir).catch(() => [] as string[]);
    const candidates = [base, ...names.filter((n) => n !== base && n.startsWith(base) && !n.endsWith('.gz'))];
    for (const name of candidates) {
      const p = join(dir, name);
      const f = await this.openAt(p, r.o);
      if (!f) continue;
      const head = await readHead(f.fh);
      if (f.ino === r.i && f.dev === r.d && (r.l === 0 || headMatches(head, { hash: r.f, len: r.l }))) {
        if (name === base) this.cur = f;
        else this.old = f;
        return;
      }
      await f.fh.close();
    }
    gaps.push(`${r.n} (dev ${r.d} inode ${r.i}) vanished before it was read past byte ${r.o}; the rest of it was not read`);
  }

  private async openAt(path: string, off: number): Promise<Followed | undefined> {
    try {
      const fh = await open(path, 'r');
      const st = await fh.stat();
      const fp = fingerprintOf(await readHead(fh));
      return { path, fh, dev: st.dev, ino: st.ino, fp, off };
    } catch {
      return undefined;
    }
  }

  private async alignToLine(f: Followed): Promise<void> {
    const { bytesRead } = await f.fh.read(this.buf, 0, this.buf.length, f.off);
    const nl = this.buf.subarray(0, bytesRead).indexOf(10);
    f.off = nl < 0 ? f.off + bytesRead : f.off + nl + 1;
  }

  private async read(f: Followed, budget: number, lines: string[]): Promise<{ bytes: number; eof: boolean }> {
    let total = 0;
    while (total < budget) {
      const { bytesRead } = await f.fh.read(this.buf, 0, this.buf.length, f.off);
      if (bytesRead === 0) return { bytes: total, eof: true };
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf(10, pos);
        if (nl < 0 || nl >= bytesRead) break;
        lines.push(this.buf.toString('utf8', pos, nl));
        pos = nl + 1;
      }
      if (pos === 0) {
        if (bytesRead < this.buf.length) return { bytes: total, eof: true }; // unfinished last line
        pos = bytesRead; // a line longer than the buffer is dropped
      }
      f.off += pos;
      total += pos;
      if (bytesRead < this.buf.length && pos === bytesRead) return { bytes: total, eof: true };
    }
    return { bytes: total, eof: false };
  }
}
