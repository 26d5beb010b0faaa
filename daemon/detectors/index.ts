/**
 * The explicit list of detectors. No registration by import side effect: a
 * detector runs because it is named here.
 */
import { z } from 'zod';
import type { Detector } from '../core/types.js';
import type { DetectorOptionsSpec, OptionsOf } from './options.js';
import { CONTAINER_CONFIG_OPTIONS, createContainerConfigDetector } from './container-config.js';
import { CONTAINER_FAILED_OPTIONS, createContainerFailedDetector } from './container-failed.js';
import { CORRELATION_OPTIONS } from './correlate.js';
import { CRASHLOOP_OPTIONS, createCrashLoopDetector } from './crashloop.js';
import { createDiskDetector, DISK_OPTIONS } from './disk.js';
import { createEvictedDetector, EVICTED_OPTIONS } from './evicted.js';
import { createHostMemoryDetector, HOST_MEMORY_OPTIONS } from './host-memory.js';
import { createImagePullDetector, IMAGE_PULL_OPTIONS } from './image-pull.js';
import { createKubeletHealthDetector, KUBELET_HEALTH_OPTIONS } from './kubelet-health.js';
import { createKubeletReasonsDetector, KUBELET_REASONS_OPTIONS } from './kubelet-reasons.js';
import { createLogErrorSpikeDetector, LOG_ERROR_SPIKE_OPTIONS } from './log-error-spike.js';
import { createLogRuleDetector, LOG_RULES_DETECTOR, LOG_RULES_OPTIONS_SCHEMA, type LogRuleDetectorOptions } from './log-rules.js';
import { createNodeConditionsDetector, NODE_CONDITIONS_OPTIONS } from './node-conditions.js';
import { createNpdEventsDetector, NPD_EVENTS_OPTIONS } from './npd.js';
import { createOomKilledDetector, OOM_KILLED_OPTIONS } from './oom-killed.js';
import { createProbeFailureDetector, PROBE_FAILURE_OPTIONS } from './probe-failure.js';
import { createStatsSummaryDetector, STATS_SUMMARY_OPTIONS } from './stats-summary.js';

// Each detector by the name it stores with its findings, in the order they run.
const FACTORIES: readonly (readonly [string, (o: DetectorOptions) => Detector])[] = [
  ['disk', (o) => createDiskDetector(o.disk)],
  ['host-memory', (o) => createHostMemoryDetector(o.hostMemory)],
  ['node-conditions', (o) => createNodeConditionsDetector(o.nodeConditions)],
  ['kubelet-health', (o) => createKubeletHealthDetector(o.kubeletHealth)],
  ['npd-events', (o) => createNpdEventsDetector(o.npdEvents)],
  ['kubelet-reasons', (o) => createKubeletReasonsDetector(o.kubeletReasons)],
  ['stats-summary', (o) => createStatsSummaryDetector(o.statsSummary)],
  ['crashloop', (o) => createCrashLoopDetector(o.crashLoop)],
  ['oom-killed', (o) => createOomKilledDetector(o.oomKilled)],
  ['image-pull', (o) => createImagePullDetector(o.imagePull)],
  ['container-config', (o) => createContainerConfigDetector(o.containerConfig)],
  ['container-failed', (o) => createContainerFailedDetector(o.containerFailed)],
  ['probe-failure', (o) => createProbeFailureDetector(o.probeFailure)],
  ['evicted', (o) => createEvictedDetector(o.evicted)],
  [LOG_RULES_DETECTOR, (o) => createLogRuleDetector(o.logRules)],
  ['log-error-spike', (o) => createLogErrorSpikeDetector(o.logErrorSpike)],
];

/** Names of every detector, as `detectors.disabled` takes them and findings store them. */
export const DETECTOR_NAMES: readonly string[] = FACTORIES.map(([name]) => name);

// What the config check needs of a detector's options (DetectorOptionsSpec, whatever its option type).
type Spec = { readonly schema: z.ZodType; readonly defaults: object; readonly ordered: readonly (readonly [string, string])[] };

// The log-rule detector's section: its defaults are the shipped rules and its engine's, applied when the rules load.
const LOG_RULES_OPTIONS: DetectorOptionsSpec<LogRuleDetectorOptions> = Object.freeze({ schema: LOG_RULES_OPTIONS_SCHEMA.partial(), defaults: Object.freeze({}), ordered: [] });

