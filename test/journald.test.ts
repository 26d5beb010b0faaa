/**
 * JournaldCollector against real journal files when this machine can write
 * them (systemd-journal-remote imports a journal export stream), against a
 * stand-in journalctl for restarts and cursor failures, and against syslog
 * files for the fallback.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../daemon/core/runtime/clock.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JOURNAL_CURSOR_KEY, JournaldCollector, type JournaldCollectorOptions, SYSLOG_POSITION_KEY, journalMatches } from '../daemon/collectors/journald.js';
import { parseSyslogLine } from '../daemon/collectors/syslog.js';
import {
  CommitLog,
  type HostRoot,
  type JournalEntry,
  appendFakeJournal,
  appendJournal,
  journalRemoteBinary,
  makeHostRoot,
  writeFakeJournalctl,
} from './helpers/host-root.js';

let host: HostRoot;
const collectors: JournaldCollector[] = [];

beforeEach(() => {
  host = makeHostRoot('nodesage-journal-');
});

afterEach(async () => {
  for (const c of collectors.splice(0)) await c.stop();
  host.cleanup();
});

const T0 = Date.UTC(2025, 0, 15, 8, 0, 0) * 1000; // usec

/** Real-shaped records: kubelet, containerd, systemd about kubelet, chronyd, kernel, and an unrelated unit. */
function nodeEntries(from: number, n: number): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (let i = from; i < from + n; i++) {
    const t = T0 + i * 1_000_000;
    switch (i % 6) {
      case 0:
        out.push({ realtimeUsec: t, fields: { _SYSTEMD_UNIT: 'kubelet.service', SYSLOG_IDENTIFIER: 'kubelet', PRIORITY: '3', _TRANSPORT: 'stdout', MESSAGE: `E0115 08:00:${String(i % 60).padStart(2, '0')}.000000    1201 kubelet.go:2412] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m0s ago" n=${i}` } });
        break;
      case 1:
        out.push({ realtimeUsec: t, fields: { _SYSTEMD_UNIT: 'containerd.service', SYSLOG_IDENTIFIER: 'containerd', PRIORITY: '6', _TRANSPORT: 'stdout', MESSAGE: `time="2025-01-15T08:00:01Z" level=info msg="StartContainer for \\"4b1f\\" returns successfully" n=${i}` } });
        break;
      case 2:
        out.push({ realtimeUsec: t, fields: { _SYSTEMD_UNIT: 'init.scope', UNIT: 'kubelet.service', SYSLOG_IDENTIFIER: 'systemd', PRIORITY: '5', _TRANSPORT: 'journal', MESSAGE: `kubelet.service: Main process exited, code=exited, status=1/FAILURE n=${i}` } });
        break;
      case 3:
        out.push({ realtimeUsec: t, fields: { _SYSTEMD_UNIT: 'chronyd.service', SYSLOG_IDENTIFIER: 'chronyd', PRIORITY: '4', _TRANSPORT: 'syslog', MESSAGE: `Can't synchronise: no majority n=${i}` } });
        break;
      case 4:
        out.push({ realtimeUsec: t, fields: { _TRANSPORT: 'kernel', SYSLOG_IDENTIFIER: 'kernel', PRIORITY: '3', MESSAGE: `EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0 n=${i}` } });
        break;
      default:
        out.push({ realtimeUsec: t, fields: { _SYSTEMD_UNIT: 'nginx.service', SYSLOG_IDENTIFIER: 'nginx', PRIORITY: '6', _TRANSPORT: 'stdout', MESSAGE: `GET / 200 n=${i}` } });
    }
  }
  return out;
}

const relevant = (entries: JournalEntry[]) => entries.filter((e) => e.fields._SYSTEMD_UNIT !== 'nginx.service');
const nOf = (text: string) => Number(/ n=(\d+)/.exec(text)?.[1]);

