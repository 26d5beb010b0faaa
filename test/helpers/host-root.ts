/**
 * Fixture host roots for the live log collectors: a temp directory laid out
 * like a node (`var/log/pods`, `var/log/journal`, `dev/kmsg`, `proc`), written
 * the way the kubelet, the container runtime, journald and the kernel write
 * them, including every kind of log rotation.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MemoryCheckpoints } from '../../daemon/collectors/checkpoints.js';
import type { LogLine, Signal } from '../../daemon/core/types.js';

/** A temp directory standing for `/` of a node. */
export interface HostRoot {
  root: string;
  cleanup(): void;
}

/** Creates an empty host root (with `var/log/pods`). */
export function makeHostRoot(prefix = 'nodesage-host-'): HostRoot {
  const root = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(root, 'var/log/pods'), { recursive: true });
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** One CRI log line `<RFC3339Nano> <stream> <P|F> <message>\n`. */
export function criLine(at: Date, stream: 'stdout' | 'stderr', tag: 'P' | 'F', message: string, subMs = 456789): string {
  const iso = at.toISOString().slice(0, 23);
  return `${iso}${String(subMs % 1_000_000).padStart(6, '0')}Z ${stream} ${tag} ${message}\n`;
}

/** Identity of a fake container. */
export interface ContainerSpec {
  namespace: string;
  pod: string;
  uid: string;
  container: string;
}

/**
 * A container's log directory as the kubelet and containerd keep it:
 * `<n>.log` for restart n, rotated to `<n>.log.<YYYYMMDD-hhmmss>`, later gzipped.
 * Every line written carries a unique id (`id=<container>-<seq>`) so tests can
 * count deliveries.
 */
export class ContainerLogDir {
  readonly dir: string;
  readonly spec: ContainerSpec;
  restart = 0;
  seq = 0;
  /** Every id written, in order, with the file it went to. */
  readonly written: { id: string; file: string }[] = [];
  private clock = Date.UTC(2025, 0, 15, 8, 0, 0);
  private rotations = 0;

  constructor(hostRoot: string, spec: ContainerSpec) {
    this.spec = spec;
    this.dir = join(hostRoot, 'var/log/pods', `${spec.namespace}_${spec.pod}_${spec.uid}`, spec.container);
    mkdirSync(this.dir, { recursive: true });
    // The kubelet creates the log file when the container starts.
    if (!existsSync(this.path(this.live))) writeFileSync(this.path(this.live), '');
  }

  /** Name of the live file. */
  get live(): string {
    return `${this.restart}.log`;
  }

  /** Path of a file in the directory. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** The next unique id. */
  nextId(): string {
    return `${this.spec.container}-${++this.seq}`;
  }