// Each detector's options by their key in the config's `detectors` section, in the order they are checked.
// DetectorOptions is derived from it key by key, so these doc comments are its keys' docs.
const SPECS = {
  /** DiskFull / InodeExhaustion thresholds. Defaults to DISK_OPTIONS.defaults. */
  disk: DISK_OPTIONS,
  /** Host memory (PSI, available memory) thresholds. Defaults to HOST_MEMORY_OPTIONS.defaults. */
  hostMemory: HOST_MEMORY_OPTIONS,
  /** CrashLoop window and restart counts. Defaults to CRASHLOOP_OPTIONS.defaults. */
  crashLoop: CRASHLOOP_OPTIONS,
  /** OOMKilled window and repeat count. Defaults to OOM_KILLED_OPTIONS.defaults. */
  oomKilled: OOM_KILLED_OPTIONS,
  /** ImagePull waiting reasons. Defaults to IMAGE_PULL_OPTIONS.defaults. */
  imagePull: IMAGE_PULL_OPTIONS,
  /** ContainerConfig waiting reasons and mount window. Defaults to CONTAINER_CONFIG_OPTIONS.defaults. */
  containerConfig: CONTAINER_CONFIG_OPTIONS,
  /** How long a non-restarted failed container is a warning. Defaults to CONTAINER_FAILED_OPTIONS.defaults. */
  containerFailed: CONTAINER_FAILED_OPTIONS,
  /** ProbeFailure windows and failure count. Defaults to PROBE_FAILURE_OPTIONS.defaults. */
  probeFailure: PROBE_FAILURE_OPTIONS,
  /** How long an eviction is a warning. Defaults to EVICTED_OPTIONS.defaults. */
  evicted: EVICTED_OPTIONS,
  /** Extra node conditions and stuck-terminating age. Defaults to NODE_CONDITIONS_OPTIONS.defaults. */
  nodeConditions: NODE_CONDITIONS_OPTIONS,
  /** Window of node-problem-detector's events. Defaults to NPD_EVENTS_OPTIONS.defaults. */
  npdEvents: NPD_EVENTS_OPTIONS,
  /** Windows of the kubelet's other failure reasons (sandbox, volumes, hooks, GC, admission). Defaults to KUBELET_REASONS_OPTIONS.defaults. */
  kubeletReasons: KUBELET_REASONS_OPTIONS,
  /** Severity of an unhealthy kubelet. Defaults to KUBELET_HEALTH_OPTIONS.defaults. */
  kubeletHealth: KUBELET_HEALTH_OPTIONS,
  /** PID and memory thresholds on the kubelet's stats summary. Defaults to STATS_SUMMARY_OPTIONS.defaults. */
  statsSummary: STATS_SUMMARY_OPTIONS,
  /** The log-rule detector (rule files under daemon/rules plus site files). Defaults to the shipped rules. */
  logRules: LOG_RULES_OPTIONS,
  /** New or bursting error templates (reads the view's template statistics). Defaults to LOG_ERROR_SPIKE_OPTIONS.defaults. */
  logErrorSpike: LOG_ERROR_SPIKE_OPTIONS,
  /** Options of the correlation pass that runs after the detectors. Defaults to CORRELATION_OPTIONS.defaults. */
  correlation: CORRELATION_OPTIONS,
} as const satisfies Record<string, Spec>;

/** Options of every detector, as the `detectors` section of the config holds them. */
export type DetectorOptions = { [K in keyof typeof SPECS]?: Partial<OptionsOf<(typeof SPECS)[K]>> } & {
  /** Detectors switched off by name (see DETECTOR_NAMES). Defaults to none. */
  disabled?: string[];
};

const detectorName = z.string({ error: 'a list of detector names' }).refine((n) => DETECTOR_NAMES.includes(n), { error: `a detector name (${DETECTOR_NAMES.join(', ')})` });

/**
 * The `detectors` section of the config: every detector's own schema, strict,
 * composed, plus `disabled` and the ordering of warning and critical thresholds.
 */
export const DETECTOR_OPTIONS_SCHEMA = z
  .object({
    ...(Object.fromEntries(Object.entries(SPECS).map(([key, spec]) => [key, spec.schema])) as { [K in keyof typeof SPECS]: (typeof SPECS)[K]['schema'] }),
    disabled: z.array(detectorName, { error: `a list of detector names (${DETECTOR_NAMES.join(', ')})` }),
  })
  .partial()
  .strict()
  .superRefine((opts, ctx) => {
    // Thresholds checked in order after merging with the defaults, so a warning above the default critical is caught too.
    for (const [key, { defaults, ordered }] of Object.entries(SPECS) as [keyof typeof SPECS, Spec][]) {
      const merged = { ...defaults, ...(opts[key] as object | undefined) } as Record<string, number>;
      for (const [lo, hi] of ordered) {
        if (merged[lo]! <= merged[hi]!) continue;
        // Name the key the operator set: the other one may be a default.
        const setLo = (opts[key] as Record<string, unknown> | undefined)?.[lo] !== undefined;
        const message = setLo ? `at most detectors.${key}.${hi} (${merged[hi]})` : `at least detectors.${key}.${lo} (${merged[lo]})`;
        ctx.addIssue({ code: 'custom', path: [key, setLo ? lo : hi], message });
      }
    }
  });

/**
 * Builds every detector with its options. Loads and compiles the log rule files
 * (I/O, once): call it at start-up, not per cycle. Throws RuleFileError on a bad
 * rule file.
 */
export function createDetectors(opts: DetectorOptions = {}): Detector[] {
  const off = new Set(opts.disabled ?? []);
  return FACTORIES.filter(([name]) => !off.has(name)).map(([, create]) => create(opts));
}