async function start(log: CommitLog, opts: JournaldCollectorOptions): Promise<JournaldCollector> {
  const c = new JournaldCollector({ hostRoot: host.root, checkpoints: log.store, flushIntervalMs: 20, ...opts });
  collectors.push(c);
  await c.start(log.sink);
  return c;
}

async function stop(c: JournaldCollector): Promise<void> {
  collectors.splice(collectors.indexOf(c), 1);
  await c.stop();
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** systemd-journal-remote writes real journal files and journalctl reads them; both are test tools (.ci/run installs them). */
function requireJournalRemote(): string {
  const remote = journalRemoteBinary();
  if (!remote) throw new Error('systemd-journal-remote is not installed (apt-get install systemd-journal-remote)');
  execFileSync('journalctl', ['--version'], { stdio: 'ignore' });
  return remote;
}

describe('journald with real journal files', () => {
  it('follows the journal filtered to the node units, checkpoints the cursor and resumes after it', async () => {
    const remote = requireJournalRemote();
    const journalDir = join(host.root, 'var/log/journal/0123456789abcdef0123456789abcdef');
    mkdirSync(journalDir, { recursive: true });
    appendJournal(remote, journalDir, nodeEntries(0, 24));
    const log = new CommitLog();
    let c = await start(log, {});
    await until(() => log.lines.length >= 20);
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 24)).map((e) => nOf(e.fields.MESSAGE!)));
    const first = log.lines[0]!;
    expect(first).toMatchObject({ source: 'journald', unit: 'kubelet.service', priority: 3, at: '2025-01-15T08:00:00.000Z' });
    expect(log.lines.find((l) => l.text.startsWith('kubelet.service: Main process exited'))?.unit).toBe('kubelet.service');
    expect(log.lines.find((l) => l.text.startsWith('EXT4-fs error'))?.unit).toBe('kernel');
    expect(log.lines.find((l) => l.text.startsWith("Can't synchronise"))?.unit).toBe('chronyd.service');
    const cursor = log.store.get('journald', JOURNAL_CURSOR_KEY);
    expect(cursor).toMatch(/^s=[0-9a-f]+;i=[0-9a-f]+;b=/);

    // --follow: entries appended to the journal arrive without a restart.
    appendJournal(remote, journalDir, nodeEntries(24, 6));
    await until(() => log.lines.length >= 25);
    expect(c.status()).toMatchObject({ state: 'healthy', detail: { backend: 'journalctl', running: true } });
    await stop(c);

    // Written while the daemon was down; the restart resumes after the committed cursor.
    appendJournal(remote, journalDir, nodeEntries(30, 12));
    c = await start(log, {});
    await until(() => log.lines.length >= 35);
    await new Promise((r) => setTimeout(r, 200));
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 42)).map((e) => nOf(e.fields.MESSAGE!)));
  });
});

describe('journald on a node whose journal has no entries yet', () => {
  it('is healthy while the journal folder is empty and reads the first entries when they are written', async () => {
    const remote = requireJournalRemote();
    const journalDir = join(host.root, 'var/log/journal/0123456789abcdef0123456789abcdef');
    mkdirSync(journalDir, { recursive: true });
    const log = new CommitLog();
    const c = await start(log, {});
    // Past the settle time: journalctl would have exited by now on an empty folder.
    await new Promise((r) => setTimeout(r, 1200));
    expect(c.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { backend: 'journalctl', running: true, restarts: 0 } });
    appendJournal(remote, journalDir, nodeEntries(0, 6));
    await until(() => log.lines.length >= 5);
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 6)).map((e) => nOf(e.fields.MESSAGE!)));
    expect(c.status()).toMatchObject({ state: 'healthy', detail: { restarts: 0 } });
  });
});

