/**
 * What every rule hint is built from: the finding's subject and facts in a
 * form fit for sentences and command lines (`Ctx`), and the read-only
 * commands the hints share. Values pasted into a command come from logs and
 * API objects, so only plain names are pasted (`safeArg`).
 */
import type { Category, Diagnosis, DiagnosisInput, FindingFacts } from '../../core/types.js';

/** The text part of a diagnosis, before the diagnoser id, tokens and timing are added. */
export interface RuleHint {
  summary: string;
  probableCause: string;
  nextSteps: string[];
  commands: string[];
  confidence: Diagnosis['confidence'];
}

/** Options of `RuleHintDiagnoser` and `ruleHint` (rule-hint.ts). */
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

/** `v` when it is a plain name that may go into a command line, else undefined. */
export function safeArg(v: string | undefined): string | undefined {
  return v !== undefined && SAFE_ARG.test(v) ? v : undefined;
}

/** What the commands and sentences of one hint are about. */
export interface Ctx {
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

/** The context of one finding's hint; `nodeName` stands in for pod findings' node. */
export function makeCtx(finding: DiagnosisInput, nodeName: string): Ctx {
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

/** The window every journalctl command reads. */
export const JOURNAL_SINCE = '--since -1h --no-pager';

/** `kubectl describe pod` of the finding's pod (none for a node finding). */
export function podDescribe(c: Ctx): string[] {
  return c.ns && c.pod ? [`kubectl -n ${c.ns} describe pod ${c.pod}`] : [];
}

/** The events of the finding's pod, oldest first. */
export function podEvents(c: Ctx): string[] {
  return c.ns && c.pod ? [`kubectl -n ${c.ns} get events --field-selector involvedObject.name=${c.pod} --sort-by=.lastTimestamp`] : [];
}

/** The log of the finding's container (or all containers): the previous run's, or the last hour's. */
export function podLogs(c: Ctx, previous: boolean): string[] {
  if (!c.ns || !c.pod) return [];
  const which = c.container ? ` -c ${c.container}` : ' --all-containers';
  return [`kubectl -n ${c.ns} logs ${c.pod}${which}${previous ? ' --previous' : ' --since=1h'} --tail=200`];
}

/** `kubectl describe node` of the node. */
export function describeNode(c: Ctx): string {
  return `kubectl describe node ${c.node}`;
}

/** The last hour of a systemd unit's journal, optionally filtered. */
export function unitLog(unit: string, grep?: string): string {
  return `journalctl -u ${unit} ${JOURNAL_SINCE}${grep ? ` --grep "${grep}"` : ''}`;
}

/** The last hour of the kernel log, optionally filtered. */
export function kernelLog(grep?: string): string {
  return `journalctl -k ${JOURNAL_SINCE}${grep ? ` --grep "${grep}"` : ''}`;
}

/** `xs` without repeats, in first-seen order. */
export function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** The path of a filesystem label (kubelet's nodefs/imagefs names, or a mount point). */
export function fsPath(label: string | undefined): string | undefined {
  if (label === 'nodefs') return '/var/lib/kubelet';
  if (label === 'imagefs') return '/var/lib/containerd';
  return safeArg(label);
}

/** Where a Kubernetes distribution keeps what the kubelet and runtime hints point at. */
export interface Distro {
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
export function distroOf(c: Ctx): Distro {
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

/** The container runtime unit of the finding: the one it names, else the distribution's. */
export function runtimeUnit(c: Ctx): string {
  const u = (c.str('service') ?? c.str('unit'))?.replace(/\.service$/, '');
  if (u && /^(containerd|crio|cri-o|docker|cri-dockerd)$/.test(u)) return u;
  return distroOf(c).runtimeUnit;
}

/** Builds the hint of one category. */
export type HintBuilder = (c: Ctx) => RuleHint;

/** The hints of a family of categories. */
export type HintFamily = Partial<Record<Category, HintBuilder>>;

/** Confidence of most hints: the detector saw the problem but did not classify its cause from structured data. */
export const medium = 'medium' as const;
