/**
 * Kubernetes objects in their JSON wire form (times are RFC3339 strings), as
 * bundles hold them and as collectors normalise what @kubernetes/client-node
 * returns. Only the fields nodesage reads are typed; everything else is kept.
 */

/** Object metadata. */
export interface KubeMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; uid?: string; controller?: boolean }[];
  [k: string]: unknown;
}

/** A v1 Node condition. */
export interface KubeNodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown' | string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

/** v1 Node. */
export interface KubeNode {
  apiVersion?: string;
  kind?: string;
  metadata: KubeMeta;
  spec?: { taints?: { key: string; effect: string; value?: string; timeAdded?: string }[]; unschedulable?: boolean; [k: string]: unknown };
  status?: {
    conditions?: KubeNodeCondition[];
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    nodeInfo?: Record<string, string>;
    addresses?: { type: string; address: string }[];
    [k: string]: unknown;
  };
}

/** State of a container (exactly one of the keys is set). */
export interface KubeContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: {
    exitCode: number;
    signal?: number;
    reason?: string;
    message?: string;
    startedAt?: string;
    finishedAt?: string;
    containerID?: string;
  };
}

/** v1 ContainerStatus. */
export interface KubeContainerStatus {
  name: string;
  image?: string;
  imageID?: string;
  containerID?: string;
  ready?: boolean;
  started?: boolean;
  restartCount: number;
  state?: KubeContainerState;
  lastState?: KubeContainerState;
}

/** v1 Pod. */
export interface KubePod {
  apiVersion?: string;
  kind?: string;
  metadata: KubeMeta;
  spec?: {
    nodeName?: string;
    containers?: { name: string; image?: string; resources?: { limits?: Record<string, string>; requests?: Record<string, string> }; [k: string]: unknown }[];
    initContainers?: { name: string; image?: string; [k: string]: unknown }[];
    restartPolicy?: string;
    [k: string]: unknown;
  };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    qosClass?: string;
    startTime?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[];
    containerStatuses?: KubeContainerStatus[];
    initContainerStatuses?: KubeContainerStatus[];
    [k: string]: unknown;
  };
}

/** core/v1 Event, with the events.k8s.io/v1 field names accepted too. */
export interface KubeEvent {
  apiVersion?: string;
  kind?: string;
  metadata: KubeMeta;
  involvedObject?: { kind?: string; name?: string; namespace?: string; uid?: string; fieldPath?: string };
  /** events.k8s.io/v1 name of involvedObject. */
  regarding?: { kind?: string; name?: string; namespace?: string; uid?: string; fieldPath?: string };
  reason?: string;
  message?: string;
  /** events.k8s.io/v1 name of message. */
  note?: string;
  type?: string;
  count?: number;
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  series?: { count?: number; lastObservedTime?: string };
  deprecatedCount?: number;
  deprecatedFirstTimestamp?: string | null;
  deprecatedLastTimestamp?: string | null;
  source?: { component?: string; host?: string };
  reportingController?: string;
}

/** Filesystem stats in the kubelet summary API. */
export interface StatsFs {
  time?: string;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

/** kubelet GET /stats/summary (fields nodesage reads). */
export interface StatsSummary {
  node: {
    nodeName: string;
    startTime?: string;
    cpu?: { time?: string; usageNanoCores?: number; usageCoreNanoSeconds?: number };
    memory?: { time?: string; availableBytes?: number; usageBytes?: number; workingSetBytes?: number; rssBytes?: number };
    fs?: StatsFs;
    runtime?: { imageFs?: StatsFs; containerFs?: StatsFs };
    rlimit?: { maxpid?: number; curproc?: number };
    [k: string]: unknown;
  };
  pods?: {
    podRef: { name: string; namespace: string; uid: string };
    containers?: { name: string; memory?: { workingSetBytes?: number }; rootfs?: StatsFs; logs?: StatsFs; [k: string]: unknown }[];
    'ephemeral-storage'?: StatsFs;
    volume?: (StatsFs & { name: string })[];
    [k: string]: unknown;
  }[];
}

/** Event helpers that accept both core/v1 and events.k8s.io/v1 shapes. */
export function eventObject(e: KubeEvent): { kind?: string; name?: string; namespace?: string; fieldPath?: string } {
  return e.involvedObject ?? e.regarding ?? {};
}

/** The human text of an event. */
export function eventMessage(e: KubeEvent): string {
  return e.message ?? e.note ?? '';
}

/** The newest time the event was seen. */
export function eventLastTime(e: KubeEvent): string | undefined {
  return (
    e.series?.lastObservedTime ??
    e.lastTimestamp ??
    e.deprecatedLastTimestamp ??
    e.eventTime ??
    e.firstTimestamp ??
    e.metadata.creationTimestamp ??
    undefined
  );
}

/** The oldest time the event was seen. */
export function eventFirstTime(e: KubeEvent): string | undefined {
  return e.firstTimestamp ?? e.deprecatedFirstTimestamp ?? e.eventTime ?? eventLastTime(e);
}

/** How many times the event was seen. */
export function eventCount(e: KubeEvent): number {
  return e.series?.count ?? e.count ?? e.deprecatedCount ?? 1;
}