describe('journald with a stand-in journalctl', () => {
  function fake() {
    const dir = join(host.root, 'var/log/journal');
    const bin = writeFakeJournalctl(join(host.root, 'bin'));
    const calls = () =>
      readFileSync(join(dir, 'calls.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[]);
    return { dir, bin, calls };
  }

  it('first start reads the last --lines records with the unit and kernel matches', async () => {
    const { dir, bin, calls } = fake();
    appendFakeJournal(dir, nodeEntries(0, 60));
    const log = new CommitLog();
    await start(log, { journalctl: bin, initialLines: 10 });
    await until(() => log.lines.length >= 10);
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 60)).slice(-10).map((e) => nOf(e.fields.MESSAGE!)));
    const args = calls()[0]!;
    expect(args).toContain('--lines=10');
    expect(args).toContain(`--directory=${dir}`);
    expect(args).toContain('_TRANSPORT=kernel');
    expect(args).toContain('_SYSTEMD_UNIT=kubelet.service');
    expect(args).toContain('UNIT=chronyd.service');
  });

  it('a kill -9 before the commit: the restart passes the committed cursor and re-delivers only the uncommitted records', async () => {
    const { dir, bin, calls } = fake();
    appendFakeJournal(dir, nodeEntries(0, 12));
    const log = new CommitLog();
    let c = await start(log, { journalctl: bin });
    await until(() => log.lines.length === 10);
    const committed = log.store.get('journald', JOURNAL_CURSOR_KEY);
    log.autoCommit = false;
    appendFakeJournal(dir, nodeEntries(12, 6));
    await until(() => log.uncommitted.flat().filter((s) => s.type === 'log').length === 5);
    log.crash();
    await stop(c);
    log.autoCommit = true;
    c = await start(log, { journalctl: bin });
    await until(() => log.lines.length >= 15);
    await new Promise((r) => setTimeout(r, 100));
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 18)).map((e) => nOf(e.fields.MESSAGE!)));
    const last = calls().at(-1)!;
    expect(last).toContain(`--after-cursor=${committed}`);
    expect(last).toContain('--no-tail');
  });

  it('journalctl exiting is restarted with backoff and continues after the last record, without doubles', async () => {
    const { dir, bin, calls } = fake();
    appendFakeJournal(dir, [...nodeEntries(0, 6), { exit: 3 }, ...nodeEntries(6, 6)]);
    const log = new CommitLog();
    const c = await start(log, { journalctl: bin, backoff: { initialMs: 30, maxMs: 100, jitter: 0 } });
    await until(() => log.lines.length >= 10);
    await new Promise((r) => setTimeout(r, 100));
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(0, 12)).map((e) => nOf(e.fields.MESSAGE!)));
    expect(calls().length).toBe(2);
    const st = c.status();
    expect(st.detail?.restarts).toBe(1);
    // Records flow again: healthy, and no error stands any more (the exit is counted in restarts and logged).
    expect(st).toMatchObject({ state: 'healthy', lastError: null });
  });

  it('a cursor journalctl cannot seek to is retried, then reading resumes by time', async () => {
    const { dir, bin, calls } = fake();
    appendFakeJournal(dir, nodeEntries(0, 12));
    const log = new CommitLog();
    const t = (T0 + 6 * 1_000_000).toString(16);
    log.store.commit([{ type: 'checkpoint', source: 'journald', key: JOURNAL_CURSOR_KEY, value: `s=dead;i=99;b=00;m=1;t=${t};x=1` }]);
    const c = await start(log, { journalctl: bin, backoff: { initialMs: 20, maxMs: 50, jitter: 0 } });
    expect(c.status()).toMatchObject({ state: 'failing' });
    expect(c.status().lastError).toContain('Failed to seek to cursor');
    await until(() => log.lines.length >= 5);
    expect(calls().slice(0, 2).every((a) => a.some((x) => x.startsWith('--after-cursor=s=dead')))).toBe(true);
    expect(calls()[2]).toContain(`--since=@${Math.floor((T0 + 6 * 1_000_000) / 1e6)}`);
    expect(log.lines.map((l) => nOf(l.text))).toEqual(relevant(nodeEntries(6, 6)).map((e) => nOf(e.fields.MESSAGE!)));
    expect(log.gaps).toEqual([
      'journal cursor not found (journal rotated, vacuumed or replaced); resumed from 2025-01-15T08:00:06.000Z: records after the cursor that were removed are lost, records of that second may repeat',
    ]);
  });
});

