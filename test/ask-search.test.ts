/**
 * The full-text index (migration 2): kept in sync with findings, evidence,
 * diagnoses and log templates by triggers, ranked by bm25, and safe for any
 * question a user can type.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { Diagnosis } from '../daemon/core/types.js';
import { toFtsQuery } from '../daemon/store/fts-query.js';
import { MIGRATIONS } from '../daemon/store/migrations.js';
import { DB_FILE, Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';
import { join } from 'node:path';

const T0 = '2026-03-01T10:00:00.000Z';

function finding(id: string, over: Partial<TrackedFinding> = {}): TrackedFinding {
  return {
    id,
    category: 'CrashLoop',
    severity: 'warning',
    subject: { kind: 'Container', name: 'api-7d9f8', namespace: 'shop', container: 'app' },
    title: 'Container app of pod shop/api-7d9f8 is crash-looping',
    message: 'restarted 5 times; last exit code 1',
    evidence: [{ source: 'podLog', at: T0, text: 'panic: dial tcp 10.0.0.7:5432: connect: connection refused' }],
    firstSeen: T0,
    lastSeen: T0,
    count: 5,
    status: 'open',
    diagnosis: null,
    detector: 'crashloop',
    lifecycle: 'condition',
    ...over,
  };
}

function commit(store: Store, findings: TrackedFinding[], at = T0): void {
  store.commit({ at, findings, checkpoints: [], gaps: [], lineCounts: new Map() });
}

const ids = (r: { findings: { finding: { id: string } }[] }) => r.findings.map((h) => h.finding.id);

describe('search index', () => {
  it('follows inserts, updates, diagnoses, evidence rewrites and deletes', async () => {
    const store = Store.open({ dir: tempDir() });
    commit(store, [finding('a000000000000001')]);
    // A cycle only notes what changed; the next search indexes it, once.
    commit(store, [finding('a000000000000001')]);
    expect(store.refreshSearchIndex()).toBe(1);
    expect(store.refreshSearchIndex()).toBe(0);
    expect(ids(store.search('why is api crashing?'))).toEqual(['a000000000000001']);
    // Evidence text is searchable, and its replacement drops the old words.
    expect(ids(store.search('connection refused postgres'))).toEqual(['a000000000000001']);
    commit(store, [finding('a000000000000001', { evidence: [{ source: 'podLog', at: T0, text: 'error: certificate signed by unknown authority' }] })]);
    expect(ids(store.search('connection refused'))).toEqual([]);
    expect(ids(store.search('unknown authority'))).toEqual(['a000000000000001']);
    // A diagnosis adds its summary and cause.
    const d: Diagnosis = {
      summary: 'The app cannot verify the registry mirror',
      probableCause: 'a missing CA bundle in the image',
      nextSteps: [],
      commands: [],
      confidence: 'low',
      diagnoser: 'rule-hint',
      tokens: { prompt: 0, completion: 0 },
      latencyMs: 0,
    };
    store.setDiagnosis('a000000000000001', d);
    expect(ids(store.search('registry mirror bundle'))).toEqual(['a000000000000001']);
    // A new title replaces the old one in the index.
    commit(store, [finding('a000000000000001', { title: 'Container app keeps restarting' })]);
    expect(ids(store.search('keeps restarting'))).toEqual(['a000000000000001']);
    expect(store.search('looping').findings).toHaveLength(0);
    // Retention deletes cascade into the index (findings and their evidence rows).
    commit(store, [finding('a000000000000001', { status: 'resolved', lastSeen: '2025-01-01T00:00:00.000Z' })]);
    await store.prune(Date.parse('2026-03-02T00:00:00.000Z'));
    expect(store.search('restarting unknown authority registry').findings).toHaveLength(0);
    store.close();
  });

  it('indexes log templates and filters by time', () => {
    const store = Store.open({ dir: tempDir() });
    store.commit({
      at: T0,
      findings: [finding('b000000000000001', { category: 'DiskFull', subject: { kind: 'Node', name: 'edge-1' }, title: 'Filesystem / is 97% full', message: 'nodefs' })],
      checkpoints: [],
      gaps: [],
      lineCounts: new Map(),
      templates: [
        {
          stream: 'journald:kubelet.service',
          templateId: 't1',
          template: 'eviction manager: attempting to reclaim <*>',
          isError: false,
          firstSeen: T0,
          lastSeen: T0,
          count: 12,
          example: 'eviction manager: attempting to reclaim ephemeral-storage',
        },
      ],
    });
    const r = store.search('is the disk full? any eviction');
    expect(ids(r)).toEqual(['b000000000000001']);
    expect(r.templates.map((t) => [t.stream, t.count])).toEqual([['journald:kubelet.service', 12]]);
    const later = store.search('disk eviction', { since: '2026-03-02T00:00:00.000Z' });
    expect(later.findings).toHaveLength(0);
    expect(later.templates).toHaveLength(0);
    store.close();
  });

  it('ranks the finding that matches more and rarer words first (bm25)', () => {
    const store = Store.open({ dir: tempDir() });
    commit(store, [
      finding('c000000000000001', { title: 'Container web is crash-looping', subject: { kind: 'Container', name: 'web-1', namespace: 'shop', container: 'web' }, evidence: [] }),
      finding('c000000000000002', {
        category: 'ImagePull',
        title: 'Image registry.local/web:2 cannot be pulled',
        message: 'manifest unknown',
        subject: { kind: 'Container', name: 'web-2', namespace: 'shop', container: 'web' },
        evidence: [{ source: 'event', at: T0, text: 'Failed to pull image "registry.local/web:2": manifest unknown' }],
      }),
      finding('c000000000000003', { category: 'DiskFull', title: 'Filesystem /var is 95% full', message: 'nodefs', subject: { kind: 'Node', name: 'n1' }, evidence: [] }),
    ]);
    expect(ids(store.search('image pull manifest unknown for web'))[0]).toBe('c000000000000002');
    expect(ids(store.search('web crash loop'))[0]).toBe('c000000000000001');
    // Category words spelled apart still find the category.
    expect(ids(store.search('disk full'))[0]).toBe('c000000000000003');
    const scores = store.search('web').findings.map((h) => h.score);
    expect([...scores].sort((a, b) => a - b)).toEqual(scores);
    store.close();
  });

  it('never throws on FTS5 syntax in a question', () => {
    const store = Store.open({ dir: tempDir() });
    commit(store, [finding('d000000000000001')]);
    const odd = [
      '"unbalanced quote',
      'title:api OR message:*',
      'NEAR(api crash, 2)',
      'api* AND NOT (crash OR "loop")',
      '^start - minus -- dash',
      ')))(((',
      '*',
      '"',
      "'; DROP TABLE findings; --",
      '{title message}: api',
      'api-7d9f8.shop/app:v1.2',
      'ünïcödé ✓ 数据库 emoji 🚀',
      '   ',
      '',
      'a'.repeat(5000),
    ];
    for (const q of odd) expect(() => store.search(q), q).not.toThrow();
    expect(ids(store.search('NEAR(api crash, 2)'))).toEqual(['d000000000000001']);
    expect(ids(store.search('api-7d9f8'))).toEqual(['d000000000000001']);
    expect(store.search('the of and ?').query).toBeNull();
    store.close();
  });

  it('builds quoted OR terms, prefixes and category words', () => {
    expect(toFtsQuery('Why is my pod crash looping?')).toBe('"pod"* OR "crash"* OR "looping"* OR "crashloop"');
    // A colon-joined token is also searched as a phrase; `title:` is never a column filter.
    expect(toFtsQuery('title:api NEAR')).toBe('"title"* OR "api"* OR "near"* OR "title api"');
    expect(toFtsQuery('exit 137')).toBe('"exit"* OR "137"');
    expect(toFtsQuery('"";*()')).toBeNull();
  });

  it('indexes what a database from before the index already holds', () => {
    const dir = tempDir();
    const db = new Database(join(dir, DB_FILE));
    db.exec(MIGRATIONS[0]!);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO findings (id, category, severity, subject, title, message, detector, lifecycle, first_seen, last_seen, count, status, updated_at)
       VALUES ('e000000000000001', 'KernelOOM', 'critical', '{"kind":"Node","name":"n1"}', 'Kernel OOM killer ran', 'killed process 42 (java)', 'kmsg', 'event', ?, ?, 1, 'open', ?)`,
    ).run(T0, T0, T0);
    db.prepare("INSERT INTO evidence (finding_id, seq, source, at, text) VALUES ('e000000000000001', 0, 'kmsg', ?, 'Out of memory: Killed process 42 (java)')").run(T0);
    db.close();
    const store = Store.open({ dir });
    expect(ids(store.search('java out of memory'))).toEqual(['e000000000000001']);
    store.close();
  });
});
