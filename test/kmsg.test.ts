/**
 * KmsgCollector: a file of records under a temp host root (bundles), an
 * injected device for ring-buffer overruns, and the real /dev/kmsg when this
 * process may read it.
 */
import { constants, closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KMSG_CHECKPOINT_KEY, KmsgCollector, type KmsgDevice } from '../daemon/collectors/kmsg.js';
import { parseKmsgRecord } from '../daemon/collectors/parse.js';
import { CommitLog, type HostRoot, appendKmsg, kmsgRecord, makeHostRoot, writeBoot } from './helpers/host-root.js';

let host: HostRoot;
const collectors: KmsgCollector[] = [];

beforeEach(() => {
  host = makeHostRoot('nodesage-kmsg-');
});

afterEach(async () => {
  for (const c of collectors.splice(0)) await c.stop();
  host.cleanup();
});

const BOOT_A = '5b0f4c1e-8a2d-4e61-9c3b-7d2e1f0a9b8c';
const BOOT_B = 'c7e2a9d4-1b3f-4c5e-8d7a-6f0e9b2c1a3d';
const BTIME = 1736928000; // 2025-01-15T08:00:00Z

async function start(log: CommitLog, opts: ConstructorParameters<typeof KmsgCollector>[0] = {}): Promise<KmsgCollector> {
  const c = new KmsgCollector({ hostRoot: host.root, checkpoints: log.store, pollIntervalMs: 3_600_000, ...opts });
  collectors.push(c);
  await c.start(log.sink);
  return c;
}

async function stop(c: KmsgCollector): Promise<void> {
  collectors.splice(collectors.indexOf(c), 1);
  await c.stop();
}

describe('kmsg from a file of records', () => {
  it('turns records into kernel log lines with wall time from btime, priority, decoded multi-line records', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, [
      kmsgRecord(6, 0, 0, 'Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org)'),
      kmsgRecord(3, 1, 5_123_456, 'Memory cgroup out of memory: Killed process 4121 (java) total-vm:4012345kB, anon-rss:2045123kB'),
      ' SUBSYSTEM=memory\n',
      kmsgRecord(4, 2, 7_000_000, 'INFO: task jbd2/sda1-8:301 blocked for more than 120 seconds.\n      Not tainted 6.1.0-27-amd64 #1'),
    ]);
    const log = new CommitLog();
    const c = await start(log);
    expect(log.lines.map((l) => [l.at, l.priority, l.text])).toEqual([
      ['2025-01-15T08:00:00.000Z', 6, 'Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org)'],
      ['2025-01-15T08:00:05.123Z', 3, 'Memory cgroup out of memory: Killed process 4121 (java) total-vm:4012345kB, anon-rss:2045123kB'],
      ['2025-01-15T08:00:07.000Z', 4, 'INFO: task jbd2/sda1-8:301 blocked for more than 120 seconds.'],
      ['2025-01-15T08:00:07.000Z', 4, '      Not tainted 6.1.0-27-amd64 #1'],
    ]);
    expect(log.lines.every((l) => l.source === 'kmsg')).toBe(true);
    expect(JSON.parse(log.store.get('kmsg', KMSG_CHECKPOINT_KEY) ?? '{}')).toEqual({ boot: BOOT_A, seq: 2 });
    const st = c.status();
    expect(st).toMatchObject({ name: 'kmsg', state: 'healthy', signals: 4, lastError: null });
    expect(st.detail).toMatchObject({ mode: 'file', records: 3, lastSeq: 2 });
  });

  it('follows appended records and does not replay after a restart in the same boot', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, [kmsgRecord(6, 0, 100, 'first'), kmsgRecord(6, 1, 200, 'second')]);
    const log = new CommitLog();
    let c = await start(log);
    appendKmsg(host.root, [kmsgRecord(4, 2, 300, 'third')]);
    await c.pollNow();
    expect(log.lines.map((l) => l.text)).toEqual(['first', 'second', 'third']);
    await stop(c);
    appendKmsg(host.root, [kmsgRecord(4, 3, 400, 'fourth')]);
    c = await start(log);
    expect(log.lines.map((l) => l.text)).toEqual(['first', 'second', 'third', 'fourth']);
    expect(log.gaps).toEqual([]);
  });

  it('a kill -9 before the commit re-delivers the uncommitted records, once', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, [kmsgRecord(6, 0, 100, 'a'), kmsgRecord(6, 1, 200, 'b')]);
    const log = new CommitLog();
    let c = await start(log);
    log.autoCommit = false;
    appendKmsg(host.root, [kmsgRecord(6, 2, 300, 'c'), kmsgRecord(6, 3, 400, 'd')]);
    await c.pollNow();
    expect(log.crash()).toHaveLength(2);
    await stop(c);
    log.autoCommit = true;
    c = await start(log);
    expect(log.lines.map((l) => l.text)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('after a reboot (new boot id) reads the new buffer from its beginning', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, [kmsgRecord(6, 0, 100, 'old boot 0'), kmsgRecord(6, 1, 200, 'old boot 1'), kmsgRecord(6, 2, 300, 'old boot 2')]);
    const log = new CommitLog();
    const c = await start(log);
    await stop(c);
    writeBoot(host.root, BOOT_B, BTIME + 3600);
    writeFileSync(`${host.root}/dev/kmsg`, kmsgRecord(6, 0, 50, 'new boot 0') + kmsgRecord(2, 1, 90, 'new boot 1'));
    await start(log);
    expect(log.lines.map((l) => l.text)).toEqual(['old boot 0', 'old boot 1', 'old boot 2', 'new boot 0', 'new boot 1']);
    expect(log.lines[3]?.at).toBe('2025-01-15T09:00:00.000Z');
    expect(JSON.parse(log.store.get('kmsg', KMSG_CHECKPOINT_KEY) ?? '{}')).toEqual({ boot: BOOT_B, seq: 1 });
    expect(log.gaps).toEqual([]);
  });

  it('records overwritten while the daemon was down are a gap', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, [kmsgRecord(6, 0, 100, 'r0'), kmsgRecord(6, 1, 200, 'r1')]);
    const log = new CommitLog();
    const c = await start(log);
    await stop(c);
    // The ring buffer moved on: seq 2..9 are gone.
    writeFileSync(`${host.root}/dev/kmsg`, [10, 11].map((s) => kmsgRecord(6, s, s * 100, `r${s}`)).join(''));
    const c2 = await start(log);
    expect(log.lines.map((l) => l.text)).toEqual(['r0', 'r1', 'r10', 'r11']);
    expect(log.gaps).toEqual(['kmsg records 2..9 (8) no longer in the kernel ring buffer when reading resumed']);
    expect(c2.status().detail).toMatchObject({ gaps: 1, lostRecords: 8 });
  });

  it('garbage lines are counted and skipped', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    appendKmsg(host.root, ['not a record\n', '\u0000\u0001\u00ff\n', kmsgRecord(6, 0, 1, 'ok')]);
    const log = new CommitLog();
    const c = await start(log);
    expect(log.lines.map((l) => l.text)).toEqual(['ok']);
    expect(c.status().detail).toMatchObject({ unparseable: 2 });
  });

  it('without dev/kmsg the source is disabled and says why', async () => {
    const log = new CommitLog();
    const c = await start(log);
    expect(c.status()).toMatchObject({ state: 'disabled', lastError: `${host.root}/dev/kmsg not found`, signals: 0 });
  });
});

