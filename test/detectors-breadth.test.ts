/**
 * Detection breadth: every reason the kubelet sets (waiting and terminated
 * reasons, pod status reasons, pod and node event reasons, node conditions),
 * k8sgpt's pod and node analyzer reasons, and node-problem-detector's
 * conditions and events, each as a real-shaped object run through every
 * detector, the merge and the correlation — the same path as the daemon and
 * `nodesage analyze`. daemon/detectors/COVERAGE.md names these tests.
 */
import { describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { KubeContainerStatus, KubeEvent, KubeNode, KubeNodeCondition, KubePod } from '../daemon/core/kube.js';
import type { Category, FindingDraft, LogLine, NodeView, Severity } from '../daemon/core/types.js';
import { exitSignal } from '../daemon/detectors/exit-codes.js';
import { createDetectors } from '../daemon/detectors/index.js';
import { KUBELET_REASONS } from '../daemon/detectors/kubelet-reasons.js';
import { NPD_MAPPING, NPD_UNMAPPED, npdObject } from '../daemon/detectors/npd.js';
import { runDetectors } from '../daemon/detectors/run.js';

import { ago, FIXTURES, view } from './helpers/detector-view.js';

const NODE_NAME = 'edge-test';

function run(parts: Partial<NodeView>): FindingDraft[] {
  // Fresh detectors: the log-rule engine keeps conditions across cycles.
  const r = runDetectors(view(parts), createDetectors());
  expect(r.failures).toEqual([]);
  return r.drafts;
}

function container(name: string, state: KubeContainerStatus['state'], extra: Partial<KubeContainerStatus> = {}): KubeContainerStatus {
  return { name, image: `registry.local/${name}:1.0`, ready: false, restartCount: 0, state, ...extra };
}

function pod(name: string, statuses: KubeContainerStatus[], extra: { phase?: string; reason?: string; message?: string; restartPolicy?: string; owner?: string } = {}): KubePod {
  const p: KubePod = {
    metadata: { name, namespace: 'demo', uid: `uid-${name}`, creationTimestamp: ago(40) },
    spec: { nodeName: NODE_NAME, restartPolicy: extra.restartPolicy ?? 'Always', containers: statuses.map((s) => ({ name: s.name, image: s.image })) },
    status: { phase: extra.phase ?? 'Pending', startTime: ago(40), containerStatuses: statuses },
  };
  if (extra.reason) p.status!.reason = extra.reason;
  if (extra.message) p.status!.message = extra.message;
  if (extra.owner) p.metadata.ownerReferences = [{ kind: 'Job', name: extra.owner, controller: true }];
  return p;
}

function event(kind: 'Pod' | 'Node', name: string, reason: string, message: string, extra: Partial<KubeEvent> & { container?: string; minutesAgo?: number } = {}): KubeEvent {
  const { container: c, minutesAgo, ...rest } = extra;
  const at = ago(minutesAgo ?? 2);
  return {
    metadata: { name: `${name}.${reason}`, namespace: kind === 'Pod' ? 'demo' : 'default', uid: `${name}-${reason}` },
    involvedObject: { kind, name, ...(kind === 'Pod' ? { namespace: 'demo' } : {}), ...(c ? { fieldPath: `spec.containers{${c}}` } : {}) },
    reason,
    message,
    type: 'Warning',
    count: 4,
    firstTimestamp: ago((minutesAgo ?? 2) + 10),
    lastTimestamp: at,
    source: { component: 'kubelet', host: NODE_NAME },
    ...rest,
  };
}

function node(conditions: KubeNodeCondition[]): KubeNode {
  const base: KubeNodeCondition[] = ['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: 'False', reason: `KubeletHasNo${type}` }));
  const types = new Set(conditions.map((c) => c.type));
  return {
    metadata: { name: NODE_NAME },
    status: {
      conditions: [
        ...base.filter((c) => !types.has(c.type)),
        ...(types.has('Ready') ? [] : [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: ago(0.2) }]),
        ...conditions.map((c) => ({ lastHeartbeatTime: ago(0.2), lastTransitionTime: ago(30), ...c })),
      ],
    },
  };
}

function waiting(reason: string, message: string, events: KubeEvent[] = []): Partial<NodeView> {
  return { pods: [pod('web-1', [container('app', { waiting: { reason, message } })])], events };
}

function terminated(reason: string, exitCode: number, extra: { phase?: string; podReason?: string; restartPolicy?: string } = {}): Partial<NodeView> {
  const st = container('job', { terminated: { exitCode, reason, startedAt: ago(20), finishedAt: ago(5) } });
  return { pods: [pod('export-1', [st], { phase: extra.phase ?? 'Failed', restartPolicy: extra.restartPolicy ?? 'Never', owner: 'export', ...(extra.podReason ? { reason: extra.podReason } : {}) })] };
}

interface Case {
  reason: string;
  /** What nodesage reports; null: nothing at warning or worse. */
  category: Category | null;
  parts: () => Partial<NodeView>;
  severity?: Severity;
  subject?: 'Node' | 'Pod' | 'Container';
}

const SANDBOX_GENERIC = 'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "4c1f0e9d": plugin type="calico" failed (add): error getting ClusterInformation: connection is unauthorized: Unauthorized';

/** Waiting reasons: pkg/kubelet/images/types.go, pkg/kubelet/container/sync_result.go, pkg/kubelet/kuberuntime. */
const WAITING: Case[] = [
  { reason: 'ContainerCreating', category: null, parts: () => waiting('ContainerCreating', '') },
  { reason: 'ContainerCreating + FailedMount', category: 'ContainerConfig', subject: 'Pod', parts: () => waiting('ContainerCreating', '', [event('Pod', 'web-1', 'FailedMount', 'MountVolume.SetUp failed for volume "data" : mount failed: exit status 32 ... mount.nfs: Connection timed out')]) },
  { reason: 'PodInitializing', category: null, parts: () => waiting('PodInitializing', '') },
  { reason: 'CrashLoopBackOff', category: 'CrashLoop', parts: () => waiting('CrashLoopBackOff', 'back-off 5m0s restarting failed container=app pod=web-1_demo(uid-web-1)') },
  ...['ErrImagePull', 'ImagePullBackOff', 'ImageInspectError', 'ErrImageNeverPull', 'InvalidImageName', 'RegistryUnavailable', 'SignatureValidationFailed'].map(
    (reason): Case => ({ reason, category: 'ImagePull', parts: () => waiting(reason, `${reason}: image "registry.local/app:1.0"`) }),
  ),
  ...['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'PreCreateHookError', 'PreStartHookError', 'PostStartHookError', 'VerifyNonRootError'].map(
    (reason): Case => ({ reason, category: 'ContainerConfig', parts: () => waiting(reason, `${reason}: Exec lifecycle hook ([/bin/sh -c /init.sh]) for Container "app" in Pod "web-1_demo(uid-web-1)" failed - error: command '/bin/sh -c /init.sh' exited with 1`) }),
  ),
  ...['CreatePodSandboxError', 'ConfigPodSandboxError', 'KillPodSandboxError', 'KillContainerError'].map(
    (reason): Case => ({ reason, category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => waiting(reason, SANDBOX_GENERIC) }),
  ),
];

/** Terminated reasons (containerd / CRI-O, and the kubelet's own) and pod status reasons. */
const TERMINATED: Case[] = [
  { reason: 'Completed', category: null, parts: () => terminated('Completed', 0, { phase: 'Succeeded' }) },
  { reason: 'Error', category: 'ContainerFailed', parts: () => terminated('Error', 1) },
  { reason: 'OOMKilled', category: 'OOMKilled', parts: () => terminated('OOMKilled', 137) },
  { reason: 'ContainerCannotRun', category: 'ContainerFailed', parts: () => terminated('ContainerCannotRun', 128) },
  { reason: 'StartError', category: 'ContainerFailed', parts: () => terminated('StartError', 128) },
  { reason: 'DeadlineExceeded', category: 'ContainerFailed', parts: () => terminated('Error', 143, { podReason: 'DeadlineExceeded' }) },
  { reason: 'ContainerStatusUnknown', category: 'ContainerFailed', severity: 'info', parts: () => terminated('ContainerStatusUnknown', 137) },
  { reason: 'Unknown', category: 'ContainerFailed', severity: 'info', parts: () => terminated('Unknown', 255) },
  { reason: 'Error (restartPolicy Always, restarting)', category: null, parts: () => terminated('Error', 1, { phase: 'Running', restartPolicy: 'Always' }) },
  {
    reason: 'Evicted',
    category: 'Evicted',
    subject: 'Pod',
    parts: () => ({ pods: [pod('cache-1', [], { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory. Threshold quantity: 100Mi, available: 92Mi.' })] }),
  },
  ...['OutOfcpu', 'OutOfmemory', 'OutOfpods', 'OutOfephemeral-storage', 'OutOfnvidia.com/gpu', 'NodeAffinity', 'NodeSelectorMismatching', 'UnexpectedAdmissionError'].map(
    (reason): Case => ({
      reason,
      category: 'Evicted',
      subject: 'Pod',
      parts: () => ({ pods: [pod('batch-1', [], { phase: 'Failed', reason, message: `Pod was rejected: Node didn't have enough resource: ${reason.slice(5)}, requested: 2, used: 7, capacity: 8` })] }),
    }),
  ),
];

/** Pod event reasons: pkg/kubelet/events/event.go (and the probe and eviction managers). */
const POD_EVENTS: Case[] = [
  { reason: 'Failed (pull)', category: 'ImagePull', parts: () => ({ events: [event('Pod', 'web-1', 'Failed', 'Failed to pull image "registry.local/app:1.0": rpc error: code = NotFound desc = failed to pull and unpack image: not found', { container: 'app' })] }) },
  { reason: 'BackOff (restart)', category: 'CrashLoop', parts: () => ({ events: [event('Pod', 'web-1', 'BackOff', 'Back-off restarting failed container app in pod web-1_demo(uid-web-1)', { container: 'app' })] }) },
  { reason: 'BackOff (pull)', category: 'ImagePull', parts: () => ({ events: [event('Pod', 'web-1', 'BackOff', 'Back-off pulling image "registry.local/app:1.0"', { container: 'app' })] }) },
  { reason: 'InspectFailed', category: 'ImagePull', parts: () => waiting('ImageInspectError', 'Failed to inspect image "registry.local/app:1.0": rpc error', [event('Pod', 'web-1', 'InspectFailed', 'Failed to inspect image "registry.local/app:1.0": rpc error: code = Unknown', { container: 'app' })]) },
  { reason: 'ErrImageNeverPull', category: 'ImagePull', parts: () => waiting('ErrImageNeverPull', 'Container image "registry.local/app:1.0" is not present with pull policy of Never', [event('Pod', 'web-1', 'ErrImageNeverPull', 'Container image "registry.local/app:1.0" is not present with pull policy of Never', { container: 'app' })]) },
  { reason: 'Unhealthy', category: 'ProbeFailure', parts: () => ({ events: [event('Pod', 'web-1', 'Unhealthy', 'Liveness probe failed: Get "http://10.42.0.9:8080/healthz": dial tcp 10.42.0.9:8080: connect: connection refused', { container: 'app' })] }) },
  { reason: 'Killing (liveness)', category: 'ProbeFailure', parts: () => ({ events: [event('Pod', 'web-1', 'Killing', 'Container app failed liveness probe, will be restarted', { container: 'app' })] }) },
  { reason: 'Evicted', category: 'Evicted', subject: 'Pod', parts: () => ({ events: [event('Pod', 'gone-1', 'Evicted', 'The node was low on resource: ephemeral-storage. Threshold quantity: 5Gi, available: 1Gi.')] }) },
  { reason: 'FailedCreatePodSandBox', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedCreatePodSandBox', SANDBOX_GENERIC)] }) },
  { reason: 'FailedCreatePodSandBox (generic)', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedCreatePodSandBox', 'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create containerd task: context deadline exceeded')] }) },
  { reason: 'FailedStatusPodSandBox', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedStatusPodSandBox', 'Unable to get pod sandbox status: rpc error: code = DeadlineExceeded')] }) },
  { reason: 'FailedKillPod', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedKillPod', 'error killing pod: failed to "KillPodSandbox" for "uid-web-1" with KillPodSandboxError: "rpc error: code = DeadlineExceeded"')] }) },
  { reason: 'FailedCreatePodContainer', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedCreatePodContainer', 'unable to ensure pod container exists: failed to create container for [kubepods burstable poduid-web-1] : mkdir /sys/fs/cgroup/memory/kubepods: cannot allocate memory')] }) },
  { reason: 'NetworkNotReady', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'NetworkNotReady', 'network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized')] }) },
  { reason: 'ExceededGracePeriod', category: 'RuntimeUnhealthy', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'ExceededGracePeriod', 'Container runtime did not kill the pod within specified grace period.')] }) },
  { reason: 'FailedMount (PVC)', category: 'ContainerConfig', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedMount', 'Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data kube-api-access-x]: timed out waiting for the condition')] }) },
  { reason: 'FailedAttachVolume', category: 'ContainerConfig', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedAttachVolume', 'Multi-Attach error for volume "pvc-1" Volume is already exclusively attached to one node and can\'t be attached to another')] }) },
  { reason: 'FailedMapVolume', category: 'ContainerConfig', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedMapVolume', 'MapVolume.SetUpDevice failed for volume "pvc-2" : kubernetes.io/csi: blockMapper.SetUpDevice failed')] }) },
  { reason: 'FailedValidation', category: 'ContainerConfig', subject: 'Pod', parts: () => ({ events: [event('Pod', 'web-1', 'FailedValidation', 'Error validating pod web-1.demo from file, ignoring: metadata.name: Invalid value')] }) },
  { reason: 'FailedPostStartHook', category: 'ContainerConfig', subject: 'Container', parts: () => ({ events: [event('Pod', 'web-1', 'FailedPostStartHook', 'PostStartHook failed', { container: 'app' })] }) },
  { reason: 'FailedPreStopHook', category: 'ContainerConfig', severity: 'info', subject: 'Container', parts: () => ({ events: [event('Pod', 'web-1', 'FailedPreStopHook', 'PreStopHook failed', { container: 'app' })] }) },
  ...['Scheduled', 'Pulling', 'Pulled', 'Created', 'Started', 'SandboxChanged', 'Preempting'].map(
    (reason): Case => ({ reason, category: null, parts: () => ({ events: [event('Pod', 'web-1', reason, `${reason} normally`, { type: 'Normal', container: 'app' })] }) }),
  ),
  { reason: 'ProbeWarning', category: null, parts: () => ({ events: [event('Pod', 'web-1', 'ProbeWarning', 'Readiness probe warning: Probe terminated redirects', { type: 'Warning', container: 'app' })] }) },
  { reason: 'FailedSync', category: null, parts: () => ({ events: [event('Pod', 'web-1', 'FailedSync', 'error determining status: rpc error: code = Unknown')] }) },
];

