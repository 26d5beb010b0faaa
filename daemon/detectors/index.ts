/**
 * The explicit list of detectors. No registration by import side effect: a
 * detector runs because it is named here.
 */
import type { Detector } from '../core/types.js';
import { type ContainerConfigOptions, createContainerConfigDetector } from './container-config.js';
import type { CorrelationOptions } from './correlate.js';
import { type CrashLoopOptions, createCrashLoopDetector } from './crashloop.js';
import { createDiskDetector, type DiskOptions } from './disk.js';
import { createEvictedDetector, type EvictedOptions } from './evicted.js';
import { createHostMemoryDetector, type HostMemoryOptions } from './host-memory.js';
import { createImagePullDetector, type ImagePullOptions } from './image-pull.js';
import { createKubeletHealthDetector, type KubeletHealthOptions } from './kubelet-health.js';
import { createLogErrorSpikeDetector, type LogErrorSpikeOptions } from './log-error-spike.js';
import { createLogRuleDetector, type LogRuleDetectorOptions } from './log-rules.js';
import { createNodeConditionsDetector, type NodeConditionsOptions } from './node-conditions.js';
import { createOomKilledDetector, type OomKilledOptions } from './oom-killed.js';
import { createProbeFailureDetector, type ProbeFailureOptions } from './probe-failure.js';
import { createStatsSummaryDetector, type StatsSummaryOptions } from './stats-summary.js';

/** Options of every detector, as the `detectors` section of the config holds them. */
export interface DetectorOptions {
  disk?: Partial<DiskOptions>;
  hostMemory?: Partial<HostMemoryOptions>;
  crashLoop?: Partial<CrashLoopOptions>;
  oomKilled?: Partial<OomKilledOptions>;
  imagePull?: Partial<ImagePullOptions>;
  containerConfig?: Partial<ContainerConfigOptions>;
  probeFailure?: Partial<ProbeFailureOptions>;
  evicted?: Partial<EvictedOptions>;
  nodeConditions?: Partial<NodeConditionsOptions>;
  kubeletHealth?: Partial<KubeletHealthOptions>;
  statsSummary?: Partial<StatsSummaryOptions>;
  /** The log-rule detector (rule files under daemon/rules plus site files). */
  logRules?: LogRuleDetectorOptions;
  /** New or bursting error templates (reads the view's template statistics). */
  logErrorSpike?: Partial<LogErrorSpikeOptions>;
  /** Options of the correlation pass that runs after the detectors. */
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
    createStatsSummaryDetector(opts.statsSummary),
    createCrashLoopDetector(opts.crashLoop),
    createOomKilledDetector(opts.oomKilled),
    createImagePullDetector(opts.imagePull),
    createContainerConfigDetector(opts.containerConfig),
    createProbeFailureDetector(opts.probeFailure),
    createEvictedDetector(opts.evicted),
    createLogRuleDetector(opts.logRules),
    createLogErrorSpikeDetector(opts.logErrorSpike),
  ];
}
