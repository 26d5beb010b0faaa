/**
 * One detection cycle: every detector over one view, drafts of one problem
 * merged into one, then correlation. A
 * detector that throws is reported and skipped; the others still run.
 */
import type { Detector, FindingDraft, NodeView } from '../core/types.js';
import { type CorrelationOptions, correlate } from './correlate.js';
import { mergeDrafts } from './merge.js';

/** A detector failure, reported by runDetectors. */
export interface DetectorFailure {
  detector: string;
  error: Error;
}

/** Result of one detection cycle. */
export interface DetectionResult {
  drafts: FindingDraft[];
  failures: DetectorFailure[];
}

/** Runs every detector over the view, merges drafts of one problem and links causes between them. */
export function runDetectors(
  view: NodeView,
  detectors: readonly Detector[],
  correlation: Partial<CorrelationOptions> = {},
): DetectionResult {
  const drafts: FindingDraft[] = [];
  const failures: DetectorFailure[] = [];
  for (const d of detectors) {
    try {
      drafts.push(...d.detect(view));
    } catch (err) {
      failures.push({ detector: d.name, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }
  return { drafts: correlate(mergeDrafts(drafts), correlation), failures };
}
