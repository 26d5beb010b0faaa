/**
 * The per-source series of /metrics, read from each source's status at scrape
 * time, so they say exactly what /v1/status says (the words and counters are
 * defined once, in core/runtime/health.ts).
 */
import { Counter, Gauge, type Registry } from './prometheus.js';
import { SOURCE_STATES } from '../core/runtime/health.js';
import type { SourceStatus } from '../core/types.js';

/** A counter that reports, per source, a running total the source keeps itself. */
function totalCounter(registry: Registry, name: string, help: string, sources: () => SourceStatus[], value: (s: SourceStatus) => number): void {
  new Counter({
    name,
    help,
    labelNames: ['source'],
    registers: [registry],
    collect() {
      // Totals come whole from the sources; a source built again (a new daemon in-process) starts over.
      this.reset();
      for (const s of sources()) this.inc({ source: s.name }, value(s));
    },
  });
}

function detailNumber(s: SourceStatus, key: string): number {
  const v = s.detail?.[key];
  return typeof v === 'number' ? v : 0;
}

/** Registers nodesage_source_{signals,drops,gaps,restarts}_total and nodesage_source_state. */
export function registerSourceMetrics(registry: Registry, sources: () => SourceStatus[]): void {
  totalCounter(registry, 'nodesage_source_signals_total', 'Signals a source handed on (log lines, gaps, host samples, Kubernetes objects; not read positions).', sources, (s) => s.signals);
  totalCounter(registry, 'nodesage_source_drops_total', 'Records a source read but did not hand on (rate limit, unparseable, backlog).', sources, (s) => detailNumber(s, 'drops'));
  totalCounter(registry, 'nodesage_source_gaps_total', 'Stretches a source knows it could not read (ring buffer overrun, file gone before its end, watch expired).', sources, (s) => detailNumber(s, 'gaps'));
  totalCounter(registry, 'nodesage_source_restarts_total', 'Times a source reader was started again after it ended or failed.', sources, (s) => detailNumber(s, 'restarts'));
  new Gauge({
    name: 'nodesage_source_state',
    help: 'State of a source: 1 for its current state (healthy, stale, failing, disabled), 0 for the others.',
    labelNames: ['source', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources()) for (const state of SOURCE_STATES) this.set({ source: s.name, state }, s.state === state ? 1 : 0);
    },
  });
}