/** A kmsg device that plays a script of read results, as the kernel would return them. */
function scriptedDevice(script: (string | 'EPIPE' | 'EAGAIN')[]): KmsgDevice {
  return {
    async read(buf: Buffer) {
      const next = script.shift() ?? 'EAGAIN';
      if (next === 'EPIPE' || next === 'EAGAIN') throw Object.assign(new Error(next), { code: next });
      return buf.write(next);
    },
    async close() {},
  };
}

describe('kmsg device semantics', () => {
  it('EPIPE (ring buffer overrun) becomes a gap and reading continues; dictionary lines are ignored', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    // A character device at dev/kmsg is needed for device mode: point hostRoot's dev/kmsg at /dev/null.
    const { symlinkSync, mkdirSync } = await import('node:fs');
    mkdirSync(`${host.root}/dev`, { recursive: true });
    symlinkSync('/dev/null', `${host.root}/dev/kmsg`);
    const script = [
      '6,100,1000000,-;eth0: Link is Up - 1Gbps/Full\n SUBSYSTEM=net\n DEVICE=n2\n',
      '3,101,2000000,-;nf_conntrack: nf_conntrack: table full, dropping packet\n',
      'EPIPE',
      '4,140,3000000,-;NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out\n',
      'EAGAIN',
    ];
    const log = new CommitLog();
    const c = await start(log, { openDevice: async () => scriptedDevice(script) });
    expect(log.lines.map((l) => l.text)).toEqual([
      'eth0: Link is Up - 1Gbps/Full',
      'nf_conntrack: nf_conntrack: table full, dropping packet',
      'NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out',
    ]);
    expect(log.gaps).toEqual(['kmsg records 102..139 (38) overwritten in the kernel ring buffer before they were read (EPIPE)']);
    expect(c.status().detail).toMatchObject({ mode: 'device', lastSeq: 140, gaps: 1, lostRecords: 38 });
  });

  it('a device read error other than EAGAIN/EPIPE marks the source failing and it reopens on the next poll', async () => {
    writeBoot(host.root, BOOT_A, BTIME);
    const { symlinkSync, mkdirSync } = await import('node:fs');
    mkdirSync(`${host.root}/dev`, { recursive: true });
    symlinkSync('/dev/null', `${host.root}/dev/kmsg`);
    let opens = 0;
    const log = new CommitLog();
    const c = await start(log, {
      openDevice: async () => {
        opens++;
        if (opens === 1) {
          return {
            read: async () => {
              throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
            },
            close: async () => {},
          };
        }
        return scriptedDevice(['6,7,1000,-;after reopen\n']);
      },
    });
    expect(c.status()).toMatchObject({ state: 'failing', lastError: 'EIO: i/o error, read' });
    await c.pollNow();
    expect(log.lines.map((l) => l.text)).toEqual(['after reopen']);
    expect(c.status()).toMatchObject({ state: 'healthy', lastError: null });
  });
});