  /** Appends n full lines (`F`), alternating stdout/stderr every `stderrEvery` lines. Returns their ids. */
  write(n: number, opts: { stderrEvery?: number; text?: string } = {}): string[] {
    let data = '';
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.nextId();
      ids.push(id);
      this.clock += 7;
      const stream = opts.stderrEvery && this.seq % opts.stderrEvery === 0 ? 'stderr' : 'stdout';
      data += criLine(new Date(this.clock), stream, 'F', `level=info msg="request handled" id=${id} ${opts.text ?? 'path=/api/v1/items status=200'}`);
      this.written.push({ id, file: this.live });
    }
    appendFileSync(this.path(this.live), data);
    return ids;
  }

  /** Appends one message split into `parts` partial lines (P…P F) on one stream. Returns its id. */
  writePartial(parts: number, stream: 'stdout' | 'stderr' = 'stdout', partLen = 40): string {
    const id = this.nextId();
    this.clock += 7;
    const msg = `id=${id} ${'x'.repeat(parts * partLen)}`;
    const size = Math.ceil(msg.length / parts);
    let data = '';
    for (let i = 0; i < parts; i++) {
      data += criLine(new Date(this.clock), stream, i === parts - 1 ? 'F' : 'P', msg.slice(i * size, (i + 1) * size), 100 + i * 7);
    }
    appendFileSync(this.path(this.live), data);
    this.written.push({ id, file: this.live });
    return id;
  }

  /** Appends raw bytes to the live file. */
  append(data: string | Buffer): void {
    appendFileSync(this.path(this.live), data);
  }

  /** kubelet rotation: renames the live file to `<n>.log.<timestamp>`; the runtime's reopen creates the new one. Returns the rotated name. */
  rotate(opts: { createNew?: boolean } = {}): string {
    this.rotations++;
    const d = new Date(Date.UTC(2025, 0, 15, 9, 0, this.rotations));
    const stamp = `${d.toISOString().slice(0, 10).replaceAll('-', '')}-${d.toISOString().slice(11, 19).replaceAll(':', '')}`;
    const name = `${this.live}.${stamp}`;
    renameSync(this.path(this.live), this.path(name));
    if (opts.createNew ?? true) writeFileSync(this.path(this.live), '');
    return name;
  }

  /** kubelet compression: writes `<name>.gz` through a `.tmp` file, then deletes the plain file. */
  gzip(name: string): string {
    const gz = `${name}.gz`;
    writeFileSync(this.path(`${gz}.tmp`), gzipSync(readFileSync(this.path(name))));
    renameSync(this.path(`${gz}.tmp`), this.path(gz));
    unlinkSync(this.path(name));
    return gz;
  }

  /** logrotate copytruncate: copies the live file to `copyName`, then truncates the live file in place. */
  copyTruncate(copyName = `${this.live}.1`): void {
    writeFileSync(this.path(copyName), readFileSync(this.path(this.live)));
    truncateSync(this.path(this.live), 0);
  }

  /** Deletes a file (kubelet's max-files cleanup). */
  remove(name: string): void {
    unlinkSync(this.path(name));
  }

  /** The container restarts: later lines go to `<n+1>.log`. */
  restartContainer(): void {
    this.restart++;
    writeFileSync(this.path(this.live), '');
  }

  /** Ids written to a file. */
  idsIn(file: string): string[] {
    return this.written.filter((w) => w.file === file).map((w) => w.id);
  }
}

/** The unique id of a delivered message (`id=<container>-<n>`), or undefined. */
export function lineId(text: string): string | undefined {
  return /\bid=(\S+)/.exec(text)?.[1];
}

/** Writes `<root>/proc/sys/kernel/random/boot_id` and `<root>/proc/stat` with `btime`. */
export function writeBoot(root: string, bootId: string, btimeSeconds: number): void {
  mkdirSync(join(root, 'proc/sys/kernel/random'), { recursive: true });
  writeFileSync(join(root, 'proc/sys/kernel/random/boot_id'), `${bootId}\n`);
  writeFileSync(join(root, 'proc/stat'), `cpu  1 2 3 4 5 6 7 0 0 0\nintr 0\nctxt 100\nbtime ${btimeSeconds}\nprocesses 10\n`);
}

/** One kmsg record as /dev/kmsg prints it. */
export function kmsgRecord(priority: number, seq: number, usec: number, message: string, facility = 0): string {
  // The kernel escapes control characters and backslashes as \xNN.
  let escaped = '';
  for (const ch of message) {
    const code = ch.charCodeAt(0);
    escaped += code < 0x20 || ch === '\\' ? `\\x${code.toString(16).padStart(2, '0')}` : ch;
  }
  return `${facility * 8 + priority},${seq},${usec},-;${escaped}\n`;
}

/** Appends kmsg records to `<root>/dev/kmsg` as a regular file. */
export function appendKmsg(root: string, records: string[]): void {
  mkdirSync(join(root, 'dev'), { recursive: true });
  appendFileSync(join(root, 'dev/kmsg'), records.join(''));
}

/** A journal record as `journalctl -o json` prints it (without the cursor). */
export interface JournalEntry {
  realtimeUsec: number;
  fields: Record<string, string>;
}

