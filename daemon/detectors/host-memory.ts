/**
 * Host memory pressure (NodeMemoryPressure with host evidence): Linux PSI
 * `memory` stall averages, and available memory. PSI says what a percentage
 * cannot: that tasks are actually waiting for memory.
 */
import type { Severity } from '../core/types.js';
import { defineDetectorOptions, detectorFactory, opt, percent } from './options.js';

/** Thresholds of the host memory detector: each one's check, doc and default (config `detectors.hostMemory`). */
export const HOST_MEMORY_OPTIONS = defineDetectorOptions({
  /** PSI memory `some` avg60 (percent of time stalled) for a warning. Defaults to 10. */
  psiSomeWarn: opt(percent, 10),
  /** PSI memory `full` avg60 for a critical finding. Defaults to 10. */
  psiFullCritical: opt(percent, 10),
  /** Available memory percent below which it is a warning. Defaults to 5. */
  availableWarnPercent: opt(percent, 5),
  /** Available memory percent below which it is critical. Defaults to 2. */
  availableCriticalPercent: opt(percent, 2),
}, [['availableCriticalPercent', 'availableWarnPercent']]);

/** Creates the host memory detector. */
export const createHostMemoryDetector = detectorFactory('host-memory', HOST_MEMORY_OPTIONS, (o) => (view) => {
  const h = view.host;
  if (!h) return [];
  const reasons: string[] = [];
  let sev: Severity | null = null;
  const raise = (s: Severity) => {
    if (sev !== 'critical') sev = s;
  };
  const mem = h.psi?.memory;
  if (mem) {
    if (mem.full && mem.full.avg60 >= o.psiFullCritical) {
      raise('critical');
      reasons.push(`PSI memory full avg60 ${mem.full.avg60.toFixed(1)}% (all tasks stalled on memory)`);
    } else if (mem.some.avg60 >= o.psiSomeWarn) {
      raise('warning');
      reasons.push(`PSI memory some avg60 ${mem.some.avg60.toFixed(1)}% (tasks stalled on memory)`);
    }
  }
  if (h.memory && h.memory.totalBytes > 0) {
    const availPct = (h.memory.availableBytes / h.memory.totalBytes) * 100;
    const text = `available memory ${availPct.toFixed(1)}% (${(h.memory.availableBytes / 1024 ** 2).toFixed(0)} MiB of ${(h.memory.totalBytes / 1024 ** 2).toFixed(0)} MiB)`;
    if (availPct < o.availableCriticalPercent) {
      raise('critical');
      reasons.push(text);
    } else if (availPct < o.availableWarnPercent) {
      raise('warning');
      reasons.push(text);
    }
  }
  if (!sev) return [];
  return [
    {
      category: 'NodeMemoryPressure',
      severity: sev,
      subject: { kind: 'Node', name: view.nodeName },
      title: 'The node is short of memory',
      message: `${reasons.join('; ')}.`,
      evidence: reasons.map((text) => ({ source: 'host' as const, at: h.at, text })),
      at: h.at,
      lifecycle: 'condition',
      detector: 'host-memory',
    },
  ];
});
