/**
 * The per-source series of /metrics, read from each source's status at scrape
 * time, so they say exactly what /v1/status says (the words and counters are
 * defined once, in core/runtime/health.ts).
 */
import { Counter, Gauge, type Registry, whenChanged } from './prometheus.js';
import { SOURCE_STATES } from '../core/runtime/health.js';
import type { SourceStatus } from '../core/types.js';

/**
 * The sources' statuses as a scrape reads them: read once per scrape, and the same array as at the last scrape
 * while nothing a per-source series shows has changed, so each series keeps the text it rendered. At a few hundred
 * scrapes a second, writing every per-source series again made most of a scrape's garbage.
 */
export function scrapedSources(read: () => SourceStatus[]): () => readonly SourceStatus[] {
  let shown: { list: SourceStatus[]; key: string } | undefined;
  let fresh = false;
  return () => {
    if (fresh && shown) return shown.list;
    const list = read();
    const key = JSON.stringify(list.map((s) => [s.name, s.state, s.signals, s.lastSignalAt, s.detail?.drops, s.detail?.gaps, s.detail?.restarts]));
    if (shown?.key !== key) shown = { list, key };
    // Every collect of one scrape runs in the same turn of the event loop.
    fresh = true;
    queueMicrotask(() => {
      fresh = false;
    });
    return shown.list;
  };
}

/** A counter that reports, per source, a running total the source keeps itself. */
function totalCounter(registry: Registry, name: string, help: string, sources: () => readonly SourceStatus[], value: (s: SourceStatus) => number): void {
  const counter: Counter<'source'> = new Counter({
    name,
    help,
    labelNames: ['source'],
    registers: [registry],
    // Totals come whole from the sources; a source built again (a new daemon in-process) starts over.
    collect: whenChanged(sources, (list) => {
      counter.reset();
      for (const s of list) counter.inc({ source: s.name }, value(s));
    }),
  });
}

function detailNumber(s: SourceStatus, key: string): number {
  const v = s.detail?.[key];
  return typeof v === 'number' ? v : 0;
}

/** Registers nodesage_source_{signals,drops,gaps,restarts}_total and nodesage_source_state. */
export function registerSourceMetrics(registry: Registry, sources: () => readonly SourceStatus[]): void {
  totalCounter(registry, 'nodesage_source_signals_total', 'Signals a source handed on (log lines, gaps, host samples, Kubernetes objects; not read positions).', sources, (s) => s.signals);
  totalCounter(registry, 'nodesage_source_drops_total', 'Records a source read but did not hand on (rate limit, unparseable, backlog).', sources, (s) => detailNumber(s, 'drops'));
  totalCounter(registry, 'nodesage_source_gaps_total', 'Stretches a source knows it could not read (ring buffer overrun, file gone before its end, watch expired).', sources, (s) => detailNumber(s, 'gaps'));
  totalCounter(registry, 'nodesage_source_restarts_total', 'Times a source reader was started again after it ended or failed.', sources, (s) => detailNumber(s, 'restarts'));
  const state: Gauge<'source' | 'state'> = new Gauge({
    name: 'nodesage_source_state',
    help: 'State of a source: 1 for its current state (healthy, stale, failing, disabled), 0 for the others.',
    labelNames: ['source', 'state'],
    registers: [registry],
    collect: whenChanged(sources, (list) => {
      state.reset();
      for (const s of list) for (const st of SOURCE_STATES) state.set({ source: s.name, state: st }, s.state === st ? 1 : 0);
    }),
  });
}
