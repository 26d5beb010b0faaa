/**
 * The explicit list of detectors. No registration by import side effect: a
 * detector runs because it is named here.
 */
import type { Detector } from '../core/types.js';
import { type ContainerConfigOptions, createContainerConfigDetector } from './container-config.js';
import { type ContainerFailedOptions, createContainerFailedDetector } from './container-failed.js';
import type { CorrelationOptions } from './correlate.js';
import { type CrashLoopOptions, createCrashLoopDetector } from './crashloop.js';
import { createDiskDetector, type DiskOptions } from './disk.js';
import { createEvictedDetector, type EvictedOptions } from './evicted.js';
import { createHostMemoryDetector, type HostMemoryOptions } from './host-memory.js';
import { createImagePullDetector, type ImagePullOptions } from './image-pull.js';
import { createKubeletHealthDetector, type KubeletHealthOptions } from './kubelet-health.js';
import { createKubeletReasonsDetector, type KubeletReasonsOptions } from './kubelet-reasons.js';
import { createLogErrorSpikeDetector, type LogErrorSpikeOptions } from './log-error-spike.js';
import { createLogRuleDetector, type LogRuleDetectorOptions } from './log-rules.js';
import { createNodeConditionsDetector, type NodeConditionsOptions } from './node-conditions.js';
import { createNpdEventsDetector, type NpdEventsOptions } from './npd.js';
import { createOomKilledDetector, type OomKilledOptions } from './oom-killed.js';
import { createProbeFailureDetector, type ProbeFailureOptions } from './probe-failure.js';
import { createStatsSummaryDetector, type StatsSummaryOptions } from './stats-summary.js';

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
}

/**
 * Builds every detector with its options. Loads and compiles the log rule files
 * (I/O, once): call it at start-up, not per cycle. Throws RuleFileError on a bad
 * rule file.
 */
export function createDetectors(opts: DetectorOptions = {}): Detector[] {
  return [
    createDiskDetector(opts.disk),
    createHostMemoryDetector(opts.hostMemory),
    createNodeConditionsDetector(opts.nodeConditions),
    createKubeletHealthDetector(opts.kubeletHealth),
    createNpdEventsDetector(opts.npdEvents),
    createKubeletReasonsDetector(opts.kubeletReasons),
    createStatsSummaryDetector(opts.statsSummary),
    createCrashLoopDetector(opts.crashLoop),
    createOomKilledDetector(opts.oomKilled),
    createImagePullDetector(opts.imagePull),
    createContainerConfigDetector(opts.containerConfig),
    createContainerFailedDetector(opts.containerFailed),
    createProbeFailureDetector(opts.probeFailure),
    createEvictedDetector(opts.evicted),
    createLogRuleDetector(opts.logRules),
    createLogErrorSpikeDetector(opts.logErrorSpike),
  ];
}
