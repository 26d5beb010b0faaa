/**
 * The nodesage internal contract: every type that crosses a module boundary.
 *
 * Data flows collectors → detectors → tracker → store → diagnoser → api.
 * This file depends only on contract.ts (the public JSON shapes, as zod
 * schemas, whose types are re-exported here so callers import from one place;
 * only types, so importing this file never loads zod) and vocabulary.ts;
 * everything depends on it. Field names follow the Kubernetes vocabulary and
 * DESIGN.md.
 */
import type { Category, Diagnosis, DiagnosisInput, Evidence, FindingFacts, Severity, SourceName, SourceStatus, Subject, Timestamp } from './contract.js';
import type { KubeEvent, KubeNode, KubePod, StatsSummary } from './kube.js';

export { CATEGORIES, SEVERITIES } from './vocabulary.js';
export type {
  Category,
  Diagnosis,
  DiagnosisInput,
  Evidence,
  EvidenceSource,
  Finding,
  FindingFacts,
  ModelStatus,
  Severity,
  SourceName,
  SourceStatus,
  Status,
  Subject,
  Timestamp,
} from './contract.js';

/** Numeric rank of a severity, for sorting and queue priority (higher = worse). */
export function severityRank(s: Severity): number {
  return s === 'critical' ? 2 : s === 'warning' ? 1 : 0;
}

/**
 * What a detector returns: a finding observed now, before the tracker gives it
 * an id, a count and a lifecycle.
 */
export interface FindingDraft {
  category: Category;
  severity: Severity;
  subject: Subject;
  title: string;
  message: string;
  evidence: Evidence[];
  /** Extra fingerprint discriminator (e.g. a mount point, a rule id). */
  detail?: string;
  /** Time of the latest evidence (or of the snapshot for state checks). */
  at: Timestamp;
  /** Time of the earliest evidence, when older than `at`. */
  firstAt?: Timestamp;
  /** Occurrences seen in this observation (matched lines, restarts). Defaults to 1. */
  occurrences?: number;
  /**
   * `condition`: true while the detector keeps seeing it; resolved on the first
   * detection cycle with fresh input that no longer produces it.
   * `event`: something that happened; resolved after the category's quiet period.
   */
  lifecycle: 'condition' | 'event';
  /** Name of the detector that produced it. */
  detector: string;
  /**
   * Draft fingerprints (see `fingerprint()`) of findings that caused this one,
   * filled in by the correlation pass.
   */
  causes?: string[];
  /** Structured facts kept for correlation and the diagnosis prompt (not shown as evidence). */
  facts?: FindingFacts;
}

/** A log line from any log source, after parsing and before redaction. */
export interface LogLine {
  source: 'podLog' | 'journald' | 'kmsg';
  at: Timestamp;
  text: string;
  /** journald: the systemd unit (`kubelet.service`), or syslog identifier when no unit. */
  unit?: string;
  /** journald/kmsg syslog priority 0 (emerg) .. 7 (debug). */
  priority?: number;
  /** podLog: which container wrote it. */
  container?: ContainerRef;
  /** podLog: stdout or stderr. */
  stream?: 'stdout' | 'stderr';
  /** True when the line was cut at the configured maximum length. */
  truncated?: boolean;
}

/** Identifies one container of one pod on this node. */
export interface ContainerRef {
  namespace: string;
  pod: string;
  uid: string;
  container: string;
  /** Restart number from the log file name (`<n>.log`). */
  restart?: number;
}

/** One filesystem as the host collector sees it. */
export interface HostFilesystem {
  mount: string;
  device: string;
  fsType: string;
  sizeBytes: number;
  usedBytes: number;
  availBytes: number;
  inodesTotal?: number;
  inodesUsed?: number;
  readOnly?: boolean;
}

/** Linux pressure-stall averages (percent of wall time). */
export interface PsiAverages {
  avg10: number;
  avg60: number;
  avg300: number;
}

/** A /proc/pressure/<resource> reading. */
export interface PsiReading {
  some: PsiAverages;
  full?: PsiAverages;
}

/** One snapshot of host metrics. */
export interface HostSnapshot {
  at: Timestamp;
  filesystems: HostFilesystem[];
  memory?: {
    totalBytes: number;
    availableBytes: number;
    swapTotalBytes: number;
    swapUsedBytes: number;
  };
  load?: { avg1: number; avg5: number; avg15: number; cpus: number; currentLoadPct?: number };
  psi?: { cpu?: PsiReading; memory?: PsiReading; io?: PsiReading };
  temperatures?: { label: string; celsius: number }[];
  /** Physical network interfaces (virtual ones — veth, bridges, tunnels — are left out). */
  network?: { iface: string; operstate: string; speedMbps: number | null; mtu?: number }[];
  /** GPUs when nvidia-smi exists (systeminformation's graphics controllers). */
  gpus?: { model: string; vendor: string; memoryTotalMiB?: number; memoryUsedMiB?: number; utilizationPct?: number; temperatureC?: number }[];
}