/** Can this process read the real /dev/kmsg? (root or CAP_SYSLOG, and dmesg_restrict allowing it) */
function canReadRealKmsg(): boolean {
  try {
    const fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      readSync(fd, Buffer.alloc(8192));
      return true;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** Every record in the real device with its seq and the number of lines it makes. */
function realRecords(): { seq: number; lines: number }[] {
  const fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  const out: { seq: number; lines: number }[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPIPE') continue;
        break;
      }
      const text = buf.toString('utf8', 0, n);
      const rec = parseKmsgRecord(text.slice(0, text.indexOf('\n')));
      if (rec) out.push({ seq: rec.seq, lines: rec.message.split('\n').filter((t) => t.length > 0).length });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

describe('the real /dev/kmsg', () => {
  it('reads this machine’s kernel log when permitted, and reports the refusal when not', async () => {
    const log = new CommitLog();
    const c = new KmsgCollector({ hostRoot: '/', checkpoints: log.store, pollIntervalMs: 3_600_000 });
    collectors.push(c);
    await c.start(log.sink);
    if (!canReadRealKmsg()) {
      // Not root / no CAP_SYSLOG / dmesg_restrict: the source must say so, not pretend to be idle.
      expect(c.status().state).toBe('disabled');
      expect(c.status().lastError).toMatch(/EPERM|EACCES/);
      expect(c.status().lastError).toContain('journald');
      return;
    }
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]) * 1000;
    const first = JSON.parse(log.store.get('kmsg', KMSG_CHECKPOINT_KEY) ?? '{}') as { boot: string; seq: number };
    expect(c.status()).toMatchObject({ state: 'healthy', detail: { mode: 'device' } });
    expect(first.boot).toBe(bootId);
    expect(log.lines.length).toBeGreaterThan(0);
    for (const l of log.lines) {
      expect(l.source).toBe('kmsg');
      expect(Date.parse(l.at)).toBeGreaterThanOrEqual(btime);
      expect(Date.parse(l.at)).toBeLessThanOrEqual(Date.now() + 1000);
    }
    // Everything in the buffer up to the checkpoint was delivered (lines of records ≤ seq).
    const records = realRecords();
    const upTo = records.filter((r) => r.seq <= first.seq);
    expect(log.lines.length).toBe(upTo.reduce((n, r) => n + r.lines, 0));
    await stop(c);

    // A restart in the same boot replays nothing: only records newer than the checkpoint arrive.
    const before = log.lines.length;
    const c2 = new KmsgCollector({ hostRoot: '/', checkpoints: log.store, pollIntervalMs: 3_600_000 });
    collectors.push(c2);
    await c2.start(log.sink);
    const second = JSON.parse(log.store.get('kmsg', KMSG_CHECKPOINT_KEY) ?? '{}') as { seq: number };
    const newer = realRecords().filter((r) => r.seq > first.seq && r.seq <= second.seq);
    expect(log.lines.length - before).toBe(newer.reduce((n, r) => n + r.lines, 0));
  });
});

describe('an unprivileged pod', () => {
  it('reports kmsg as disabled with the reason when the device refuses it (EPERM), and keeps retrying quietly', async () => {
    const log = new CommitLog();
    let attempts = 0;
    const c = new KmsgCollector({
      hostRoot: '/',
      checkpoints: log.store,
      pollIntervalMs: 3_600_000,
      openDevice: async () => {
        attempts++;
        throw Object.assign(new Error('EPERM: operation not permitted, open /dev/kmsg'), { code: 'EPERM' });
      },
    });
    collectors.push(c);
    await c.start(log.sink);
    expect(c.status().state).toBe('disabled');
    expect(c.status().lastError).toMatch(/EPERM.*journald/);
    await c.pollNow();
    expect(attempts).toBe(2);
    expect(log.lines).toHaveLength(0);
  });
});

