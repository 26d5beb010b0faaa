import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../daemon/store/migrations.js';
import { Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';

function finding(id: string, lastSeen: string, extra: Partial<TrackedFinding> = {}): TrackedFinding {
  return {
    id,
    category: 'DiskFull',
    severity: 'warning',
    subject: { kind: 'Node', name: 'n1' },
    title: `t ${id}`,
    message: 'm',
    evidence: [{ source: 'host', at: lastSeen, text: `/: 90% used (${id})` }],
    firstSeen: lastSeen,
    lastSeen,
    count: 1,
    status: 'open',
    diagnosis: null,
    detector: 'disk',
    lifecycle: 'condition',
    ...extra,
  };
}

const empty = { checkpoints: [], gaps: [], lineCounts: new Map<string, number>() };

describe('store', () => {
  it('commits findings with evidence and checkpoints in one transaction, and reads them back after reopening', () => {
    const dir = tempDir();
    const s = Store.open({ dir });
    s.commit({
      at: '2026-01-01T00:00:00.000Z',
      findings: [finding('a'.repeat(16), '2026-01-01T00:00:00.000Z')],
      checkpoints: [{ source: 'pod-logs', key: 'f1', value: '{"offset":10}' }],
      gaps: [{ source: 'pod-logs', at: '2026-01-01T00:00:00.000Z', detail: 'file vanished' }],
      lineCounts: new Map([['podLog:ns/p/c', 10]]),
    });
    s.close();
    const s2 = Store.open({ dir });
    const f = s2.getFinding('a'.repeat(16))!;
    expect(f.evidence[0]!.text).toContain('90% used');
    expect(s2.getCheckpoint('pod-logs', 'f1')).toBe('{"offset":10}');
    expect(s2.lineCounts().get('podLog:ns/p/c')).toBe(10);
    expect(s2.listGaps()[0]!.detail).toBe('file vanished');
    expect(s2.loadOpenFindings()).toHaveLength(1);
    s2.close();
  });

  it('rolls back the whole batch when one write fails: no checkpoint without its findings', () => {
    const s = Store.open({ dir: tempDir() });
    const bad = finding('b'.repeat(16), '2026-01-01T00:00:00.000Z');
    (bad as unknown as { title: null }).title = null; // NOT NULL violation
    expect(() =>
      s.commit({ at: '2026-01-01T00:00:00.000Z', findings: [bad], checkpoints: [{ source: 'kmsg', key: 'seq', value: '5' }], gaps: [], lineCounts: new Map() }),
    ).toThrow();
    expect(s.getCheckpoint('kmsg', 'seq')).toBeUndefined();
    s.close();
  });

  it('paginates newest first with a cursor and filters', () => {
    const s = Store.open({ dir: tempDir() });
    const fs = Array.from({ length: 7 }, (_, i) =>
      finding(i.toString(16).padStart(16, '0'), `2026-01-0${i + 1}T00:00:00.000Z`, i % 2 ? { severity: 'critical' } : {}),
    );
    s.commit({ at: 'x', findings: fs, ...empty });
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = s.listFindings({ limit: 3, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((f) => f.lastSeen.slice(0, 10)));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(['2026-01-07', '2026-01-06', '2026-01-05', '2026-01-04', '2026-01-03', '2026-01-02', '2026-01-01']);
    expect(s.listFindings({ severity: 'critical' }).items).toHaveLength(3);
    expect(s.listFindings({ since: '2026-01-06T00:00:00.000Z' }).items).toHaveLength(2);
    expect(() => s.listFindings({ cursor: 'garbage' })).toThrow(/cursor/);
    s.close();
  });

  it('prunes resolved history by age and keeps open findings', async () => {
    const s = Store.open({ dir: tempDir(), maxAgeDays: 1 });
    s.commit({
      at: 'x',
      findings: [
        finding('c'.repeat(16), '2020-01-01T00:00:00.000Z', { status: 'resolved', resolvedAt: '2020-01-01T00:00:00.000Z' }),
        finding('d'.repeat(16), '2020-01-01T00:00:00.000Z'),
      ],
      ...empty,
    });
    await s.prune(Date.parse('2026-01-01T00:00:00Z'));
    expect(s.getFinding('c'.repeat(16))).toBeUndefined();
    expect(s.getFinding('d'.repeat(16))?.status).toBe('open');
    s.close();
  });

  it('prunes by size: history goes first until the file fits', async () => {
    const s = Store.open({ dir: tempDir(), maxSizeMB: 1 });
    const big = 'x'.repeat(4000);
    for (let batch = 0; batch < 10; batch++) {
      const fs = Array.from({ length: 100 }, (_, i) =>
        finding(`${batch.toString(16)}${i.toString(16).padStart(15, '0')}`, `2026-01-01T00:${String(batch).padStart(2, '0')}:00.000Z`, {
          status: 'resolved',
          message: big,
        }),
      );
      s.commit({ at: 'x', findings: fs, ...empty });
    }
    expect(s.sizeBytes()).toBeGreaterThan(1024 * 1024);
    await s.prune(Date.parse('2026-01-02T00:00:00Z'));
    expect(s.sizeBytes()).toBeLessThanOrEqual(1024 * 1024);
    // Oldest went first: the newest batch is what is left (how much of it fits depends on the schema's indexes).
    expect(s.getFinding(`0${'0'.repeat(15)}`)).toBeUndefined();
    const left = s.listFindings({ limit: 500 }).items;
    expect(left.length).toBeGreaterThan(20);
    expect(new Set(left.map((f) => f.lastSeen))).toEqual(new Set(['2026-01-01T00:09:00.000Z']));
    s.close();
  });

  it('recovers from a corrupt file and keeps it aside', () => {
    const dir = tempDir();
    const s = Store.open({ dir });
    s.commit({ at: 'x', findings: [finding('e'.repeat(16), '2026-01-01T00:00:00.000Z')], ...empty });
    s.close();
    // Overwrite the middle of the file: pages become garbage.
    const path = join(dir, 'nodesage.db');
    const db = new Database(path);
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const buf = Buffer.alloc(pageSize * 3, 0xff);
    const fd = openSync(path, 'r+');
    writeSync(fd, buf, 0, buf.length, pageSize);
    closeSync(fd);
    const s2 = Store.open({ dir });
    expect(s2.recoveredFrom).toBeTruthy();
    expect(existsSync(s2.recoveredFrom!)).toBe(true);
    expect(s2.listFindings().items).toHaveLength(0);
    s2.close();
  });

  it('keeps every released migration as it shipped: a database migrated by an older nodesage has the same schema', () => {
    // SHA-256 of migrations 1-4 as released; a new schema change is a new migration appended after them.
    const released = [
      'a00ba35ff701ebf217fecf009579da2ef1ff2f00b778e14de676b6208e3c09e5',
      '5fad11750446f17ae3cabd1cea31d0808d27badd7d48265d7ae5f749e921e5cf',
      'f156529b054b8900ee3472eb1ac8e9c493ee9f2c891b434b53b9f1513c7ed734',
      'f2263afe4ae397ee5e2c23011691ebd5443ccb69d2e0e14fc3d4936376be6819',
    ];
    expect(MIGRATIONS.slice(0, released.length).map((m) => createHash('sha256').update(m).digest('hex'))).toEqual(released);
  });

  it('refuses a database from a newer nodesage instead of damaging it', () => {
    const dir = tempDir();
    const db = new Database(join(dir, 'nodesage.db'));
    db.pragma('user_version = 999');
    db.close();
    expect(() => Store.open({ dir })).toThrow(/newer/);
    writeFileSync(join(dir, 'unrelated'), '');
  });

  it('downsamples metric samples into 1-minute and 15-minute buckets and drops 1-minute ones after 24 h', async () => {
    const s = Store.open({ dir: tempDir() });
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    s.addSamples(t0 + 1_000, [{ name: 'load1', value: 1 }]);
    s.addSamples(t0 + 31_000, [{ name: 'load1', value: 3 }]);
    s.addSamples(t0 + 61_000, [{ name: 'load1', value: 10 }]);
    expect(s.listSamples('load1', 60, t0)).toEqual([
      { at: '2026-01-01T00:00:00.000Z', mean: 2, max: 3 },
      { at: '2026-01-01T00:01:00.000Z', mean: 10, max: 10 },
    ]);
    expect(s.listSamples('load1', 900, t0)).toEqual([{ at: '2026-01-01T00:00:00.000Z', mean: 14 / 3, max: 10 }]);
    await s.prune(t0 + 2 * 86_400_000);
    expect(s.listSamples('load1', 60, t0)).toEqual([]);
    expect(s.listSamples('load1', 900, t0)).toHaveLength(1);
    s.close();
  });
});

describe('store written under earlier redaction rules', () => {
  it('redacts the stored templates, samples, findings and search index once, and the secret leaves the files', async () => {
    const { createRedactor, redactionVersion } = await import('../daemon/redact.js');
    const dir = tempDir();
    const secret = 'rk_live_51HxQwErTyUiOpAsDfGhJkLzXcVbNm';
    const at = '2026-01-01T00:00:00.000Z';
    const s = Store.open({ dir });
    // What a version without these rules stored: the line, its template and a finding citing it.
    const line = `{"level":"error","msg":"refund failed","restricted_key":"${secret}"}`;
    s.commit({
      ...empty,
      at,
      findings: [finding('c'.repeat(16), at, { title: `refund failed with ${secret}`, evidence: [{ source: 'podLog', at, text: line }], facts: { key: secret } })],
      templates: [{ stream: 'podLog:shop/pay/app', templateId: 't1', template: line, isError: true, firstSeen: at, lastSeen: at, count: 3, example: line }],
    });
    expect(s.search('rk_live_51HxQwErTyUiOpAsDfGhJkLzXcVbNm').templates.length).toBe(1);
    s.close();

    const s2 = Store.open({ dir });
    const version = redactionVersion();
    expect(s2.redactStored(createRedactor(), version)).toEqual({ templates: 1, findings: 1, evidence: 1 });
    // The same rules again: nothing is read or rewritten.
    expect(s2.redactStored(() => 'x', version)).toEqual({ templates: 0, findings: 0, evidence: 0 });
    const f = s2.getFinding('c'.repeat(16))!;
    expect(f.title).toBe('refund failed with [REDACTED:stripe-key]');
    expect(f.evidence[0]!.text).toContain('"restricted_key":"[REDACTED:stripe-key]"');
    expect(s2.listTemplates()[0]!.example).not.toContain(secret);
    expect(s2.search('rk_live_51HxQwErTyUiOpAsDfGhJkLzXcVbNm')).toMatchObject({ templates: [], findings: [] });
    expect(s2.search('refund failed').templates.length).toBe(1);
    s2.close();
    const { readdirSync, readFileSync } = await import('node:fs');
    const bytes = readdirSync(dir)
      .filter((n) => n.startsWith('nodesage.db'))
      .map((n) => readFileSync(join(dir, n)).toString('latin1'))
      .join('');
    expect(bytes).not.toContain(secret);
    expect(bytes.toLowerCase()).not.toContain('51hxqwertyuiopasdfghjklzxcvbnm');
  });
});
