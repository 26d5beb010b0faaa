/** Rule hints: Node services: the kubelet, the container runtime, time sync and kubelet certificates. */
import { describeNode, distroOf, type HintFamily, medium, runtimeUnit, unitLog } from './context.js';

/** Hints of this family, by category. */
export const SERVICES_HINTS = {
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
} satisfies HintFamily;
