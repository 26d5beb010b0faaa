import { describe, expect, it } from 'vitest';
import type { LogLine } from '../daemon/core/types.js';
import { type MinedTemplateStat, streamKey, TemplateStats } from '../daemon/detectors/templates/stats.js';

const T0 = Date.parse('2025-03-12T10:00:00.000Z');
const MIN = 60_000;
const at = (minutes: number) => new Date(T0 + minutes * MIN).toISOString();

function podLine(minutes: number, text: string, container = 'api'): LogLine {
  return {
    source: 'podLog',
    at: at(minutes),
    text,
    stream: 'stdout',
    container: { namespace: 'shop', pod: 'api-5d8f7b9c4d-xkqzv', uid: '7c0d1f6e-2b7a-4c55-9a39-0f3c2e8d9b11', container, restart: 0 },
  };
}

function unitLine(minutes: number, text: string, priority = 6): LogLine {
  return { source: 'journald', at: at(minutes), text, unit: 'containerd.service', priority };
}

function byTemplate(stats: MinedTemplateStat[], template: string): MinedTemplateStat | undefined {
  return stats.find((s) => s.template === template);
}

describe('TemplateStats', () => {
  it('keeps one stream per container and per journald unit, and ignores kmsg', () => {
    const stats = new TemplateStats();
    stats.observe(podLine(0, 'GET /healthz 200 3ms'));
    stats.observe(podLine(0, 'GET /healthz 200 3ms', 'sidecar'));
    stats.observe(unitLine(0, 'time="2025-03-12T10:00:00Z" level=info msg="loading plugin"'));
    stats.observe({ source: 'kmsg', at: at(0), text: 'eth0: link up', priority: 6 });
    expect(stats.streamCount).toBe(3);
    expect(streamKey(podLine(0, 'x'))).toBe('podLog:shop/api-5d8f7b9c4d-xkqzv/api');
    expect(streamKey(unitLine(0, 'x'))).toBe('journald:containerd.service');
    expect(
      stats
        .snapshot(at(1))
        .map((s) => s.stream)
        .sort(),
    ).toEqual(['journald:containerd.service', 'podLog:shop/api-5d8f7b9c4d-xkqzv/api', 'podLog:shop/api-5d8f7b9c4d-xkqzv/sidecar']);
  });

  it('counts lines per 5-minute bucket and reports the baseline of the hour before', () => {
    const stats = new TemplateStats();
    // One request line per minute for an hour, then 30 in the current bucket.
    for (let m = 0; m < 60; m++) stats.observe(podLine(m, `GET /api/orders/${1000 + m} 200 ${10 + m}ms`));
    for (let k = 0; k < 30; k++) stats.observe(podLine(60 + k / 10, `GET /api/orders/${5000 + k} 200 12ms`));
    const snap = stats.snapshot(at(63));
    const s = byTemplate(snap, 'GET <*>');
    expect(s).toBeDefined();
    expect(s?.recentCount).toBe(30);
    expect(s?.baselinePerBucket).toBe(5);
    expect(s?.isError).toBe(false);
    expect(s?.firstSeen).toBe(at(0));
    expect(s?.streamFirstSeen).toBe(at(0));
    expect(s?.example).toBe('GET /api/orders/5029 200 12ms');
    expect(s?.count).toBe(90);
  });

  it('marks error templates by level word or journald priority, never mixing them with info lines', () => {
    const stats = new TemplateStats();
    stats.observe(unitLine(0, 'time="2025-03-12T10:00:00Z" level=info msg="StopContainer for \\"abc123\\" returns successfully"'));
    stats.observe(unitLine(0, 'time="2025-03-12T10:00:01Z" level=error msg="StopContainer for \\"abc124\\" failed"'));
    stats.observe(unitLine(0, 'Failed to start containerd container runtime.', 3));
    const snap = stats.snapshot(at(1));
    expect(snap.filter((s) => s.isError).map((s) => s.example)).toEqual([
      'time="2025-03-12T10:00:01Z" level=error msg="StopContainer for \\"abc124\\" failed"',
      'Failed to start containerd container runtime.',
    ]);
    expect(snap.filter((s) => !s.isError)).toHaveLength(1);
  });

  it('redacts and shortens example lines', () => {
    const stats = new TemplateStats({ redact: (t) => t.replace(/token=\S+/g, 'token=[REDACTED]'), maxExampleLength: 40 });
    stats.observe(podLine(0, `login ok token=abcdef0123456789 ${'x'.repeat(80)}`));
    const [s] = stats.snapshot(at(0));
    expect(s?.example).toBe('login ok token=[REDACTED] xxxxxxxxxxxxxx'.slice(0, 40));
    expect(s?.example).not.toContain('abcdef');
  });

  it('asks the store to prune old buckets only when the oldest kept bucket moves', () => {
    const stats = new TemplateStats();
    stats.observe(podLine(0, 'Processed order 1 in 20ms'));
    expect(stats.takeChanges().pruneBefore).toBe(at(0 - 60));
    stats.observe(podLine(4, 'Processed order 2 in 21ms'));
    // Same 5-minute bucket: the line is written, nothing more is pruned.
    const same = stats.takeChanges();
    expect(same.buckets).toHaveLength(1);
    expect(same.pruneBefore).toBeUndefined();
    stats.observe(podLine(5, 'Processed order 3 in 22ms'));
    expect(stats.takeChanges().pruneBefore).toBe(at(5 - 60));
  });

  it('hands out changed rows once, and a restart restored from them keeps ids, counts and baselines', () => {
    const before = new TemplateStats();
    for (let m = 0; m < 30; m++) {
      before.observe(podLine(m, `Processed order ${7000 + m} in ${20 + m}ms`));
      if (m % 10 === 0) before.observe(podLine(m + 0.5, `2025-03-12 10:${String(m).padStart(2, '0')}:00.000 ERROR 1 --- [main] c.e.Pay : payment gateway timeout after ${m + 3}s`));
    }
    const changes = before.takeChanges();
    expect(changes.removed).toEqual([]);
    expect(changes.templates.map((r) => [r.template, r.isError, r.count, r.firstSeen]).sort()).toEqual([
      ['<*> ERROR <*> --- [main] c.e.Pay : payment gateway timeout after <*>', true, 3, at(0.5)],
      ['Processed order <*> in <*>', false, 30, at(0)],
    ]);
    const orderRow = changes.templates.find((r) => !r.isError);
    const orderBuckets = changes.buckets.filter((b) => b.templateId === orderRow?.templateId);
    expect(orderBuckets.map((b) => [b.bucketStart, b.count])).toEqual([
      [at(0), 5],
      [at(5), 5],
      [at(10), 5],
      [at(15), 5],
      [at(20), 5],
      [at(25), 5],
    ]);
    expect(changes.pruneBefore).toBe(at(25 - 60));
    // Nothing changed since: nothing to write, nothing more to prune.
    expect(before.takeChanges()).toEqual({ templates: [], buckets: [], removed: [] });

    const after = new TemplateStats();
    after.restore(changes.templates, changes.buckets);
    after.observe(podLine(31, 'Processed order 9001 in 5ms'));
    const snap = after.snapshot(at(31));
    const order = byTemplate(snap, 'Processed order <*> in <*>');
    expect(order?.templateId).toBe(orderRow?.templateId);
    expect(order?.count).toBe(31);
    expect(order?.recentCount).toBe(1);
    expect(order?.baselinePerBucket).toBe(5);
    expect(order?.streamFirstSeen).toBe(at(0));
    // The restored error template is back too, quiet now, so not in the snapshot.
    expect(snap.map((s) => s.template)).toEqual(['Processed order <*> in <*>']);
    expect(after.rows().templates.find((r) => r.isError)).toMatchObject({ count: 3, firstSeen: at(0.5), lastSeen: at(20.5) });
    // Only the line seen after the restart needs writing.
    const next = after.takeChanges();
    expect(next.templates.map((r) => [r.templateId, r.count])).toEqual([[orderRow?.templateId, 31]]);
    expect(next.buckets).toEqual([{ stream: orderRow?.stream, templateId: orderRow?.templateId, bucketStart: at(30), count: 1 }]);
  });

  it('reports templates that merged as removed and their counts under the surviving id', () => {
    const stats = new TemplateStats();
    const users = ['alice', 'bob', 'carol', 'dave'];
    for (const [i, u] of users.entries()) stats.observe(unitLine(i, `Accepted publickey for ${u} from 203.0.113.${i + 1} port ${50000 + i} ssh2`));
    const changes = stats.takeChanges();
    // Rows existed for alice, bob and carol; dave's line arrived as the merge happened.
    expect(changes.removed).toHaveLength(2);
    expect(changes.templates).toHaveLength(1);
    expect(changes.templates[0]).toMatchObject({ template: 'Accepted publickey for <*> from <*> port <*>', count: 4, firstSeen: at(0), lastSeen: at(3) });
    expect(changes.buckets.map((b) => b.count)).toEqual([4]);
    expect(changes.removed.map((r) => r.templateId)).not.toContain(changes.templates[0]?.templateId);
  });

  it('stays within its stream and template bounds', () => {
    const stats = new TemplateStats({ maxStreams: 2, maxTemplatesPerStream: 5 });
    for (let i = 0; i < 3; i++) stats.observe(podLine(i, 'hello', `c${i}`));
    expect(stats.streamCount).toBe(2);
    const words = ['apple', 'banana', 'cherry', 'damson', 'elder', 'fig', 'grape', 'hazel'];
    for (const [i, w] of words.entries()) stats.observe(podLine(10 + i, `${w} basket is ${w === 'fig' ? 'full' : 'empty'} today ${w}`, 'fruit'));
    const fruit = stats.rows().templates.filter((r) => r.stream.endsWith('/fruit'));
    expect(fruit.length).toBeLessThanOrEqual(5);
    const { removed } = stats.takeChanges();
    expect(removed.some((r) => r.stream.endsWith('/c0'))).toBe(true);

    // A budget over all streams drops the idlest stream.
    const budget = new TemplateStats({ maxTemplates: 4 });
    for (let i = 0; i < 4; i++) budget.observe(podLine(i, `container ${i} started cleanly`, `c${i}`));
    expect(budget.templateCount).toBe(4);
    budget.observe(podLine(5, 'a fifth message', 'c4'));
    expect(budget.templateCount).toBe(4);
    expect(budget.rows().templates.map((r) => r.stream.split('/').pop())).toEqual(['c1', 'c2', 'c3', 'c4']);
  });

  it('drops streams idle longer than streamIdleMs', () => {
    const stats = new TemplateStats({ streamIdleMs: 60 * MIN });
    stats.observe(podLine(0, 'old pod says hi', 'old'));
    stats.observe(podLine(30, 'still here', 'new'));
    stats.observe(podLine(90, 'still here', 'new'));
    expect(stats.streamCount).toBe(1);
    expect(stats.takeChanges().removed.map((r) => r.stream)).toEqual(['podLog:shop/api-5d8f7b9c4d-xkqzv/old']);
  });
});
