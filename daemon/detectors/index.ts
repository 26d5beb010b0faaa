/**
 * The explicit list of detectors. No registration by import side effect: a
 * detector runs because it is named here.
 */
import { z } from 'zod';
import type { Detector } from '../core/types.js';
import { CONTAINER_CONFIG_OPTIONS_SCHEMA, type ContainerConfigOptions, createContainerConfigDetector } from './container-config.js';
import { CONTAINER_FAILED_OPTIONS_SCHEMA, type ContainerFailedOptions, createContainerFailedDetector } from './container-failed.js';
import { CORRELATION_OPTIONS_SCHEMA, type CorrelationOptions } from './correlate.js';
import { CRASHLOOP_OPTIONS_SCHEMA, type CrashLoopOptions, createCrashLoopDetector } from './crashloop.js';
import { createDiskDetector, DISK_DEFAULTS, DISK_OPTIONS_SCHEMA, DISK_ORDERED, type DiskOptions } from './disk.js';
import { createEvictedDetector, EVICTED_OPTIONS_SCHEMA, type EvictedOptions } from './evicted.js';
import { createHostMemoryDetector, HOST_MEMORY_DEFAULTS, HOST_MEMORY_OPTIONS_SCHEMA, HOST_MEMORY_ORDERED, type HostMemoryOptions } from './host-memory.js';
import { createImagePullDetector, IMAGE_PULL_OPTIONS_SCHEMA, type ImagePullOptions } from './image-pull.js';
import { createKubeletHealthDetector, KUBELET_HEALTH_OPTIONS_SCHEMA, type KubeletHealthOptions } from './kubelet-health.js';
import { createKubeletReasonsDetector, KUBELET_REASONS_OPTIONS_SCHEMA, type KubeletReasonsOptions } from './kubelet-reasons.js';
import { createLogErrorSpikeDetector, LOG_ERROR_SPIKE_OPTIONS_SCHEMA, type LogErrorSpikeOptions } from './log-error-spike.js';
import { createLogRuleDetector, LOG_RULES_DETECTOR, LOG_RULES_OPTIONS_SCHEMA, type LogRuleDetectorOptions } from './log-rules.js';
import { createNodeConditionsDetector, NODE_CONDITIONS_OPTIONS_SCHEMA, type NodeConditionsOptions } from './node-conditions.js';
import { createNpdEventsDetector, NPD_EVENTS_OPTIONS_SCHEMA, type NpdEventsOptions } from './npd.js';
import { createOomKilledDetector, OOM_KILLED_OPTIONS_SCHEMA, type OomKilledOptions } from './oom-killed.js';
import { createProbeFailureDetector, PROBE_FAILURE_OPTIONS_SCHEMA, type ProbeFailureOptions } from './probe-failure.js';
import { createStatsSummaryDetector, STATS_SUMMARY_DEFAULTS, STATS_SUMMARY_OPTIONS_SCHEMA, STATS_SUMMARY_ORDERED, type StatsSummaryOptions } from './stats-summary.js';