/** Summary of a mined log template, as the LogErrorSpike detector reads it. */
export interface TemplateStat {
  /** `podLog:<ns>/<pod>/<container>` or `journald:<unit>`. */
  stream: string;
  templateId: string;
  template: string;
  /** Looks like an error line (level word or priority ≤ 3). */
  isError: boolean;
  firstSeen: Timestamp;
  /** Count in the current bucket. */
  recentCount: number;
  /** Mean count per bucket over the baseline window (0 when the template is new). */
  baselinePerBucket: number;
  /** Last example line (redacted). */
  example: string;
  /** Time of the template's latest line. */
  lastSeen?: Timestamp;
  /** Time of the stream's first line (its warm-up starts there). */
  streamFirstSeen?: Timestamp;
  /** Bucket width in milliseconds (recentCount is per bucket). */
  bucketMs?: number;
}

/**
 * Everything collectors emit. Kubernetes objects are carried in their JSON wire
 * form (as `kubectl get -o json` prints them: times are RFC3339 strings).
 */
export type Signal =
  | { type: 'log'; line: LogLine }
  | { type: 'host'; snapshot: HostSnapshot }
  | { type: 'node'; at: Timestamp; node: KubeNode }
  | { type: 'pods'; at: Timestamp; pods: KubePod[] }
  | { type: 'event'; at: Timestamp; event: KubeEvent }
  | { type: 'statsSummary'; at: Timestamp; summary: StatsSummary }
  | { type: 'kubeletHealth'; at: Timestamp; ok: boolean; body: string }
  | { type: 'gap'; at: Timestamp; source: SourceName; detail: string }
  /**
   * A read position (file offset, journal cursor, kmsg seq). The daemon stores it
   * in the same SQLite transaction as everything derived from the signals that
   * came before it in the same batch, so a crash re-reads instead of losing
   * or doubling. `value: null` forgets the key.
   */
  | { type: 'checkpoint'; source: SourceName; key: string; value: string | null };

/**
 * What detectors see: the latest state of the node plus the log lines that
 * arrived since the previous detection cycle. Built by the tracker's node state
 * from signals, or all at once from a bundle.
 */
export interface NodeView {
  nodeName: string;
  /** "Now" for the detection: wall clock live, `capturedAt` for a bundle. */
  now: Timestamp;
  bootTime?: Timestamp;
  node?: KubeNode;
  pods?: KubePod[];
  /** Recent events about this node and its pods (bounded). */
  events: KubeEvent[];
  statsSummary?: StatsSummary;
  kubeletHealth?: { at: Timestamp; ok: boolean; body: string };
  host?: HostSnapshot;
  /** New log lines since the last cycle, oldest first. */
  logs: LogLine[];
  /**
   * Kernel lines already seen in earlier cycles, from the last seconds before
   * this one, oldest first: context for a kernel report split across cycles
   * (an OOM report whose kill line arrives a cycle after its cgroup lines).
   * Never reported on their own. Empty for a bundle.
   */
  kernelContext?: LogLine[];
  /** The last lines of each container's log, key `<ns>/<pod>/<container>`, oldest first. */
  containerLogTail: Map<string, LogLine[]>;
  /** Template statistics from the log miner (empty when the miner is off). */
  templates: TemplateStat[];
}

/** A pure function from a node view to the problems it shows. */
export interface Detector {
  /** Stable name, shown in logs and stored with each finding. */
  readonly name: string;
  /** Same view in, same drafts out. Never does I/O. */
  detect(view: NodeView): FindingDraft[];
}

/** Receives signals from a collector. */
export type SignalSink = (signals: Signal[]) => void;

/** A source of signals. Owns its I/O, restarts itself, reports its health. */
export interface Collector {
  readonly name: SourceName;
  /** Starts collecting; resolves once the first attempt finished (ok or not). */
  start(sink: SignalSink): Promise<void>;
  /** Stops all timers, watches and child processes. */
  stop(): Promise<void>;
  status(): SourceStatus;
  /**
   * Runs the source's periodic reads that are due within `withinMs` now, and
   * resolves when they are done: the daemon calls it just before each
   * detection cycle, so an idle node wakes once per cycle instead of once per
   * source, and the cycle sees what the reads found. Sources without periodic
   * reads leave it out.
   */
  catchUp?(withinMs: number): Promise<void>;
}

/** Produces a diagnosis for a finding. */
export interface Diagnoser {
  /** `llm:<model id>` or `rule-hint`. */
  readonly id: string;
  diagnose(input: DiagnosisInput, signal?: AbortSignal): Promise<Diagnosis>;
}
