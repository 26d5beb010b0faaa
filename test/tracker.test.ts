import { describe, expect, it } from 'vitest';
import { fingerprint } from '../daemon/core/fingerprint.js';
import type { FindingDraft } from '../daemon/core/types.js';
import { FindingTracker } from '../daemon/tracker/tracker.js';

const node = { kind: 'Node' as const, name: 'n1' };

function disk(at: string, pct = 90): FindingDraft {
  return {
    category: 'DiskFull',
    severity: 'warning',
    subject: node,
    detail: '/',
    title: `/ is ${pct}% full`,
    message: 'm',
    evidence: [{ source: 'host', at, text: `/: ${pct}% used` }],
    at,
    lifecycle: 'condition',
    detector: 'disk',
  };
}

function kernelOom(at: string): FindingDraft {
  return {
    category: 'KernelOOM',
    severity: 'critical',
    subject: node,
    title: 'node OOM',
    message: 'm',
    evidence: [{ source: 'kmsg', at, text: `Out of memory: Killed process 1 (x) at ${at}` }],
    at,
    lifecycle: 'event',
    detector: 'log-rules',
  };
}

const ran = new Set(['disk', 'log-rules']);

describe('finding tracker', () => {
  it('gives a stable id, counts cycles for conditions and resolves when the condition clears', () => {
    const t = new FindingTracker();
    const r1 = t.apply([disk('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:00.000Z', ran);
    expect(r1.opened).toHaveLength(1);
    const f = r1.opened[0]!;
    expect(f.id).toBe(fingerprint('DiskFull', node, '/'));
    t.apply([disk('2026-01-01T00:00:10.000Z', 91)], '2026-01-01T00:00:10.000Z', ran);
    expect(t.openFindings()[0]!.count).toBe(2);
    expect(t.openFindings()[0]!.title).toBe('/ is 91% full');
    expect(t.openFindings()[0]!.firstSeen).toBe('2026-01-01T00:00:00.000Z');
    // Detector ran and no longer sees it: resolved.
    const r3 = t.apply([], '2026-01-01T00:00:20.000Z', ran);
    expect(r3.resolved.map((x) => x.id)).toEqual([f.id]);
    expect(r3.resolved[0]!.status).toBe('resolved');
    // A detector that failed this cycle resolves nothing.
    const t2 = new FindingTracker();
    t2.apply([disk('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:00.000Z', ran);
    expect(t2.apply([], '2026-01-01T00:00:10.000Z', new Set()).resolved).toHaveLength(0);
  });

  it('counts event occurrences once per new evidence and resolves after the quiet period', () => {
    const t = new FindingTracker([], { quietPeriodMinutes: 10 });
    t.apply([kernelOom('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:00.000Z', ran);
    // The same line again (e.g. re-read) is not a new occurrence.
    t.apply([kernelOom('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:05.000Z', ran);
    expect(t.openFindings()[0]!.count).toBe(1);
    t.apply([kernelOom('2026-01-01T00:01:00.000Z')], '2026-01-01T00:01:00.000Z', ran);
    expect(t.openFindings()[0]!.count).toBe(2);
    expect(t.apply([], '2026-01-01T00:05:00.000Z', ran).resolved).toHaveLength(0);
    expect(t.apply([], '2026-01-01T00:12:00.000Z', ran).resolved).toHaveLength(1);
  });

  it('marks root causes and keeps only open causes', () => {
    const t = new FindingTracker();
    const oomId = fingerprint('KernelOOM', node);
    const crash: FindingDraft = {
      category: 'CrashLoop',
      severity: 'critical',
      subject: { kind: 'Container', name: 'p', namespace: 'ns', container: 'c' },
      title: 'crash',
      message: 'm',
      evidence: [{ source: 'podStatus', at: '2026-01-01T00:00:00.000Z', text: 'CrashLoopBackOff' }],
      at: '2026-01-01T00:00:00.000Z',
      lifecycle: 'condition',
      detector: 'crashloop',
      causes: [oomId],
    };
    t.apply([crash, kernelOom('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:00.000Z', new Set(['crashloop', 'log-rules']));
    const byCat = Object.fromEntries(t.openFindings().map((f) => [f.category, f]));
    expect(byCat.KernelOOM!.rootCause).toBe(true);
    expect(byCat.CrashLoop!.rootCause).toBe(false);
    expect(byCat.CrashLoop!.causes).toEqual([oomId]);
  });

  it('reopens a resolved finding with its history', () => {
    const t = new FindingTracker();
    const first = t.apply([disk('2026-01-01T00:00:00.000Z')], '2026-01-01T00:00:00.000Z', ran).opened[0]!;
    const resolved = t.apply([], '2026-01-01T00:00:10.000Z', ran).resolved[0]!;
    const again = t.apply([disk('2026-01-01T01:00:00.000Z')], '2026-01-01T01:00:00.000Z', ran, (id) => (id === first.id ? resolved : undefined));
    expect(again.opened[0]!.id).toBe(first.id);
    expect(again.opened[0]!.firstSeen).toBe('2026-01-01T00:00:00.000Z');
    expect(again.opened[0]!.count).toBe(2);
    expect(again.opened[0]!.status).toBe('open');
  });

  it('resolves the stale findings of a long history over several cycles, at most maxResolvedPerCycle each', () => {
    // A restart after a long outage: 250 event findings, all past their quiet period.
    const stale = Array.from({ length: 250 }, (_, i) => {
      const f = new FindingTracker().apply([{ ...kernelOom('2026-01-01T00:00:00.000Z'), subject: { kind: 'Node', name: `n${i}` } }], '2026-01-01T00:00:00.000Z', ran)
        .opened[0]!;
      return f;
    });
    const t = new FindingTracker(stale, { maxResolvedPerCycle: 100 });
    const sizes: number[] = [];
    for (let c = 0; c < 4; c++) {
      const r = t.apply([], `2026-01-02T00:00:0${c}.000Z`, ran);
      sizes.push(r.resolved.length);
      // What the cycle resolved is what it hands to the store, with its own time.
      expect(r.changed.map((f) => f.id).sort()).toEqual(r.resolved.map((f) => f.id).sort());
      for (const f of r.resolved) expect(f.resolvedAt).toBe(`2026-01-02T00:00:0${c}.000Z`);
    }
    expect(sizes).toEqual([100, 100, 50, 0]);
    expect(t.openFindings()).toEqual([]);
    expect(new Set(stale.map((f) => f.status))).toEqual(new Set(['resolved']));
  });
});