/** Options of every detector, as the `detectors` section of the config holds them. */
export interface DetectorOptions {
  /** DiskFull / InodeExhaustion thresholds. Defaults to DISK_DEFAULTS. */
  disk?: Partial<DiskOptions>;
  /** Host memory (PSI, available memory) thresholds. Defaults to HOST_MEMORY_DEFAULTS. */
  hostMemory?: Partial<HostMemoryOptions>;
  /** CrashLoop window and restart counts. Defaults to CRASHLOOP_DEFAULTS. */
  crashLoop?: Partial<CrashLoopOptions>;
  /** OOMKilled window and repeat count. Defaults to OOM_KILLED_DEFAULTS. */
  oomKilled?: Partial<OomKilledOptions>;
  /** ImagePull waiting reasons. Defaults to IMAGE_PULL_DEFAULTS. */
  imagePull?: Partial<ImagePullOptions>;
  /** ContainerConfig waiting reasons and mount window. Defaults to CONTAINER_CONFIG_DEFAULTS. */
  containerConfig?: Partial<ContainerConfigOptions>;
  /** How long a non-restarted failed container is a warning. Defaults to CONTAINER_FAILED_DEFAULTS. */
  containerFailed?: Partial<ContainerFailedOptions>;
  /** ProbeFailure windows and failure count. Defaults to PROBE_FAILURE_DEFAULTS. */
  probeFailure?: Partial<ProbeFailureOptions>;
  /** How long an eviction is a warning. Defaults to EVICTED_DEFAULTS. */
  evicted?: Partial<EvictedOptions>;
  /** Extra node conditions and stuck-terminating age. Defaults to NODE_CONDITIONS_DEFAULTS. */
  nodeConditions?: Partial<NodeConditionsOptions>;
  /** Window of node-problem-detector's events. Defaults to NPD_EVENTS_DEFAULTS. */
  npdEvents?: Partial<NpdEventsOptions>;
  /** Windows of the kubelet's other failure reasons (sandbox, volumes, hooks, GC, admission). Defaults to KUBELET_REASONS_DEFAULTS. */
  kubeletReasons?: Partial<KubeletReasonsOptions>;
  /** Severity of an unhealthy kubelet. Defaults to KUBELET_HEALTH_DEFAULTS. */
  kubeletHealth?: Partial<KubeletHealthOptions>;
  /** PID and memory thresholds on the kubelet's stats summary. Defaults to STATS_SUMMARY_DEFAULTS. */
  statsSummary?: Partial<StatsSummaryOptions>;
  /** The log-rule detector (rule files under daemon/rules plus site files). Defaults to the shipped rules. */
  logRules?: LogRuleDetectorOptions;
  /** New or bursting error templates (reads the view's template statistics). Defaults to LOG_ERROR_SPIKE_DEFAULTS. */
  logErrorSpike?: Partial<LogErrorSpikeOptions>;
  /** Options of the correlation pass that runs after the detectors. Defaults to CORRELATION_DEFAULTS. */
  correlation?: Partial<CorrelationOptions>;
  /** Detectors switched off by name (see DETECTOR_NAMES). Defaults to none. */
  disabled?: string[];
}

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

// Thresholds checked in order after merging with the defaults, so a warning above the default critical is caught too.
const ORDERED: readonly [keyof DetectorOptions, object, readonly (readonly [string, string])[]][] = [
  ['disk', DISK_DEFAULTS, DISK_ORDERED],
  ['hostMemory', HOST_MEMORY_DEFAULTS, HOST_MEMORY_ORDERED],
  ['statsSummary', STATS_SUMMARY_DEFAULTS, STATS_SUMMARY_ORDERED],
];

const detectorName = z.string({ error: 'a list of detector names' }).refine((n) => DETECTOR_NAMES.includes(n), { error: `a detector name (${DETECTOR_NAMES.join(', ')})` });

/**
 * The `detectors` section of the config: every detector's own schema, strict,
 * composed, plus `disabled` and the ordering of warning and critical thresholds.
 */
export const DETECTOR_OPTIONS_SCHEMA = z
  .object({
    disk: DISK_OPTIONS_SCHEMA.partial(),
    hostMemory: HOST_MEMORY_OPTIONS_SCHEMA.partial(),
    crashLoop: CRASHLOOP_OPTIONS_SCHEMA.partial(),
    oomKilled: OOM_KILLED_OPTIONS_SCHEMA.partial(),
    imagePull: IMAGE_PULL_OPTIONS_SCHEMA.partial(),
    containerConfig: CONTAINER_CONFIG_OPTIONS_SCHEMA.partial(),
    containerFailed: CONTAINER_FAILED_OPTIONS_SCHEMA.partial(),
    probeFailure: PROBE_FAILURE_OPTIONS_SCHEMA.partial(),
    evicted: EVICTED_OPTIONS_SCHEMA.partial(),
    nodeConditions: NODE_CONDITIONS_OPTIONS_SCHEMA.partial(),
    npdEvents: NPD_EVENTS_OPTIONS_SCHEMA.partial(),
    kubeletReasons: KUBELET_REASONS_OPTIONS_SCHEMA.partial(),
    kubeletHealth: KUBELET_HEALTH_OPTIONS_SCHEMA.partial(),
    statsSummary: STATS_SUMMARY_OPTIONS_SCHEMA.partial(),
    logRules: LOG_RULES_OPTIONS_SCHEMA.partial(),
    logErrorSpike: LOG_ERROR_SPIKE_OPTIONS_SCHEMA.partial(),
    correlation: CORRELATION_OPTIONS_SCHEMA.partial(),
    disabled: z.array(detectorName, { error: `a list of detector names (${DETECTOR_NAMES.join(', ')})` }),
  })
  .partial()
  .strict()
  .superRefine((opts, ctx) => {
    for (const [key, defaults, pairs] of ORDERED) {
      const merged = { ...defaults, ...(opts[key] as object | undefined) } as Record<string, number>;
      for (const [lo, hi] of pairs) {
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
