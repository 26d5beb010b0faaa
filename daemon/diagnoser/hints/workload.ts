/** Rule hints: Pod and container problems: crash loops, OOM kills, image pulls, container config, probes, evictions, failed containers. */
import { describeExitCode } from '../../detectors/exit-codes.js';
import { describeNode, type HintFamily, kernelLog, medium, podDescribe, podEvents, podLogs, runtimeUnit, safeArg, uniq, unitLog } from './context.js';

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

/** Hints of this family, by category. */
export const WORKLOAD_HINTS = {
  CrashLoop: (c) => {
    const code = c.num('exitCode');
    const reason = c.str('lastReason');
    const probeKill = c.facts.probeKill === true;
    const restarts = c.num('restartCount');
    const meaning = code !== undefined ? describeExitCode(code) : undefined;
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
  ContainerFailed: (c) => {
    const code = c.num('exitCode');
    const reason = c.str('reason');
    const meaning = code !== undefined ? describeExitCode(code) : undefined;
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
} satisfies HintFamily;