/** Node event reasons (pkg/kubelet/events/event.go, the OOM watcher, the eviction manager) and node conditions. */
const NODE_EVENTS: Case[] = [
  { reason: 'NodeNotReady', category: 'NodeNotReady', parts: () => ({ node: node([{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'Kubelet stopped posting node status.' }]), events: [event('Node', NODE_NAME, 'NodeNotReady', `Node ${NODE_NAME} status is now: NodeNotReady`, { type: 'Normal' })] }) },
  { reason: 'SystemOOM', category: 'KernelOOM', parts: () => ({ events: [event('Node', NODE_NAME, 'SystemOOM', 'System OOM encountered, victim process: java, pid: 21712')] }) },
  { reason: 'KubeletSetupFailed', category: 'KubeletUnhealthy', parts: () => ({ events: [event('Node', NODE_NAME, 'KubeletSetupFailed', 'Failed to start ContainerManager: invalid Node Allocatable configuration')] }) },
  { reason: 'FailedNodeAllocatableEnforcement', category: 'KubeletUnhealthy', parts: () => ({ events: [event('Node', NODE_NAME, 'FailedNodeAllocatableEnforcement', 'Failed to update Node Allocatable Limits ["kubepods"]: failed to set supported cgroup subsystems')] }) },
  { reason: 'ContainerGCFailed', category: 'RuntimeUnhealthy', parts: () => ({ events: [event('Node', NODE_NAME, 'ContainerGCFailed', 'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial unix /run/containerd/containerd.sock: connect: connection refused"')] }) },
  { reason: 'InvalidDiskCapacity', category: 'RuntimeUnhealthy', parts: () => ({ events: [event('Node', NODE_NAME, 'InvalidDiskCapacity', 'invalid capacity 0 on image filesystem')] }) },
  { reason: 'ImageGCFailed', category: 'NodeDiskPressure', parts: () => ({ events: [event('Node', NODE_NAME, 'ImageGCFailed', 'failed to garbage collect required amount of images. Wanted to free 4294967296 bytes, but freed 0 bytes')] }) },
  { reason: 'FreeDiskSpaceFailed', category: 'NodeDiskPressure', parts: () => ({ events: [event('Node', NODE_NAME, 'FreeDiskSpaceFailed', 'Failed to garbage collect required amount of images. Attempted to free 4294967296 bytes, but only found 0 bytes eligible to free.')] }) },
  { reason: 'EvictionThresholdMet (alone)', category: null, parts: () => ({ events: [event('Node', NODE_NAME, 'EvictionThresholdMet', 'Attempting to reclaim memory')] }) },
  ...['Starting', 'NodeReady', 'NodeSchedulable', 'NodeNotSchedulable', 'Rebooted', 'NodeAllocatableEnforced', 'RegisteredNode', 'NodeHasSufficientMemory', 'CgroupV1'].map(
    (reason): Case => ({ reason, category: null, parts: () => ({ events: [event('Node', NODE_NAME, reason, `${reason} on ${NODE_NAME}`, { type: 'Normal' })] }) }),
  ),
  { reason: 'Ready=False', category: 'NodeNotReady', parts: () => ({ node: node([{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized' }]) }) },
  { reason: 'Ready=Unknown', category: 'NodeNotReady', parts: () => ({ node: node([{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' }]) }) },
  { reason: 'MemoryPressure', category: 'NodeMemoryPressure', parts: () => ({ node: node([{ type: 'MemoryPressure', status: 'True', reason: 'KubeletHasInsufficientMemory', message: 'kubelet has insufficient memory available' }]) }) },
  { reason: 'DiskPressure', category: 'NodeDiskPressure', parts: () => ({ node: node([{ type: 'DiskPressure', status: 'True', reason: 'KubeletHasDiskPressure', message: 'kubelet has disk pressure' }]) }) },
  { reason: 'PIDPressure', category: 'NodePIDPressure', parts: () => ({ node: node([{ type: 'PIDPressure', status: 'True', reason: 'KubeletHasInsufficientPID', message: 'kubelet has insufficient PID available' }]) }) },
  { reason: 'NetworkUnavailable', category: 'NodeNotReady', severity: 'critical', parts: () => ({ node: node([{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated', message: 'Node created without a route' }]) }) },
  { reason: 'NetworkUnavailable=False (CalicoIsUp)', category: null, parts: () => ({ node: node([{ type: 'NetworkUnavailable', status: 'False', reason: 'CalicoIsUp', message: 'Calico is running on this node' }]) }) },
];

function check(c: Case): void {
  const drafts = run(c.parts());
  const serious = drafts.filter((d) => d.severity !== 'info');
  if (c.category === null) {
    expect(serious.map((d) => `${d.category}: ${d.title}`), c.reason).toEqual([]);
    return;
  }
  const hits = drafts.filter((d) => d.category === c.category);
  expect(hits.map((d) => d.category), `${c.reason} → ${drafts.map((d) => d.category).join(', ')}`).toEqual([c.category]);
  // One problem, one finding: nothing else reported about it at warning or worse.
  expect(serious.filter((d) => d.category !== c.category).map((d) => d.category), c.reason).toEqual([]);
  if (c.severity) expect(hits[0]!.severity, c.reason).toBe(c.severity);
  else expect(hits[0]!.severity, c.reason).not.toBe('info');
  if (c.subject) expect(hits[0]!.subject.kind, c.reason).toBe(c.subject);
  expect(hits[0]!.evidence.length, c.reason).toBeGreaterThan(0);
}

describe('every reason the kubelet sets', () => {
  it.each(WAITING.map((c) => [c.reason, c] as const))('waiting reason %s', (_r, c) => check(c));
  it.each(TERMINATED.map((c) => [c.reason, c] as const))('terminated / pod reason %s', (_r, c) => check(c));
  it.each(POD_EVENTS.map((c) => [c.reason, c] as const))('pod event %s', (_r, c) => check(c));
  it.each(NODE_EVENTS.map((c) => [c.reason, c] as const))('node event or condition %s', (_r, c) => check(c));

  it('has a case for every reason of the kubelet reasons table', () => {
    const covered = new Set([...WAITING, ...TERMINATED, ...POD_EVENTS, ...NODE_EVENTS].map((c) => c.reason.split(' ')[0]));
    for (const k of KUBELET_REASONS) expect(covered.has(k.reason) || k.reason.startsWith('OutOf'), k.reason).toBe(true);
  });
});

describe("k8sgpt's pod and node analyzers", () => {
  // pkg/analyzer/pod.go: isErrorReason, isEvtErrorReason, readiness, last termination; pkg/analyzer/node.go: conditions.
  const k8sgptPod = ['CrashLoopBackOff', 'ImagePullBackOff', 'CreateContainerConfigError', 'PreCreateHookError', 'CreateContainerError', 'PreStartHookError', 'RunContainerError', 'ImageInspectError', 'ErrImagePull', 'ErrImageNeverPull', 'InvalidImageName'];
  it.each(k8sgptPod)('waiting reason %s is reported', (reason) => {
    const c = WAITING.find((w) => w.reason === reason)!;
    expect(c).toBeDefined();
    check(c);
  });

  it('reports a running pod that is not ready because its readiness probe fails (Unhealthy)', () => {
    const p = pod('api-1', [container('api', { running: { startedAt: ago(30) } })], { phase: 'Running' });
    const drafts = run({ pods: [p], events: [event('Pod', 'api-1', 'Unhealthy', 'Readiness probe failed: HTTP probe failed with statuscode: 503', { container: 'api' })] });
    expect(drafts.map((d) => [d.category, d.facts?.probe])).toEqual([['ProbeFailure', 'readiness']]);
  });

  it('reports the last termination of a restarting container (CrashLoop) and of one that is not restarted (ContainerFailed)', () => {
    const looping = pod('api-2', [container('api', { waiting: { reason: 'CrashLoopBackOff' } }, { restartCount: 6, lastState: { terminated: { exitCode: 2, reason: 'Error', finishedAt: ago(1) } } })], { phase: 'Running' });
    expect(run({ pods: [looping] }).map((d) => [d.category, d.facts?.exitCode])).toEqual([['CrashLoop', 2]]);
    expect(run(terminated('Error', 3)).map((d) => [d.category, d.facts?.exitCode])).toEqual([['ContainerFailed', 3]]);
  });

  it('leaves a Pending pod the scheduler cannot place to the cluster: it has no node yet', () => {
    const p = pod('pending-1', []);
    delete p.spec!.nodeName;
    p.status!.conditions = [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' }];
    expect(run({ pods: [p] })).toEqual([]);
  });
});

describe('ContainerFailed', () => {
  it('reports a Job container that exited non-zero with its code, signal meaning and log tail', () => {
    const parts = terminated('Error', 137);
    const tail: LogLine[] = [
      { source: 'podLog', at: ago(7), text: 'exporting 120000 rows to s3://backups/2025-04-01' },
      { source: 'podLog', at: ago(5.5), text: 'ERROR upload failed: connection reset by peer' },
    ];
    const drafts = run({ ...parts, containerLogTail: new Map([['demo/export-1/job', tail]]) });
    expect(drafts).toHaveLength(1);
    const d = drafts[0]!;
    expect(d).toMatchObject({
      category: 'ContainerFailed',
      severity: 'warning',
      subject: { kind: 'Container', namespace: 'demo', name: 'export-1', container: 'job' },
      facts: { exitCode: 137, signal: 'SIGKILL', reason: 'Error', ownerKind: 'Job', ownerName: 'export', restartPolicy: 'Never' },
    });
    expect(d.title).toBe('Container job of demo/export-1 failed (exit code 137, SIGKILL)');
    expect(d.message).toContain('is SIGKILL');
    expect(d.message).toContain('ERROR upload failed: connection reset by peer');
    expect(d.evidence.map((e) => e.source)).toEqual(['podStatus', 'podStatus', 'podLog', 'podLog']);
  });

  it('names the signal of every 128+n exit code and none for plain exit statuses', () => {
    expect([exitSignal(137), exitSignal(143), exitSignal(139), exitSignal(134), exitSignal(130), exitSignal(1), exitSignal(255)]).toEqual(['SIGKILL', 'SIGTERM', 'SIGSEGV', 'SIGABRT', 'SIGINT', null, null]);
    expect(exitSignal(0, 9)).toBe('SIGKILL');
  });

  it('reports an init container that failed a restartPolicy Never pod', () => {
    const p = pod('migrate-1', [container('app', { waiting: { reason: 'PodInitializing' } })], { phase: 'Failed', restartPolicy: 'Never' });
    p.status!.initContainerStatuses = [container('migrate', { terminated: { exitCode: 1, reason: 'Error', finishedAt: ago(3) } })];
    const drafts = run({ pods: [p] });
    expect(drafts.map((d) => [d.category, d.subject.container, d.title])).toEqual([['ContainerFailed', 'migrate', 'Init container migrate of demo/migrate-1 failed (exit code 1)']]);
  });

  it('is information only for a failed pod that lingers for days, and a restarted OnFailure container is not one', () => {
    const old = terminated('Error', 1);
    old.pods![0]!.status!.containerStatuses![0]!.state!.terminated!.finishedAt = ago(3 * 24 * 60);
    expect(run(old).map((d) => [d.category, d.severity])).toEqual([['ContainerFailed', 'info']]);
    expect(run(terminated('Error', 1, { phase: 'Running', restartPolicy: 'OnFailure' }))).toEqual([]);
  });

  it('is not a crash loop once the pod failed for good, even after many restarts', () => {
    const st = container('job', { terminated: { exitCode: 2, reason: 'Error', finishedAt: ago(2) } }, { restartCount: 6, lastState: { terminated: { exitCode: 2, reason: 'Error', finishedAt: ago(4) } } });
    const p = pod('retry-1', [st], { phase: 'Failed', restartPolicy: 'OnFailure', owner: 'retry' });
    p.status!.startTime = ago(20);
    expect(run({ pods: [p] }).map((d) => d.category)).toEqual(['ContainerFailed']);
  });
});

/** NPD's event source component per config file. */
function npdComponent(config: string): string {
  if (config.startsWith('kernel-monitor')) return 'kernel-monitor';
  if (config.startsWith('docker-monitor')) return 'docker-monitor';
  if (config.startsWith('abrt')) return 'abrt-adaptor';
  if (config.startsWith('readonly')) return 'readonly-monitor';
  if (config.startsWith('health-checker')) return 'health-checker';
  if (config.startsWith('systemd')) return 'systemd-monitor';
  if (config.startsWith('disk')) return 'disk-monitor';
  if (config.startsWith('network')) return 'network-custom-plugin-monitor';
  return 'ntp-custom-plugin-monitor';
}

function npdEvent(reason: string, message: string, component: string, minutesAgo = 3): KubeEvent {
  return {
    metadata: { name: `${NODE_NAME}.${reason}`, namespace: 'default', uid: `npd-${reason}` },
    involvedObject: { kind: 'Node', name: NODE_NAME, uid: NODE_NAME },
    reason,
    message,
    type: 'Warning',
    count: 1,
    firstTimestamp: ago(minutesAgo),
    lastTimestamp: ago(minutesAgo),
    source: { component, host: NODE_NAME },
  };
}

describe('node-problem-detector interop', () => {
  it.each(NPD_MAPPING.filter((m) => m.kind === 'condition').map((m) => [m.name, m] as const))('condition %s', (_n, m) => {
    const drafts = run({ node: node([{ type: m.name, status: 'True', reason: m.name, message: `${m.name} reported by node-problem-detector` }]) });
    expect(drafts.map((d) => [d.category, d.subject.kind]), m.name).toEqual([[m.category, 'Node']]);
    // The healthy status of the same condition says nothing.
    expect(run({ node: node([{ type: m.name, status: 'False', reason: 'NoProblem', message: 'fine' }]) })).toEqual([]);
  });

  it.each(NPD_MAPPING.filter((m) => m.kind === 'event').map((m) => [m.name, m] as const))('event %s', (_n, m) => {
    const drafts = run({ events: [npdEvent(m.name, `${m.name}: reported by node-problem-detector`, npdComponent(m.config))] });
    expect(drafts.map((d) => [d.category, d.subject.kind, d.severity]), m.name).toEqual([[m.category, 'Node', m.severity]]);
    expect(drafts[0]!.evidence[0]!.text).toContain(m.name);
  });

  it('leaves the reasons it does not map, and old events, alone', () => {
    for (const reason of Object.keys(NPD_UNMAPPED)) expect(run({ events: [npdEvent(reason, `${reason} seen`, 'abrt-adaptor')] }), reason).toEqual([]);
    expect(run({ events: [npdEvent('TaskHung', 'task jbd2/sda1-8:312 blocked for more than 120 seconds.', 'kernel-monitor', 180)] })).toEqual([]);
  });

  it('tells a memory-cgroup kill from a node OOM in its OOMKilling message', () => {
    const node = run({ events: [npdEvent('OOMKilling', 'Out of memory: Killed process 3121 (stress-ng-vm) total-vm:2108196kB, anon-rss:1983364kB, file-rss:4kB', 'kernel-monitor')] });
    expect(node.map((d) => d.category)).toEqual(['KernelOOM']);
    const memcg = run({ events: [npdEvent('OOMKilling', 'Memory cgroup out of memory: Killed process 14881 (java) total-vm:20255636kB, anon-rss:466160kB, file-rss:13684kB', 'kernel-monitor')] });
    expect(memcg.map((d) => [d.category, d.facts?.process])).toEqual([['OOMKilled', 'java']]);
  });

  it('reads the device an NPD message names, as nodesage keys its own kernel findings', () => {
    expect(npdObject('EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0')).toBe('sda1');
    expect(npdObject('XFS (dm-3): Corruption of in-memory data detected.  Shutting down filesystem')).toBe('dm-3');
    // Disks by the whole-disk name and memory controllers by number, as the disk and hardware rules key them.
    expect(npdObject('Buffer I/O error on dev nvme1n1p2, logical block 0, async page read')).toBe('nvme1');
    expect(npdObject('Device: /dev/sdb [SAT], 8 Currently unreadable (pending) sectors')).toBe('sdb');
    expect(npdObject('EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4cb1b8)')).toBe('0');
    expect(npdObject('unregister_netdevice: waiting for eth0 to become free. Usage count = 1')).toBe('eth0');
    expect(npdObject('kubelet is unhealthy')).toBeUndefined();
  });
});

function kmsg(minutesAgo: number, text: string): LogLine {
  return { source: 'kmsg', at: ago(minutesAgo), text, priority: 3 };
}

describe('one problem, one finding', () => {
  it('an XFS error and the shutdown it causes on one device are one FilesystemError; another device stays apart', () => {
    const drafts = run({
      logs: [
        kmsg(3, 'XFS (sdb1): metadata I/O error in "xfs_trans_read_buf_map" at daddr 0x3a58c0 len 8 error 5'),
        kmsg(2.9, 'XFS (sdb1): Log I/O Error Detected. Shutting down filesystem'),
        kmsg(2.5, 'XFS (sdc1): Metadata corruption detected at xfs_dir3_block_read_verify+0x120/0x130 [xfs], xfs_dir3_block block 0x1a0b40'),
      ],
    });
    const fs = drafts.filter((d) => d.category === 'FilesystemError');
    expect(fs.map((d) => [d.detail, d.severity]).sort()).toEqual([
      ['sdb1', 'critical'],
      ['sdc1', 'critical'],
    ]);
    const sdb = fs.find((d) => d.detail === 'sdb1')!;
    expect(sdb.evidence.map((e) => e.text)).toEqual(expect.arrayContaining([expect.stringContaining('Shutting down filesystem'), expect.stringContaining('metadata I/O error')]));
  });

  it("NPD's event and nodesage's own kmsg rule for the same ext4 error are one finding with evidence from both", () => {
    const line = 'EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0';
    const drafts = run({ logs: [kmsg(3, line)], events: [npdEvent('Ext4Error', line, 'kernel-monitor', 3)] });
    expect(drafts.map((d) => [d.category, d.detail])).toEqual([['FilesystemError', 'sda1']]);
    expect(new Set(drafts[0]!.evidence.map((e) => e.source))).toEqual(new Set(['kmsg', 'event']));
    expect(drafts[0]!.facts?.seenBy).toBe('log-rules,npd-events');
  });

  it("NPD's ReadonlyFilesystem condition and the kernel's remount line are one finding", () => {
    const line = 'EXT4-fs (sda1): Remounting filesystem read-only';
    const drafts = run({ logs: [kmsg(3, line)], node: node([{ type: 'ReadonlyFilesystem', status: 'True', reason: 'FilesystemIsReadOnly', message: line }]) });
    expect(drafts.map((d) => [d.category, d.detail, d.lifecycle])).toEqual([['FilesystemError', 'sda1', 'condition']]);
  });

  it('NetworkUnavailable and Ready=False for the same missing CNI are one NodeNotReady', () => {
    const drafts = run({
      node: node([
        { type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized' },
        { type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated', message: 'Node created without a route' },
      ]),
    });
    expect(drafts.filter((d) => d.category === 'NodeNotReady')).toHaveLength(1);
  });

  it("a memory-cgroup kill that names no pod is the OOM-killed container's kill, not a second finding on the Node", () => {
    const st = container('api', { running: { startedAt: ago(1) } }, { restartCount: 1, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: ago(30), finishedAt: ago(1.5) } } });
    const p = pod('api-1', [st], { phase: 'Running' });
    p.spec!.containers![0]!.resources = { limits: { memory: '256Mi' } };
    const drafts = run({
      pods: [p],
      logs: [
        kmsg(1.5, 'memory: usage 262144kB, limit 262144kB, failcnt 4312'),
        kmsg(1.5, 'Memory cgroup out of memory: Killed process 48213 (api) total-vm:1854320kB, anon-rss:259112kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:1024kB oom_score_adj:999'),
      ],
      events: [npdEvent('OOMKilling', 'Memory cgroup out of memory: Killed process 48213 (api) total-vm:1854320kB, anon-rss:259112kB, file-rss:0kB', 'kernel-monitor', 1.5)],
    });
    expect(drafts.map((d) => [d.category, d.subject.kind])).toEqual([['OOMKilled', 'Container']]);
    expect(drafts[0]!.evidence.some((e) => e.source === 'kmsg' && e.text.includes('Killed process 48213'))).toBe(true);
    expect(drafts[0]!.evidence.some((e) => e.source === 'event' && e.text.startsWith('OOMKilling'))).toBe(true);
  });

  it('the kubelet, its stats summary and the host reporting low memory are one NodeMemoryPressure', () => {
    const drafts = run({
      node: node([{ type: 'MemoryPressure', status: 'True', reason: 'KubeletHasInsufficientMemory', message: 'kubelet has insufficient memory available' }]),
      statsSummary: { node: { nodeName: NODE_NAME, memory: { time: ago(0.1), availableBytes: 50 * 2 ** 20, workingSetBytes: 7.9 * 2 ** 30 } } },
    });
    expect(drafts.filter((d) => d.category === 'NodeMemoryPressure').map((d) => d.severity)).toEqual(['critical']);
  });
});

describe('node-problem-detector interop bundle', () => {
  it('gives one finding per problem, with evidence from NPD and from nodesage itself', async () => {
    const { findings, failures } = await analyzeBundle(`${FIXTURES}npd-interop`);
    expect(failures).toEqual([]);
    expect(findings.map((f) => `${f.category} ${f.subject.kind}`).sort()).toEqual([
      'ClockSkew Node',
      'ConntrackFull Node',
      'FilesystemError Node',
      'KernelHungTask Node',
      'OOMKilled Container',
      'RuntimeUnhealthy Node',
    ]);
    const fs = findings.find((f) => f.category === 'FilesystemError')!;
    // nodesage's own reading leads; NPD's condition and events are its evidence too.
    expect(fs.title).toBe('Filesystem sdb1 remounted read-only');
    expect(fs.severity).toBe('critical');
    expect(new Set(fs.evidence.map((e) => e.source))).toEqual(new Set(['kmsg', 'event', 'kubelet']));
    const hung = findings.find((f) => f.category === 'KernelHungTask')!;
    expect(hung.severity).toBe('critical');
    expect(hung.evidence.some((e) => e.text.startsWith('DockerHung'))).toBe(true);
    const oom = findings.find((f) => f.category === 'OOMKilled')!;
    expect(oom.subject).toEqual({ kind: 'Container', namespace: 'telemetry', name: 'ingest-api-5c8d7f9b6-kq2zt', container: 'ingest' });
    expect(oom.evidence.some((e) => e.source === 'event' && e.text.startsWith('OOMKilling'))).toBe(true);
    expect(findings.every((f) => f.rootCause)).toBe(true);
  });
});

describe('inode exhaustion bundle', () => {
  it('makes the inode exhaustion the root cause of the readiness failures, the ENOSPC crash loop, the disk pressure and the eviction', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}inode-exhaustion-job-failed`);
    const by = (c: Category) => findings.filter((f) => f.category === c);
    expect(findings.map((f) => f.category).sort()).toEqual(['ContainerFailed', 'CrashLoop', 'Evicted', 'InodeExhaustion', 'NodeDiskPressure', 'ProbeFailure']);
    const inodes = by('InodeExhaustion')[0]!;
    const pressure = by('NodeDiskPressure')[0]!;
    expect(inodes.rootCause).toBe(true);
    expect(pressure.causes).toEqual([inodes.id]);
    for (const c of ['ProbeFailure', 'CrashLoop', 'Evicted'] as const) {
      const f = by(c)[0]!;
      expect(f.causes, c).toEqual(expect.arrayContaining([inodes.id]));
      expect(f.rootCause, c).toBe(false);
    }
    // The Job that failed on a database password is a problem of its own.
    const job = by('ContainerFailed')[0]!;
    expect(job.rootCause).toBe(true);
    expect(job.causes).toEqual([]);
    expect(job.title).toBe('Container report of batch/report-nightly-29342160-xk2pt failed (exit code 3)');
    expect(job.message).toContain('password authentication failed');
    expect(findings.filter((f) => f.rootCause).map((f) => f.category).sort()).toEqual(['ContainerFailed', 'InodeExhaustion']);
  });
});

describe('memory pressure bundle', () => {
  it('makes the node running out of memory the root of the OOM kill, the eviction and the error burst, with the kernel line leading', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}memory-pressure-oom-chain`);
    const one = (c: Category) => {
      const list = findings.filter((f) => f.category === c);
      expect(list, c).toHaveLength(1);
      return list[0]!;
    };
    const pressure = one('NodeMemoryPressure');
    const oom = one('KernelOOM');
    const killed = one('OOMKilled');
    const evicted = one('Evicted');
    const burst = one('LogErrorSpike');
    expect(findings).toHaveLength(5);
    expect(findings.filter((f) => f.rootCause).map((f) => f.id)).toEqual([pressure.id]);
    // The kubelet's SystemOOM event and the kernel's own line are one KernelOOM; the kernel's reading leads.
    expect(oom.title).toBe('Node ran out of memory: the kernel killed recommender');
    expect(oom.evidence.some((e) => e.source === 'event' && e.text.startsWith('SystemOOM'))).toBe(true);
    expect(oom.causes).toEqual([pressure.id]);
    expect(killed.causes).toEqual(expect.arrayContaining([oom.id, pressure.id]));
    expect(evicted.causes).toEqual([pressure.id]);
    expect(burst.causes).toEqual([killed.id]);
  });
});
