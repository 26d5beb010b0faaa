/**
 * The rule-hint diagnoser: a deterministic explanation for every category of
 * the problem catalog, filled with the finding's subject and facts.
 *
 * It is the diagnosis of rules-only mode (no model, or a model too big for the
 * node), the grounding the LLM prompt starts from, and the fallback when the
 * model answers badly. So it never fails and never waits for anything: every
 * hint is plain text plus read-only commands that name the finding's own
 * namespace, pod, container and node, so an operator can paste them as they are.
 */
import type { Category, Diagnosis, DiagnosisInput, Diagnoser, FindingFacts } from '../core/types.js';

/** The text part of a diagnosis, before the diagnoser id, tokens and timing are added. */
export interface RuleHint {
  summary: string;
  probableCause: string;
  nextSteps: string[];
  commands: string[];
  confidence: Diagnosis['confidence'];
}

/** Options of {@link RuleHintDiagnoser} and {@link ruleHint}. */
export interface RuleHintOptions {
  /** Name of the node the daemon runs on: pod findings name it in `kubectl describe node`. */
  nodeName: string;
}

/** The finding's facts, or an empty object. */
export function factsOf(input: DiagnosisInput): FindingFacts {
  return input.facts ?? {};
}

// Values that go into a command line come from logs and API objects: only
// plain names are pasted, anything else is left out of the command.
const SAFE_ARG = /^[A-Za-z0-9_/][A-Za-z0-9._:/@+=,%-]{0,252}$/;

function safeArg(v: string | undefined): string | undefined {
  return v !== undefined && SAFE_ARG.test(v) ? v : undefined;
}

/** What the commands and sentences of one hint are about. */
interface Ctx {
  finding: DiagnosisInput;
  facts: FindingFacts;
  node: string;
  ns: string | undefined;
  pod: string | undefined;
  container: string | undefined;
  /** "container app of pod shop/web-1", "pod shop/web-1" or "node n1". */
  who: string;
  str(key: string): string | undefined;
  num(key: string): number | undefined;
}

function makeCtx(finding: DiagnosisInput, nodeName: string): Ctx {
  const facts = factsOf(finding);
  const s = finding.subject;
  const isPod = s.kind !== 'Node' && s.namespace !== undefined;
  const ns = isPod ? safeArg(s.namespace) : undefined;
  const pod = isPod ? safeArg(s.name) : undefined;
  const container = isPod ? safeArg(s.container) : undefined;
  const node = safeArg(s.kind === 'Node' ? s.name : nodeName) ?? safeArg(nodeName) ?? 'localhost';
  const podRef = `${s.namespace ?? ''}/${s.name}`;
  const who =
    s.kind === 'Container' && s.container
      ? `container ${s.container} of pod ${podRef}`
      : s.kind === 'Node'
        ? `node ${s.name}`
        : `pod ${podRef}`;
  return {
    finding,
    facts,
    node,
    ns,
    pod,
    container,
    who,
    str: (k) => {
      const v = facts[k];
      return typeof v === 'string' && v.trim() !== '' ? v.trim() : typeof v === 'number' ? String(v) : undefined;
    },
    num: (k) => {
      const v = facts[k];
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(?:\.\d+)?$/.test(v.trim()) ? Number(v) : Number.NaN;
      return Number.isFinite(n) ? n : undefined;
    },
  };
}

// ---------------------------------------------------------------------------
// Commands. Every one is read-only; test/rule-hint.test.ts checks them all
// against the same filter that cleans the model's commands.

const JOURNAL_SINCE = '--since -1h --no-pager';

function podDescribe(c: Ctx): string[] {
  return c.ns && c.pod ? [`kubectl -n ${c.ns} describe pod ${c.pod}`] : [];
}

function podEvents(c: Ctx): string[] {
  return c.ns && c.pod ? [`kubectl -n ${c.ns} get events --field-selector involvedObject.name=${c.pod} --sort-by=.lastTimestamp`] : [];
}

function podLogs(c: Ctx, previous: boolean): string[] {
  if (!c.ns || !c.pod) return [];
  const which = c.container ? ` -c ${c.container}` : ' --all-containers';
  return [`kubectl -n ${c.ns} logs ${c.pod}${which}${previous ? ' --previous' : ' --since=1h'} --tail=200`];
}

function describeNode(c: Ctx): string {
  return `kubectl describe node ${c.node}`;
}

function unitLog(unit: string, grep?: string): string {
  return `journalctl -u ${unit} ${JOURNAL_SINCE}${grep ? ` --grep "${grep}"` : ''}`;
}