/** The state letter of a process in /proc/<pid>/stat (R, S, T...). */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

describe('journald liveness', () => {
  it('goes stale while journalctl is stopped, and healthy again once it runs', async () => {
    mkdirSync(join(host.root, 'var/log/journal'), { recursive: true });
    const pidFile = join(host.root, 'journalctl.pid');
    // A journalctl that follows a quiet journal: it runs and prints nothing.
    const bin = join(host.root, 'journalctl-quiet');
    writeFileSync(bin, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 3600\n`, { mode: 0o755 });
    const clock = new ManualClock();
    const log = new CommitLog();
    const c = new JournaldCollector({ hostRoot: host.root, checkpoints: log.store, journalctl: bin, clock, startSettleMs: 1000, staleAfterMs: 30_000, logFiles: [] });
    collectors.push(c);
    const started = c.start(log.sink);
    await until(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await clock.waitForSleepers(2); // the start settle time and the first liveness check
    clock.advance(1000);
    await started;
    await until(() => c.status().state === 'healthy');
    try {
      // An hour of a quiet journal is still healthy.
      for (let i = 0; i < 360; i++) {
        await clock.waitForSleepers(1);
        clock.advance(10_000);
      }
      await clock.waitForSleepers(1);
      expect(c.status()).toMatchObject({ state: 'healthy', lastError: null, detail: { running: true, restarts: 0 } });
      // Stopped (as a journalctl stuck on a hung disk is): no sign of life for staleAfterMs.
      process.kill(pid, 'SIGSTOP');
      await until(() => procState(pid) === 'T');
      for (let i = 0; i < 4; i++) {
        await clock.waitForSleepers(1);
        clock.advance(10_000);
      }
      expect(c.status()).toMatchObject({ state: 'stale', lastError: expect.stringContaining('no sign of life since') });
      process.kill(pid, 'SIGCONT');
      await until(() => procState(pid) !== 'T');
      await clock.waitForSleepers(1);
      clock.advance(10_000);
      await until(() => c.status().state === 'healthy');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});

describe('syslog fallback', () => {
  const syslogLines = [
    'Jan 15 08:00:01 edge-node-3 kubelet[1201]: E0115 08:00:01.123456    1201 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \\"StartContainer\\""',
    'Jan 15 08:00:02 edge-node-3 sshd[777]: Accepted publickey for admin from 10.0.0.5 port 51234',
    'Jan 15 08:00:03 edge-node-3 kernel: [ 5123.456789] Memory cgroup out of memory: Killed process 4121 (java)',
    'Jan 15 08:00:04 edge-node-3 systemd[1]: kubelet.service: Main process exited, code=exited, status=1/FAILURE',
    'Jan 15 08:00:05 edge-node-3 chronyd[640]: System clock wrong by 4.120351 seconds',
    'not a syslog line at all',
  ];

  it('without journalctl: says so, reads syslog lines named like journald units, follows rotation and resumes', async () => {
    mkdirSync(join(host.root, 'var/log/journal'), { recursive: true });
    const path = join(host.root, 'var/log/syslog');
    writeFileSync(path, `${syslogLines.join('\n')}\n`);
    const log = new CommitLog();
    const clock = new ManualClock(Date.parse('2025-01-15T09:00:00Z'));
    let c = await start(log, { journalctl: '/nonexistent/journalctl', syslogPollIntervalMs: 3_600_000, clock });
    expect(c.status()).toMatchObject({ state: 'healthy', lastError: 'journalctl not found', detail: { backend: 'syslog', unparseable: 1 } });
    expect(log.lines.map((l) => [l.unit, l.text])).toEqual([
      ['kubelet.service', 'E0115 08:00:01.123456    1201 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \\"StartContainer\\""'],
      ['kernel', 'Memory cgroup out of memory: Killed process 4121 (java)'],
      ['kubelet.service', 'kubelet.service: Main process exited, code=exited, status=1/FAILURE'],
      ['chronyd.service', 'System clock wrong by 4.120351 seconds'],
    ]);
    expect(log.lines[0]?.at).toBe(new Date(2025, 0, 15, 8, 0, 1).toISOString());

    // rsyslog renames the file and opens a new one; the rest of the old one comes first.
    appendFileSync(path, 'Jan 15 08:01:00 edge-node-3 kubelet[1201]: before rotation\n');
    renameSync(path, `${path}.1`);
    writeFileSync(path, '2025-01-15T08:02:00.250000+00:00 edge-node-3 containerd[900]: after rotation\n');
    await c.pollSyslogNow();
    await c.pollSyslogNow();
    expect(log.lines.slice(4).map((l) => l.text)).toEqual(['before rotation', 'after rotation']);
    expect(log.lines[5]).toMatchObject({ unit: 'containerd.service', at: '2025-01-15T08:02:00.250Z' });
    await stop(c);

    appendFileSync(path, 'Jan 15 08:03:00 edge-node-3 kubelet[1201]: while stopped\n');
    c = await start(log, { journalctl: '/nonexistent/journalctl', syslogPollIntervalMs: 3_600_000, clock });
    expect(log.lines.slice(6).map((l) => l.text)).toEqual(['while stopped']);
    expect(log.store.get('journald', SYSLOG_POSITION_KEY)).toBeDefined();
    expect(log.gaps).toEqual([]);
  });

  it('a host root without any journal falls back to /var/log/messages', async () => {
    mkdirSync(join(host.root, 'var/log'), { recursive: true });
    writeFileSync(join(host.root, 'var/log/messages'), '2025-01-15T08:00:00+00:00 rhel-node crio[812]: time="2025-01-15 08:00:00" level=error msg="Failed to stop sandbox"\n');
    const log = new CommitLog();
    const c = await start(log, { syslogPollIntervalMs: 3_600_000 });
    expect(c.status()).toMatchObject({ state: 'healthy', detail: { backend: 'syslog' } });
    expect(c.status().lastError).toMatch(/no journal under/);
    expect(log.lines.map((l) => [l.unit, l.at])).toEqual([['crio.service', '2025-01-15T08:00:00.000Z']]);
  });

  it('neither journalctl nor syslog: disabled, and the status says why', async () => {
    const log = new CommitLog();
    const c = await start(log, { journalctl: '/nonexistent/journalctl' });
    expect(existsSync(join(host.root, 'var/log/syslog'))).toBe(false);
    expect(c.status()).toMatchObject({ state: 'disabled', detail: { backend: 'none' } });
    expect(c.status().lastError).toMatch(/^no journal under .*, and no .*var\/log\/syslog or .*var\/log\/messages$/);
  });
});

describe('journal helpers', () => {
  it('matches: units as the process or as systemd subject, or the kernel', () => {
    expect(journalMatches(['kubelet.service', 'crio.service'], true)).toEqual([
      '_SYSTEMD_UNIT=kubelet.service',
      '_SYSTEMD_UNIT=crio.service',
      '+',
      'UNIT=kubelet.service',
      'UNIT=crio.service',
      '+',
      '_TRANSPORT=kernel',
    ]);
  });

  it('BSD syslog lines get the year that is not in the future', () => {
    const now = new Date(2025, 0, 2, 12, 0, 0).getTime();
    expect(parseSyslogLine('Dec 31 23:59:59 n kubelet[1]: x', now)?.at).toBe(new Date(2024, 11, 31, 23, 59, 59).toISOString());
    expect(parseSyslogLine('Jan  2 11:00:00 n kubelet: y', now)).toMatchObject({ ident: 'kubelet', message: 'y', host: 'n' });
  });
});