/** The journal export format of entries (what systemd-journal-remote imports). */
export function journalExport(entries: JournalEntry[], bootId = '0f1e2d3c4b5a69788796a5b4c3d2e1f0'): string {
  let out = '';
  for (const e of entries) {
    out += `__REALTIME_TIMESTAMP=${e.realtimeUsec}\n__MONOTONIC_TIMESTAMP=${e.realtimeUsec % 1_000_000_000}\n_BOOT_ID=${bootId}\n`;
    for (const [k, v] of Object.entries(e.fields)) {
      if (v.includes('\n')) {
        const b = Buffer.from(v);
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(b.length));
        out += `${k}\n${len.toString('latin1')}${b.toString('latin1')}\n`;
      } else out += `${k}=${v}\n`;
    }
    out += '\n';
  }
  return out;
}

/** Path of systemd-journal-remote when installed (it turns an export stream into real journal files). */
export function journalRemoteBinary(): string | undefined {
  for (const p of ['/lib/systemd/systemd-journal-remote', '/usr/lib/systemd/systemd-journal-remote']) {
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Appends entries to a real journal file `<dir>/<name>.journal` with systemd-journal-remote. */
export function appendJournal(bin: string, dir: string, entries: JournalEntry[], name = 'system'): void {
  mkdirSync(dir, { recursive: true });
  execFileSync(bin, [`--output=${join(dir, `${name}.journal`)}`, '-'], {
    input: Buffer.from(journalExport(entries), 'latin1'),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}

/**
 * Mimics the daemon's commit: the checkpoints of a batch are applied, and its
 * lines counted, only when the batch is committed. With `autoCommit` off,
 * batches wait in `uncommitted` — a kill -9 before the commit is dropping them.
 */
export class CommitLog {
  readonly store = new MemoryCheckpoints();
  /** Committed deliveries per line id. */
  readonly delivered = new Map<string, number>();
  /** Committed ids in delivery order. */
  readonly order: string[] = [];
  /** Committed gap details. */
  readonly gaps: string[] = [];
  /** Committed log lines. */
  readonly lines: LogLine[] = [];
  uncommitted: Signal[][] = [];
  autoCommit = true;

  /** The collector's sink. */
  readonly sink = (signals: Signal[]): void => {
    if (this.autoCommit) this.commit(signals);
    else this.uncommitted.push(signals);
  };

  /** Commits one batch. */
  commit(signals: Signal[]): void {
    this.store.commit(signals);
    for (const s of signals) {
      if (s.type === 'gap') this.gaps.push(s.detail);
      if (s.type !== 'log') continue;
      this.lines.push(s.line);
      const id = lineId(s.line.text);
      if (!id) continue;
      this.delivered.set(id, (this.delivered.get(id) ?? 0) + 1);
      this.order.push(id);
    }
  }

  /** Commits every waiting batch. */
  commitPending(): void {
    for (const b of this.uncommitted) this.commit(b);
    this.uncommitted = [];
  }

  /** A crash: waiting batches are lost. Returns the ids they held. */
  crash(): string[] {
    const ids = this.uncommitted.flat().flatMap((s) => (s.type === 'log' ? [lineId(s.line.text) ?? ''] : []));
    this.uncommitted = [];
    return ids;
  }

  /** Ids delivered more than once. */
  duplicates(): string[] {
    return [...this.delivered].filter(([, n]) => n > 1).map(([id]) => id);
  }
}

/**
 * A stand-in for `journalctl` (a small node script) for machines where real
 * journal files cannot be produced. It reads `<--directory>/records.jsonl`
 * (records as `journalctl -o json` prints them, each with `__CURSOR`), honours
 * `--after-cursor` (fails like journalctl when the cursor is unknown),
 * `--lines`, `--since=@<s>`, `--follow` and the match terms (`FIELD=value`,
 * `+`), and appends its arguments to `<--directory>/calls.jsonl`. A record
 * `{"__FAKE_EXIT": n}` makes it exit with code n when it reaches it.
 */
export function writeFakeJournalctl(dir: string): string {
  mkdirSync(dir, { recursive: true });
  // The script has no extension: Node takes its module type from the nearest package.json, which could be any
  // folder above the temporary one. CommonJS, whatever is above.
  writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n');
  const path = join(dir, 'journalctl');
  writeFileSync(
    path,
    `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
const opt = (name) => { const a = args.find((x) => x.startsWith(name + '=')); return a === undefined ? undefined : a.slice(name.length + 1); };
const dir = opt('--directory');
if (!dir) { process.stderr.write('fake journalctl: --directory is required\\n'); process.exit(1); }
fs.appendFileSync(dir + '/calls.jsonl', JSON.stringify(args) + '\\n');
const groups = [[]];
for (const a of args) {
  if (a === '+') groups.push([]);
  else if (!a.startsWith('-') && a.includes('=')) groups[groups.length - 1].push([a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]);
}
const matches = (r) => {
  if (groups.every((g) => g.length === 0)) return true;
  return groups.some((g) => {
    if (g.length === 0) return false;
    const byField = new Map();
    for (const [k, v] of g) byField.set(k, [...(byField.get(k) || []), v]);
    return [...byField].every(([k, vs]) => vs.includes(r[k]));
  });
};
const read = () => { try { return fs.readFileSync(dir + '/records.jsonl', 'utf8').split('\\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { return []; } };
let all = read();
let start = 0;
const after = opt('--after-cursor');
const since = opt('--since');
const lines = opt('--lines');
if (after !== undefined) {
  const i = all.findIndex((r) => r.__CURSOR === after);
  if (i < 0) { process.stderr.write('Failed to seek to cursor: Invalid argument\\n'); process.exit(1); }
  start = i + 1;
} else if (since !== undefined) {
  const s = Number(since.replace('@', '')) * 1e6;
  start = all.findIndex((r) => r.__FAKE_EXIT === undefined && Number(r.__REALTIME_TIMESTAMP) >= s);
  if (start < 0) start = all.length;
} else if (lines !== undefined) {
  const idx = all.map((r, i) => [r, i]).filter(([r]) => r.__FAKE_EXIT === undefined && matches(r)).map(([, i]) => i);
  start = idx.length > Number(lines) ? idx[idx.length - Number(lines)] : 0;
  // Exit markers before the window were passed before this run.
}
let pos = start;
const emit = () => {
  for (; pos < all.length; pos++) {
    const r = all[pos];
    if (r.__FAKE_EXIT !== undefined) {
      if (pos >= start && !fs.existsSync(dir + '/exit-' + pos)) {
        fs.writeFileSync(dir + '/exit-' + pos, '');
        process.stderr.write('fake journalctl: exiting with ' + r.__FAKE_EXIT + '\\n');
        process.exit(r.__FAKE_EXIT);
      }
      continue;
    }
    if (matches(r)) process.stdout.write(JSON.stringify(r) + '\\n');
  }
};
emit();
if (!args.includes('--follow')) process.exit(0);
setInterval(() => { all = read(); emit(); }, 25);
process.on('SIGTERM', () => process.exit(0));
`,
    { mode: 0o755 },
  );
  return path;
}

/** Appends records (with cursors) to the fake journal `<dir>/records.jsonl`. */
export function appendFakeJournal(dir: string, entries: (JournalEntry | { exit: number })[]): void {
  mkdirSync(dir, { recursive: true });
  let n = existsSync(join(dir, 'records.jsonl')) ? readFileSync(join(dir, 'records.jsonl'), 'utf8').split('\n').filter(Boolean).length : 0;
  let out = '';
  for (const e of entries) {
    n++;
    if ('exit' in e) out += `${JSON.stringify({ __FAKE_EXIT: e.exit })}\n`;
    else {
      const cursor = `s=6a1b2c3d4e5f;i=${n.toString(16)};b=0f1e2d3c4b5a69788796a5b4c3d2e1f0;m=${n.toString(16)};t=${e.realtimeUsec.toString(16)};x=${(n * 7919).toString(16)}`;
      out += `${JSON.stringify({ __CURSOR: cursor, __REALTIME_TIMESTAMP: String(e.realtimeUsec), ...e.fields })}\n`;
    }
  }
  appendFileSync(join(dir, 'records.jsonl'), out);
}