function kernelLog(grep?: string): string {
  return `journalctl -k ${JOURNAL_SINCE}${grep ? ` --grep "${grep}"` : ''}`;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

// ---------------------------------------------------------------------------
// Category facts in words.

/** What a container exit code usually means. */
export function exitCodeMeaning(code: number): string {
  switch (code) {
    case 0:
      return 'exit code 0: the main process finished instead of staying in the foreground, so the kubelet keeps restarting it';
    case 1:
      return 'exit code 1: the application stopped on an error of its own (configuration, a dependency it cannot reach, an unhandled exception)';
    case 2:
      return 'exit code 2: the command was given invalid arguments or the shell script failed';
    case 126:
      return 'exit code 126: the entrypoint exists but is not executable (permissions or wrong architecture)';
    case 127:
      return 'exit code 127: the entrypoint or a command it runs was not found in the image';
    case 134:
      return 'exit code 134 (SIGABRT): the process aborted itself, often a failed assertion or a runtime crash';
    case 137:
      return 'exit code 137 (SIGKILL): the process was killed, by the OOM killer, by a failed liveness probe, or after ignoring SIGTERM';
    case 139:
      return 'exit code 139 (SIGSEGV): the process crashed on a memory access fault';
    case 143:
      return 'exit code 143 (SIGTERM): the process was asked to stop and did';
    default:
      return code > 128 && code < 160 ? `exit code ${code}: the process was killed by signal ${code - 128}` : `exit code ${code}: the application reported a failure`;
  }
}

/** The registry host of an image reference (Docker Hub when the reference names none). */
export function registryHost(image: string): string {
  const first = image.split('/')[0] ?? '';
  if (image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first.replace(/:\d+$/, '');
  return 'registry-1.docker.io';
}

const IMAGE_PULL_CAUSES: Record<string, { cause: string; steps: string[] }> = {
  auth: {
    cause: 'the registry refused the credentials: the pod has no imagePullSecret for this registry, or the secret is wrong or expired',
    steps: [
      'Check that the pod (or its service account) references an imagePullSecret for this registry.',
      'Check that the secret holds valid, unexpired credentials for exactly this registry host.',
    ],
  },
  'not-found': {
    cause: 'the image or tag does not exist in the registry (typo, deleted tag, or an image not pushed yet)',
    steps: ['Compare the image reference in the pod spec with the tags that exist in the registry.', 'Fix the tag or push the image, then let the kubelet retry.'],
  },
  network: {
    cause: 'the node cannot reach the registry (DNS, firewall, proxy or TLS error)',
    steps: [
      'Check DNS resolution and routing from the node to the registry host.',
      'On air-gapped sites, make sure the image is mirrored to the local registry or preloaded on the node.',
    ],
  },
  'rate-limit': {
    cause: 'the registry rate limit was reached (HTTP 429 / toomanyrequests)',
    steps: ['Authenticate pulls or use a pull-through mirror to raise the limit.', 'Avoid imagePullPolicy: Always for images that do not change.'],
  },
  'invalid-name': {
    cause: 'the image reference is not a valid image name',
    steps: ['Fix the image field of the pod spec (registry/repository:tag or @sha256 digest).'],
  },
  'never-pull': {
    cause: 'imagePullPolicy is Never and the image is not present on this node',
    steps: ['Preload the image on the node, or change imagePullPolicy to IfNotPresent.'],
  },
};

const GPU_XID: Record<number, string> = {
  13: 'Xid 13 is a graphics engine exception, usually an application bug (out-of-bounds access)',
  31: 'Xid 31 is a GPU memory page fault, usually an application bug',
  43: 'Xid 43: the GPU stopped processing, usually after an application fault',
  45: 'Xid 45: the driver cleaned up after a killed or crashed process',
  48: 'Xid 48 is a double-bit ECC error: the GPU memory is failing',
  61: 'Xid 61 is an internal micro-controller error of the GPU',
  62: 'Xid 62 is an internal micro-controller halt of the GPU',
  63: 'Xid 63: an ECC page retirement or row remap was recorded',
  64: 'Xid 64: an ECC page retirement or row remap failed',
  74: 'Xid 74 is an NVLink error',
  79: 'Xid 79: the GPU has fallen off the bus (power, PCIe, overheating or hardware failure)',
  92: 'Xid 92: high single-bit ECC error rate',
  94: 'Xid 94 is a contained ECC error: the affected application must restart',
  95: 'Xid 95 is an uncontained ECC error: the GPU needs a reset',
  119: 'Xid 119 is a GSP firmware timeout',
  120: 'Xid 120 is a GSP firmware error',
};

function fsPath(label: string | undefined): string | undefined {
  if (label === 'nodefs') return '/var/lib/kubelet';
  if (label === 'imagefs') return '/var/lib/containerd';
  return safeArg(label);
}

/** Where a Kubernetes distribution keeps what the kubelet and runtime hints point at. */
interface Distro {
  /** systemd unit that runs the kubelet. */
  kubeletUnit: string;
  /** systemd unit that runs containerd, when it is not the kubelet's. */
  runtimeUnit: string;
  /** crictl pointed at the distribution's containerd socket. */
  crictl: string;
  /** Read-only command that shows the kubelet client certificate's validity. */
  clientCert: string;
}

const KUBEADM: Distro = {
  kubeletUnit: 'kubelet',
  runtimeUnit: 'containerd',
  crictl: 'crictl',
  clientCert: 'openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem -noout -dates',
};

/**
 * The distribution of the unit a finding came from (its `service` or `unit`
 * fact): k3s and RKE2 run kubelet and containerd in their own unit with the
 * socket under /run/k3s, k0s under /run/k0s, MicroK8s in snap services.
 */
function distroOf(c: Ctx): Distro {
  const raw = (c.str('service') ?? c.str('unit') ?? '').replace(/\.service$/, '');
  // The log files k3s and RKE2 write for their embedded components belong to the agent unit.
  const u = raw === 'k3s-containerd' ? 'k3s-agent' : raw === 'rke2-kubelet' || raw === 'rke2-containerd' ? 'rke2-agent' : raw;
  if (/^k0s(?:worker|controller)$/.test(u)) {
    return { kubeletUnit: u, runtimeUnit: u, crictl: 'crictl --runtime-endpoint unix:///run/k0s/containerd.sock', clientCert: 'openssl x509 -in /var/lib/k0s/kubelet/pki/kubelet-client-current.pem -noout -dates' };
  }
  if (/^(?:k3s(?:-agent)?|rke2-(?:server|agent))$/.test(u)) {
    const dir = u.startsWith('rke2') ? 'rke2' : 'k3s';
    return { kubeletUnit: u, runtimeUnit: u, crictl: 'crictl --runtime-endpoint unix:///run/k3s/containerd/containerd.sock', clientCert: `openssl x509 -in /var/lib/rancher/${dir}/agent/client-kubelet.crt -noout -dates` };
  }
  if (u.startsWith('snap.microk8s.')) {
    return { kubeletUnit: 'snap.microk8s.daemon-kubelite', runtimeUnit: 'snap.microk8s.daemon-containerd', crictl: 'crictl --runtime-endpoint unix:///var/snap/microk8s/common/run/containerd.sock', clientCert: 'ls -l /var/snap/microk8s/current/certs' };
  }
  return KUBEADM;
}

function runtimeUnit(c: Ctx): string {
  const u = (c.str('service') ?? c.str('unit'))?.replace(/\.service$/, '');
  if (u && /^(containerd|crio|cri-o|docker|cri-dockerd)$/.test(u)) return u;
  return distroOf(c).runtimeUnit;
}

// ---------------------------------------------------------------------------
// One hint per category. `high` confidence only where the detector classified
// the cause from structured data; `low` when the finding carries no evidence.

type HintBuilder = (c: Ctx) => RuleHint;

const medium = 'medium' as const;

const HINTS: Record<Category, HintBuilder> = {
  CrashLoop: (c) => {
    const code = c.num('exitCode');
    const reason = c.str('lastReason');
    const probeKill = c.facts.probeKill === true;
    const restarts = c.num('restartCount');
    const meaning = code !== undefined ? exitCodeMeaning(code) : undefined;
    const cause = probeKill
      ? 'the liveness probe kills the container before it becomes healthy, so the kubelet restarts it in back-off'
      : meaning
        ? `the container keeps exiting: ${meaning}${reason && reason !== 'Error' ? ` (reason ${reason})` : ''}`
        : 'the container keeps exiting shortly after it starts; its last log lines usually say why';
    const steps = [
      `Read the log of the previous run of the ${c.who}: the last lines before the exit usually name the error.`,
      code === 137 && !probeKill
        ? 'Check whether the memory limit was hit (OOMKilled in the last state) or a liveness probe killed it.'
        : 'Check the container command, arguments, environment, mounted ConfigMaps/Secrets and the dependencies it connects to at start.',
      'Look at the pod events for probe failures and back-off timing.',
    ];
    if (code === 0) steps.push('Make the main process run in the foreground (no daemonising entrypoint) or use a Job for work that finishes.');
    return {
      summary: `The ${c.who} is crash-looping${restarts !== undefined ? ` (${restarts} restarts)` : ''}${code !== undefined ? `, last exit code ${code}` : ''}.`,
      probableCause: cause.charAt(0).toUpperCase() + cause.slice(1) + '.',
      nextSteps: steps,
      commands: [...podLogs(c, true), ...podDescribe(c), ...podEvents(c)],
      confidence: code !== undefined || probeKill ? medium : 'low',
    };
  },

  OOMKilled: (c) => {
    const limit = c.str('memoryLimit');
    const proc = c.str('process');
    return {
      summary: `The ${c.who} was killed for using more memory than its limit${limit ? ` (${limit})` : ''}.`,
      probableCause: `The ${proc ? `process ${proc}` : 'container'} reached the memory cgroup limit and the kernel OOM killer ended it (exit code 137). Either the limit is too low for the workload or the application leaks or buffers memory without bound.`,
      nextSteps: [
        'Compare the memory limit with the usage before the kill (metrics, kubectl top).',
        'For JVM, Node.js, Go and similar runtimes, make the heap limit follow the container limit (e.g. -XX:MaxRAMPercentage).',
        'Raise the limit if the usage is legitimate; otherwise look for a leak in the log before the kill.',
      ],
      commands: [...podDescribe(c), ...podLogs(c, true), ...(c.ns && c.pod ? [`kubectl -n ${c.ns} top pod ${c.pod} --containers`] : []), kernelLog('memory cgroup out of memory')],
      confidence: c.facts.fromStatus === true || c.facts.memcg === true ? 'high' : medium,
    };
  },

  ImagePull: (c) => {
    const cause = c.str('cause') ?? 'unknown';
    const image = c.str('image');
    const known = IMAGE_PULL_CAUSES[cause];
    const host = image ? registryHost(image) : undefined;
    const safeHost = safeArg(host);
    const commands = [...podEvents(c), ...podDescribe(c)];
    if (cause === 'auth' && c.ns && c.pod) {
      commands.push(`kubectl -n ${c.ns} get pod ${c.pod} -o jsonpath={.spec.imagePullSecrets}`, `kubectl -n ${c.ns} get secrets --field-selector type=kubernetes.io/dockerconfigjson`);
    }
    if (cause === 'network' && safeHost) commands.push(`getent hosts ${safeHost}`);
    commands.push(`crictl images`, unitLog(runtimeUnit(c), 'pull'));
    return {
      summary: `The image${image ? ` ${image}` : ''} of the ${c.who} cannot be pulled${known ? `: ${cause}` : ''}.`,
      probableCause: known
        ? `${known.cause.charAt(0).toUpperCase()}${known.cause.slice(1)}${host && cause === 'network' ? ` (registry ${host})` : ''}.`
        : 'The kubelet could not pull the image; the pull error in the pod events says whether it is credentials, a missing tag or the network.',
      nextSteps: known?.steps ?? ['Read the "Failed to pull image" event of the pod: it carries the registry error.', 'Check the image name, the registry credentials and the network path to the registry.'],
      commands: uniq(commands),
      confidence: known ? 'high' : 'low',
    };
  },

  ContainerConfig: (c) => {
    const cause = c.str('cause');
    const kind = c.str('missingKind');
    const name = safeArg(c.str('missingName'));
    const key = c.str('missingKey');
    const commands = [...podDescribe(c), ...podEvents(c)];
    let probable: string;
    let steps: string[];
    if (cause === 'missing-configmap' || cause === 'missing-secret' || cause === 'missing-key') {
      const what = kind ?? (cause === 'missing-secret' ? 'Secret' : 'ConfigMap');
      probable =
        cause === 'missing-key'
          ? `The pod references key ${key ?? '(unknown)'} of ${what}${name ? ` ${name}` : ''}, which does not exist.`
          : `The pod references ${what} ${name ?? '(unknown)'}, which does not exist in namespace ${c.finding.subject.namespace ?? '(unknown)'}.`;
      steps = [
        `Create the missing ${what}${cause === 'missing-key' ? ' key' : ''} or fix the reference in the pod spec (env, envFrom or volumes).`,
        'Mark the reference optional: true if the container can start without it.',
      ];
      // describe lists a Secret's keys without printing their values.
      if (c.ns && name) commands.push(`kubectl -n ${c.ns} describe ${what === 'Secret' ? 'secret' : 'configmap'} ${name}`);
    } else if (cause === 'security-context') {
      probable = 'The securityContext requires a non-root user (runAsNonRoot) but the image runs as root or names its user by name.';
      steps = ['Set runAsUser to a numeric non-root uid, or build the image with a numeric USER.'];
    } else if (cause === 'api-sync') {
      probable = 'The kubelet could not read the ConfigMap or Secret from the API server (connectivity or RBAC of the node).';
      steps = ['Check that the node reaches the API server and that the kubelet logs no authorization errors.'];
      commands.push(unitLog('kubelet', 'configmap'));
    } else {
      probable = 'The container runtime could not create the container from its spec; the event message names the failing field.';
      steps = ['Read the pod events for CreateContainerConfigError or CreateContainerError and fix the named field.'];
      commands.push(unitLog(runtimeUnit(c)));
    }
    return {
      summary: `The ${c.who} cannot be created: ${c.str('waitingReason') ?? 'CreateContainerConfigError'}.`,
      probableCause: probable,
      nextSteps: steps,
      commands: uniq(commands),
      confidence: cause && cause !== 'unknown' && cause !== 'runtime' ? 'high' : medium,
    };
  },

  ProbeFailure: (c) => {
    // One finding can stand for several probes of the container (merged: "liveness,readiness").
    const probes = (c.str('probe') ?? 'health').split(',').map((p) => p.trim()).filter(Boolean);
    const probe = probes.join(' and ');
    const readinessOnly = probes.every((p) => p === 'readiness');
    const code = c.num('lastExitCode');
    const restarts = c.num('restarts');
    return {
      summary: `The ${probe} probe${probes.length > 1 ? 's' : ''} of the ${c.who} ${probes.length > 1 ? 'are' : 'is'} failing${restarts ? ` and caused ${restarts} restart${restarts > 1 ? 's' : ''}` : ''}.`,
      probableCause:
        readinessOnly
          ? 'The application does not answer its readiness check in time: it is overloaded, still starting, or a dependency it checks is down. The pod receives no traffic meanwhile.'
          : `The application does not answer its ${probe} check${probes.length > 1 ? 's' : ''} within the timeout, so the kubelet kills and restarts it${code === 137 ? ' (exit code 137)' : ''}. Slow start, overload or a probe that points at the wrong port or path are the usual causes.`,
      nextSteps: [
        'Compare the probe (path, port, timeoutSeconds, failureThreshold) in the pod spec with what the application serves.',
        probes.includes('liveness') ? 'Add a startupProbe or raise initialDelaySeconds if the application starts slowly.' : 'Check the application log around the failures for slow requests or errors.',
        'Check CPU throttling and memory pressure on the container while the probe fails.',
      ],
      commands: [...podDescribe(c), ...podEvents(c), ...podLogs(c, !readinessOnly)],
      confidence: medium,
    };
  },

  Evicted: (c) => {
    const cause = c.str('cause');
    const resource = c.str('resource');
    const limit = c.str('limit');
    const probable =
      cause === 'node-pressure'
        ? `The node ran low on ${resource ?? 'a resource'} and the kubelet evicted pods to reclaim it${c.str('threshold') ? ` (threshold ${c.str('threshold')})` : ''}.`
        : cause === 'container-ephemeral-limit' || cause === 'pod-ephemeral-limit' || cause === 'emptydir-limit'
          ? `The pod wrote more local data than its ephemeral-storage limit${limit ? ` (${limit})` : ''} allows (logs, emptyDir or writable layer).`
          : 'The kubelet evicted the pod; the status message names the resource that ran out.';
    return {
      summary: `The pod ${c.finding.subject.namespace ?? ''}/${c.finding.subject.name} was evicted${resource ? ` (${resource})` : ''}.`,
      probableCause: probable,
      nextSteps:
        cause === 'node-pressure'
          ? ['Find what fills the node (disk: images, logs, emptyDir; memory: pods without limits).', 'Set requests/limits so the pods that matter are evicted last.']
          : ['Raise the ephemeral-storage limit or make the application write less to local disk (log rotation, a PVC for data).'],
      commands: uniq([...podDescribe(c), describeNode(c), ...(resource === 'memory' ? ['free -m'] : ['df -h', 'df -i'])]),
      confidence: cause && cause !== 'other' ? 'high' : medium,
    };
  },

  NodeNotReady: (c) => {
    const reason = c.str('reason');
    const hb = c.num('heartbeatAgeSeconds');
    return {
      summary: `Node ${c.node} is not Ready${c.str('status') ? ` (status ${c.str('status')})` : ''}${reason ? `: ${reason}` : ''}.`,
      probableCause:
        reason === 'NodeStatusUnknown' || (hb !== undefined && hb > 60)
          ? `The kubelet stopped reporting to the API server${hb !== undefined ? ` (last heartbeat ${hb}s ago)` : ''}: the kubelet is down, hung, or the node lost its network path to the control plane.`
          : 'The kubelet reports the node not ready: usually the container runtime or the network (CNI) plugin is not working, or the kubelet itself is failing.',
      nextSteps: [
        'Check that the kubelet and the container runtime services are running on the node.',
        'Read the kubelet log for PLEG, CNI (network plugin not ready) or certificate errors.',
        'Check the network path from the node to the API server.',
      ],
      commands: [describeNode(c), 'systemctl status kubelet', unitLog('kubelet'), 'crictl info'],
      confidence: medium,
    };
  },

  NodeMemoryPressure: (c) => ({
    summary: `Node ${c.node} reports MemoryPressure.`,
    probableCause: 'Available memory fell below the kubelet eviction threshold; the kubelet will evict pods, starting with those using more than they requested.',
    nextSteps: ['Find the pods using the most memory and those without memory limits.', 'Check for processes outside Kubernetes using memory on the node.', 'Lower overcommit: set requests close to real usage.'],
    commands: [describeNode(c), 'free -m', 'crictl stats', 'kubectl top pod -A --sort-by=memory'],
    confidence: medium,
  }),

  NodeDiskPressure: (c) => ({
    summary: `Node ${c.node} reports DiskPressure.`,
    probableCause: 'Free space or inodes on the kubelet or image filesystem fell below the eviction threshold; the kubelet garbage-collects images and evicts pods.',
    nextSteps: ['Find what fills /var/lib/kubelet and the image store (unused images, container logs, emptyDir volumes).', 'Remove unused images and tune image garbage collection thresholds.'],
    commands: [describeNode(c), 'df -h', 'df -i', 'crictl imagefsinfo', 'du -xh -d 1 /var/log/pods'],
    confidence: medium,
  }),

  NodePIDPressure: (c) => {
    const cur = c.num('curproc');
    const max = c.num('maxpid');
    return {
      summary: `Node ${c.node} reports PIDPressure${cur !== undefined && max !== undefined ? ` (${cur} of ${max} process ids in use)` : ''}.`,
      probableCause: 'Processes or threads on the node approach the pid limit, often one workload forking or leaking threads.',
      nextSteps: ['Find the containers with the most processes/threads.', 'Set podPidsLimit in the kubelet configuration so one pod cannot exhaust pids.'],
      commands: [describeNode(c), 'ps -e -o pid,nlwp,comm --sort=-nlwp', 'cat /proc/sys/kernel/pid_max', 'crictl stats'],
      confidence: medium,
    };
  },

  DiskFull: (c) => {
    const mount = c.str('mount');
    const path = fsPath(mount);
    const pct = c.num('usedPercent');
    return {
      summary: `${mount ? `Filesystem ${mount}` : 'A filesystem'} on node ${c.node} is ${pct !== undefined ? `${pct}%` : 'nearly'} full.`,
      probableCause: `${mount ? `${mount}${path && path !== mount ? ` (${path})` : ''}` : 'The filesystem'} is running out of space: usually container images, container logs, emptyDir volumes or application data growing without rotation.`,
      nextSteps: [
        'Find the largest directories on that filesystem.',
        'Remove unused images (the kubelet does so above its GC threshold) and rotate or cap logs.',
        'Grow the volume if the usage is legitimate.',
      ],
      commands: uniq([`df -h${path ? ` ${path}` : ''}`, ...(path ? [`du -xh -d 1 ${path}`] : []), 'crictl images', 'journalctl --disk-usage', describeNode(c)]),
      confidence: mount ? 'high' : medium,
    };
  },

  InodeExhaustion: (c) => {
    const mount = c.str('mount');
    const path = fsPath(mount);
    const pct = c.num('inodesUsedPercent');
    return {
      summary: `${mount ? `Filesystem ${mount}` : 'A filesystem'} on node ${c.node} has ${pct !== undefined ? `${pct}%` : 'nearly all'} of its inodes used.`,
      probableCause: 'Many small files (container layers, logs, caches, session files) use up the inodes; new files fail with "no space left on device" even with free space.',
      nextSteps: ['Find the directory with the most files.', 'Clean up small-file caches and unused images; reformat with more inodes if it recurs.'],
      commands: uniq([`df -i${path ? ` ${path}` : ''}`, ...(path ? [`du --inodes -x -d 1 ${path}`] : []), 'crictl images', describeNode(c)]),
      confidence: mount ? 'high' : medium,
    };
  },

  KernelOOM: (c) => {
    const proc = c.str('process') ?? c.str('comm');
    return {
      summary: `The kernel OOM killer ran on node ${c.node}${proc ? ` and killed ${proc}` : ''}.`,
      probableCause: 'The node as a whole ran out of memory: pods without memory limits, system daemons, or overcommitted requests exceed the RAM.',
      nextSteps: ['Find which process was killed and who used the memory at that time.', 'Set memory limits on all pods and reserve memory for the system (kubelet systemReserved/kubeReserved).'],
      commands: [kernelLog('Out of memory'), 'free -m', describeNode(c), ...podDescribe(c)],
      confidence: medium,
    };
  },

  KernelHungTask: (c) => {
    const task = c.str('comm') ?? c.str('task') ?? c.str('process');
    const secs = c.num('seconds');
    return {
      summary: `A task${task ? ` (${task})` : ''} on node ${c.node} was blocked in the kernel${secs !== undefined ? ` for more than ${secs} s` : ''}.`,
      probableCause: 'A process waited on I/O that did not complete: a slow or failing disk, a hung network filesystem (NFS, iSCSI) or a saturated storage device.',
      nextSteps: ['Check disk and network storage health and latency at the time of the message.', 'Look for I/O errors and storage timeouts in the kernel log just before.'],
      commands: [kernelLog('blocked for more than'), 'cat /proc/pressure/io', 'findmnt -t nfs,nfs4', 'lsblk', describeNode(c)],
      confidence: medium,
    };
  },

  KernelSoftLockup: (c) => {
    const reason = c.str('reason');
    const cpu = c.str('cpu');
    const what = reason === 'RCUStall' ? 'an RCU stall' : reason === 'HardLockup' ? 'a hard lockup' : 'a soft lockup';
    return {
      summary: `${cpu ? `CPU ${cpu}` : 'A CPU'} on node ${c.node} was stuck (${what}).`,
      probableCause: 'A CPU ran kernel code for too long without scheduling: a driver or kernel bug, or on virtual machines an overloaded hypervisor stealing CPU time.',
      nextSteps: ['Check the stack trace after the lockup message for the driver involved.', 'On a VM, check CPU steal time and host overcommit.', 'Update the kernel and drivers if the trace points at a known bug.'],
      commands: [kernelLog(reason === 'RCUStall' ? 'rcu' : 'lockup'), 'cat /proc/pressure/cpu', 'uptime', describeNode(c)],
      confidence: medium,
    };
  },

  KernelOops: (c) => {
    const reason = c.str('reason');
    if (reason === 'UnregisterNetDevice') {
      const dev = safeArg(c.str('device'));
      return {
        summary: `The kernel on node ${c.node} leaked a reference to network device${dev ? ` ${dev}` : ''} and cannot free it.`,
        probableCause:
          'unregister_netdevice waits forever: something in the kernel (usually in the network namespace of a deleted pod) never dropped its reference to the device. It is a kernel bug; namespace cleanup is blocked behind it, so pods can hang in Terminating and new pods may fail to get networking.',
        nextSteps: ['Check for pods stuck in Terminating or ContainerCreating on this node.', 'Update the kernel; a node reboot clears the stuck device.'],
        commands: [kernelLog('unregister_netdevice'), `kubectl get pods -A --field-selector spec.nodeName=${c.node}`, 'uname -r', describeNode(c)],
        confidence: 'high',
      };
    }
    const crash = reason === 'KernelCrashDump';
    return {
      summary: crash
        ? `The kernel on node ${c.node} crashed; its crash record (vmcore or pstore log) was saved${c.str('path') ? ` in ${c.str('path')}` : ''}.`
        : `The kernel on node ${c.node} hit a bug (oops)${c.str('location') ? ` at ${c.str('location')}` : ''}${c.str('function') ? ` in ${c.str('function')}` : ''}.`,
      probableCause: crash
        ? 'The node panicked and rebooted (kdump saves the memory image from a capture kernel, pstore keeps the last kernel log in firmware storage): a kernel or driver bug, or a hardware fault (check for machine checks and memory errors too).'
        : 'A kernel or driver bug (or corrupted memory): the faulting task was killed and the kernel may be unstable until the node reboots.',
      nextSteps: crash
        ? ['Read vmcore-dmesg.txt next to the vmcore, or dmesg.txt in the pstore archive, for the panic message and stack.', 'Look for hardware errors (MCE, EDAC) before the crash; update the kernel or driver named in the trace.']
        : ['Read the stack trace after the oops for the module involved.', 'Update the kernel or the driver; drain and reboot the node.'],
      commands: crash
        ? ['ls -l /var/crash', 'ls -lR /var/lib/systemd/pstore', 'journalctl --list-boots --no-pager', 'journalctl -k -b -1 -p err --no-pager', 'uname -r', describeNode(c)]
        : [kernelLog('Oops'), 'uname -a', 'lsmod', 'journalctl -k -b -1 -p err --no-pager', describeNode(c)],
      confidence: medium,
    };
  },

  HardwareError: (c) => {
    const reason = c.str('reason') ?? '';
    const memory = /Memory/.test(reason);
    const pcie = /PCIe/.test(reason);
    const what = memory ? 'memory (ECC)' : pcie ? 'PCIe' : /MachineCheck/.test(reason) ? 'CPU machine check' : 'hardware';
    const uncorrected = /Uncorrectable|Fatal/.test(reason);
    return {
      summary: `The hardware of node ${c.node} reported ${uncorrected ? 'an uncorrectable' : 'a'} ${what} error${c.str('dimm') ? ` on ${c.str('dimm')}` : ''}.`,
      probableCause: uncorrected
        ? 'A hardware component failed in a way the hardware could not correct: data was lost and the affected process or the whole node may have crashed.'
        : 'The hardware detected and corrected an error. Single ones are harmless; a rising rate means a DIMM, CPU, PCIe link or device is degrading.',
      nextSteps: [
        'Look at the error counters and which component (DIMM slot, CPU bank, PCIe device) they name.',
        uncorrected ? 'Drain the node and have the component replaced.' : 'Watch the rate; schedule a replacement if it keeps rising.',
      ],
      commands: uniq([
        kernelLog('Hardware Error'),
        ...(memory ? ['grep -r . /sys/devices/system/edac/mc/mc0'] : []),
        ...(pcie ? ['lspci -vv'] : []),
        describeNode(c),
      ]),
      confidence: medium,
    };
  },

  DiskFailure: (c) => {
    const dev = safeArg(c.str('device') ?? c.str('port'));
    const smart = /^Disk(BadBlock|HealthFailed|SectorsReallocated)$/.test(c.str('reason') ?? '');
    const path = dev && !dev.startsWith('ata') ? `/dev/${dev}` : undefined;
    return {
      summary: `Disk${dev ? ` ${dev}` : ''} on node ${c.node} is failing${smart ? ' (SMART)' : ' (I/O errors)'}.`,
      probableCause: smart
        ? 'The disk reports its own failure: unreadable, pending or reallocated sectors or a failed health check. Data on it is at risk and it will get worse.'
        : 'Reads or writes to the device fail below the filesystem: a failing disk, cable, controller, or a cloud volume that went away. Filesystems on it will report errors next.',
      nextSteps: ['Check the disk health and error log.', 'Move workloads off the node and replace the disk; restore data that lives only there.'],
      commands: uniq([
        ...(path ? [`smartctl -a ${path}`] : []),
        kernelLog(dev ?? 'I/O error'),
        'lsblk -o NAME,SIZE,MODEL,SERIAL,STATE',
        'journalctl -u smartd -u smartmontools --since -1d --no-pager',
        describeNode(c),
      ]),
      confidence: dev ? 'high' : medium,
    };
  },

  FilesystemError: (c) => {
    const dev = safeArg(c.str('device'));
    const readOnly = c.str('reason') === 'ReadonlyFilesystem' || c.str('reason') === 'XfsShutdown';
    return {
      summary: `The kernel reported filesystem errors${dev ? ` on ${dev}` : ''} on node ${c.node}${readOnly ? '; it is now read-only or shut down' : ''}.`,
      probableCause: readOnly
        ? 'The filesystem hit an error and the kernel stopped writes to protect it: everything that writes there (logs, images, volumes) fails until it is repaired and remounted.'
        : 'The filesystem found corruption or the block device returned I/O errors; ext4/xfs may remount it read-only, so writes (logs, images, volumes) would fail.',
      nextSteps: ['Check whether the filesystem is now mounted read-only.', 'Check the disk health (SMART, cloud volume status).', 'Plan a repair (fsck/xfs_repair) with the node drained.'],
      commands: uniq([kernelLog('I/O error'), kernelLog(dev ? dev : 'EXT4-fs error'), 'findmnt -o TARGET,SOURCE,FSTYPE,OPTIONS', 'lsblk', describeNode(c)]),
      confidence: dev ? 'high' : medium,
    };
  },

  NetworkLinkDown: (c) => {
    const iface = safeArg(c.str('interface') ?? c.str('iface') ?? c.str('device'));
    const flapping = c.str('reason') === 'LinkFlapping';
    return {
      summary: `Network link${iface ? ` ${iface}` : ''} on node ${c.node} ${flapping ? 'is flapping (going down and up repeatedly)' : 'went down'}.`,
      probableCause: 'The NIC lost carrier: cable, switch port, transceiver or driver problem; pods on the node lose connectivity meanwhile and the node may turn NotReady.',
      nextSteps: ['Check the link state and error counters of the interface.', 'Check the switch port and cabling; look for driver resets in the kernel log.'],
      commands: [...(iface ? [`ip -s link show ${iface}`, `ethtool ${iface}`, kernelLog(iface)] : ['ip -s link show', kernelLog('Link is Down')]), describeNode(c)],
      confidence: iface ? 'high' : medium,
    };
  },

  ConntrackFull: (c) => ({
    summary: `The connection tracking table on node ${c.node} is full; new connections are dropped.`,
    probableCause: 'More concurrent connections than nf_conntrack_max: a traffic burst, many short-lived connections, or a client leaking connections.',
    nextSteps: ['Compare the current count with the maximum.', 'Raise nf_conntrack_max (kube-proxy conntrack settings) or find the workload opening most connections.'],
    commands: ['cat /proc/sys/net/netfilter/nf_conntrack_count', 'sysctl net.netfilter.nf_conntrack_max', 'conntrack -S', describeNode(c)],
    confidence: 'high',
  }),

  GPUXid: (c) => {
    const xid = c.num('xid');
    const gpu = c.str('gpu');
    const known = xid !== undefined ? GPU_XID[xid] : undefined;
    return {
      summary: `The NVIDIA driver on node ${c.node} reported ${xid !== undefined ? `Xid ${xid}` : 'an Xid error'}${gpu ? ` on GPU ${gpu}` : ''}.`,
      probableCause: known ? `${known}.` : 'An NVIDIA Xid error: the number identifies an application fault, a driver error or failing GPU hardware.',
      nextSteps: ['Check the GPU state and ECC counters.', 'Repeated hardware Xids (48, 79, 94, 95) mean the GPU needs a reset or replacement; application Xids (13, 31, 43) point at the workload.'],
      commands: ['nvidia-smi -q', kernelLog('NVRM'), describeNode(c)],
      confidence: known ? 'high' : medium,
    };
  },

  ThermalThrottle: (c) => ({
    summary: `CPUs on node ${c.node} are throttled because of temperature${c.str('cpu') ? ` (CPU ${c.str('cpu')}${c.str('scope') ? `, ${c.str('scope')}` : ''})` : ''}.`,
    probableCause: 'The CPU reached its thermal limit: cooling (fans, airflow, dust) is insufficient for the load, or the enclosure is too hot.',
    nextSteps: ['Check the temperatures and fan state.', 'Reduce the load or improve cooling; throttled CPUs slow every pod on the node.'],
    commands: ['sensors', kernelLog('temperature'), 'cat /sys/class/thermal/thermal_zone0/temp', describeNode(c)],
    confidence: medium,
  }),

  KubeletUnhealthy: (c) => {
    const d = distroOf(c);
    const checks = c.str('failingChecks');
    const reason = c.str('reason');
    const probable =
      reason && /pleg/i.test(reason)
        ? 'PLEG is not healthy: the kubelet cannot list containers from the runtime in time, usually an overloaded or hung container runtime or too many containers.'
        : reason === 'FrequentKubeletRestart' || reason === 'KubeletFailed'
          ? 'The kubelet service keeps failing and being restarted by systemd: its log just before each exit names the error (configuration, certificates, runtime socket, disk).'
          : 'The kubelet reports failing health checks: the container runtime, PLEG or the kubelet itself is stuck or overloaded.';
    return {
      summary: `The kubelet on node ${c.node} is unhealthy${checks ? ` (failing checks: ${checks})` : reason ? ` (${reason})` : ''}.`,
      probableCause: probable,
      nextSteps: ['Read the kubelet log for the failing check or the error before each exit.', 'Check that the container runtime answers (crictl ps) and is not overloaded.'],
      commands: [`systemctl status ${d.kubeletUnit}`, unitLog(d.kubeletUnit), `${d.crictl} ps -a`, `${d.crictl} info`, describeNode(c)],
      confidence: medium,
    };
  },

  RuntimeUnhealthy: (c) => {
    const unit = runtimeUnit(c);
    const reason = c.str('reason');
    if (reason === 'NetworkPluginNotReady' || reason === 'PodSandboxFailure') {
      return {
        summary:
          reason === 'NetworkPluginNotReady'
            ? `The network plugin (CNI) on node ${c.node} is not ready.`
            : `Pod sandboxes cannot be created on node ${c.node}${c.str('pod') ? ` (pod ${c.str('pod')})` : ''}.`,
        probableCause:
          'Pods cannot get a network namespace: the CNI plugin (its DaemonSet pod, binaries in /opt/cni/bin or config in /etc/cni/net.d) is missing or failing, or the pause image cannot be pulled.',
        nextSteps: ['Check the CNI DaemonSet pod on this node and its log.', 'Check that /etc/cni/net.d holds a config and the pause image is present.'],
        commands: [`kubectl get pods -A -o wide --field-selector spec.nodeName=${c.node}`, 'ls /etc/cni/net.d', unitLog('kubelet', 'cni'), 'crictl pods', describeNode(c)],
        confidence: medium,
      };
    }
    return {
      summary: `The container runtime (${unit}) on node ${c.node} reports errors${reason ? ` (${reason})` : ''}.`,
      probableCause: /Frequent/.test(reason ?? '')
        ? `The ${unit} service keeps restarting: pods cannot start or stop reliably and the kubelet may mark the node NotReady.`
        : 'The runtime service is failing or not answering on its socket: pods cannot start or stop and the kubelet may mark the node NotReady.',
      nextSteps: [`Check the ${unit} service state and its log.`, 'Check free disk space of the image store and the runtime socket.'],
      commands: [`systemctl status ${unit}`, unitLog(unit), `${distroOf(c).crictl} info`, `${distroOf(c).crictl} ps -a`, describeNode(c)],
      confidence: medium,
    };
  },

  ClockSkew: (c) => {
    const unit = /^(chronyd?|systemd-timesyncd|ntpd?)(\.service)?$/.exec(c.str('unit') ?? '')?.[1] ?? 'chronyd';
    const reason = c.str('reason');
    const offset = c.str('offset');
    return {
      summary: `The clock of node ${c.node} ${reason === 'ClockJumped' ? `was stepped${offset ? ` by ${offset}` : ''}` : reason === 'ClocksourceUnstable' ? 'source is unstable' : 'is not synchronised'}.`,
      probableCause:
        reason === 'ClocksourceUnstable'
          ? 'The kernel marked the clocksource unstable (often TSC on VMs) and switched to a slower one; time may drift or jump.'
          : reason === 'CertificateNotYetValid'
            ? 'Certificates are rejected as not yet valid: the node clock is behind the real time.'
            : 'The time service has no usable time source, so the clock drifts or jumps; TLS, tokens and log times break when it is off by more than a few seconds.',
      nextSteps: ['Check the time sources and their reachability.', 'On air-gapped sites, point the node at a local NTP server.'],
      commands: ['timedatectl status', ...(unit === 'systemd-timesyncd' ? ['timedatectl timesync-status'] : ['chronyc tracking', 'chronyc sources']), unitLog(unit), describeNode(c)],
      confidence: medium,
    };
  },

  CertificateExpiry: (c) => ({
    summary: `A kubelet certificate on node ${c.node} is expired or near expiry${c.str('notAfter') ? ` (not after ${c.str('notAfter')})` : ''}.`,
    probableCause: 'Certificate rotation did not happen (rotation disabled, CSRs not approved, or the clock is wrong), so the kubelet fails TLS with the API server.',
    nextSteps: ['Check the validity dates of the kubelet client and serving certificates.', 'Check for pending CSRs and that rotateCertificates is enabled.'],
    commands: [distroOf(c).clientCert, unitLog(distroOf(c).kubeletUnit, 'x509'), 'kubectl get csr', describeNode(c)],
    confidence: medium,
  }),

  DNSFailure: (c) => {
    const name = c.str('host') ?? c.str('name') ?? c.str('javaHost') ?? c.str('nodeHost') ?? c.str('curlHost');
    const reason = c.str('reason');
    return {
      summary: `Name resolution fails for the ${c.who}${name ? ` (${name})` : ''}.`,
      probableCause:
        reason === 'DNSForwardingLoop'
          ? 'CoreDNS detected a forwarding loop: it forwards to the node resolver, which points back at CoreDNS (often a 127.0.0.53 stub resolver).'
          : reason === 'DNSUpstreamUnreachable' || reason === 'DNSTimeout'
            ? 'The cluster DNS cannot reach its upstream resolver in time: the upstream (or the path to it) is down, which is common on air-gapped sites without a local resolver.'
            : 'The cluster DNS (CoreDNS) is unreachable or its upstream resolver fails, or the name does not exist.',
      nextSteps: ['Check that the cluster DNS pods are running and reachable from this node.', 'Check the upstream resolvers configured for CoreDNS and the node.'],
      commands: [
        ...podLogs(c, false),
        'kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide',
        'kubectl -n kube-system logs -l k8s-app=kube-dns --tail=50',
        'cat /etc/resolv.conf',
      ],
      confidence: medium,
    };
  },

  LogErrorSpike: (c) => {
    const unit = safeArg(c.str('unit')?.replace(/\.service$/, ''));
    return {
      summary: `The ${unit && c.finding.subject.kind === 'Node' ? `${unit} service on node ${c.node}` : c.who} logs a new error or a burst of errors.`,
      probableCause: 'A log template that was rare or unknown became frequent: a new failure mode of the application or of something it depends on.',
      nextSteps: ['Read the newest error lines and what happened just before the burst.', 'Correlate with deployments, restarts or dependency failures at the same time.'],
      commands:
        c.ns && c.pod
          ? [...podLogs(c, false), ...podDescribe(c)]
          : [unit ? `journalctl -u ${unit} ${JOURNAL_SINCE} -p err` : `journalctl ${JOURNAL_SINCE} -p err`, describeNode(c)],
      confidence: c.finding.evidence.length > 0 ? medium : 'low',
    };
  },

  ContainerFailed: (c) => {
    const code = c.num('exitCode');
    const reason = c.str('reason');
    const meaning = code !== undefined ? exitCodeMeaning(code) : undefined;
    const owner = c.str('ownerKind');
    const steps = [
      `Read the log of the ${c.who}: its last lines before the exit usually name the error.`,
      code === 137
        ? 'Check whether it was killed for memory (a node OOM, the pod limit) or stopped by an activeDeadlineSeconds or a node shutdown.'
        : 'Check its command, arguments, environment and the dependencies it reaches at start.',
    ];
    if (owner === 'Job') steps.push('The Job controller decides whether to retry (backoffLimit); its conditions say whether it gave up.');
    return {
      summary: `The ${c.who} exited${code !== undefined ? ` with code ${code}` : ''}${reason ? ` (${reason})` : ''} and is not restarted.`,
      probableCause: meaning
        ? `${meaning.charAt(0).toUpperCase()}${meaning.slice(1)}; the pod's restartPolicy does not restart it, so the pod stays failed.`
        : 'The container ended with an error and its restartPolicy does not restart it.',
      nextSteps: steps,
      // The container ended and is not restarted: its log is the current one, however old (no --since, no --previous).
      commands: uniq([...podLogs(c, false).map((l) => l.replace(' --since=1h', '')), ...podDescribe(c), ...podEvents(c), ...(owner === 'Job' && c.ns && safeArg(c.str('ownerName')) ? [`kubectl -n ${c.ns} describe job ${c.str('ownerName')}`] : [])]),
      confidence: code !== undefined ? medium : 'low',
    };
  },
};

/** The deterministic hint for a finding. Never throws. */
export function ruleHint(finding: DiagnosisInput, options: RuleHintOptions): RuleHint {
  const c = makeCtx(finding, options.nodeName);
  const build = HINTS[finding.category];
  const h: RuleHint = build
    ? build(c)
    : {
        summary: finding.title,
        probableCause: finding.message,
        nextSteps: ['Look at the evidence of this finding and the state of its subject.'],
        commands: [describeNode(c)],
        confidence: 'low',
      };
  // A hint without evidence behind it is a guess from the category alone.
  if (finding.evidence.length === 0) h.confidence = 'low';
  return h;
}

/** Deterministic diagnoser: works without a model, in microseconds. */
export class RuleHintDiagnoser implements Diagnoser {
  /** Diagnoser id stored with each diagnosis. */
  readonly id = 'rule-hint';
  readonly #options: RuleHintOptions;

  constructor(options: RuleHintOptions) {
    this.#options = Object.freeze({ ...options });
  }

  /** The hint text alone (the LLM prompt's grounding). */
  hint(finding: DiagnosisInput): RuleHint {
    return ruleHint(finding, this.#options);
  }

  /** Diagnosis of one finding; `signal` is accepted for the interface, the work is synchronous. */
  async diagnose(finding: DiagnosisInput, signal?: AbortSignal): Promise<Diagnosis> {
    signal?.throwIfAborted();
    const started = performance.now();
    const h = this.hint(finding);
    return {
      ...h,
      diagnoser: this.id,
      tokens: { prompt: 0, completion: 0 },
      latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
    };
  }
}
