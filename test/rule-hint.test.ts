import { describe, expect, it } from 'vitest';
import { CATEGORIES, type Category, type Finding, type FindingFacts, type Subject } from '../daemon/core/types.js';
import { isReadOnlyCommand } from '../daemon/diagnoser/llm-diagnoser.js';
import { registryHost, RuleHintDiagnoser } from '../daemon/diagnoser/rule-hint.js';
import { describeExitCode } from '../daemon/detectors/exit-codes.js';

const NODE = 'edge-node-07';
const diagnoser = new RuleHintDiagnoser({ nodeName: NODE });

/** Categories whose findings are about a pod or one of its containers. */
const POD_CATEGORIES = new Set<Category>(['CrashLoop', 'OOMKilled', 'ImagePull', 'ContainerConfig', 'ProbeFailure', 'Evicted', 'DNSFailure', 'LogErrorSpike', 'ContainerFailed']);

const container: Subject = { kind: 'Container', namespace: 'shop', name: 'checkout-6f7c9d8b5-q2w4x', container: 'api' };
const podOnly: Subject = { kind: 'Pod', namespace: 'shop', name: 'checkout-6f7c9d8b5-q2w4x' };
const nodeSubject: Subject = { kind: 'Node', name: NODE };

function finding(category: Category, subject: Subject, facts: FindingFacts = {}, evidence = true): Finding & { facts: FindingFacts } {
  return {
    id: `${category}-1`,
    category,
    severity: 'warning',
    subject,
    title: `${category} on ${subject.name}`,
    message: `${category} was seen`,
    evidence: evidence ? [{ source: subject.kind === 'Node' ? 'kmsg' : 'podStatus', at: '2025-03-04T10:00:00.000Z', text: `${category} evidence line` }] : [],
    firstSeen: '2025-03-04T09:55:00.000Z',
    lastSeen: '2025-03-04T10:00:00.000Z',
    count: 1,
    status: 'open',
    diagnosis: null,
    facts,
  };
}

function all(d: { summary: string; probableCause: string; nextSteps: string[] }): string {
  return [d.summary, d.probableCause, ...d.nextSteps].join('\n');
}

describe('rule-hint diagnoser', () => {
  it('has a complete, read-only hint for every category that names the subject', async () => {
    for (const category of CATEGORIES) {
      const subject = category === 'Evicted' ? podOnly : POD_CATEGORIES.has(category) ? container : nodeSubject;
      const d = await diagnoser.diagnose(finding(category, subject));
      expect(d.diagnoser, category).toBe('rule-hint');
      expect(d.tokens, category).toEqual({ prompt: 0, completion: 0 });
      expect(d.latencyMs, category).toBeGreaterThanOrEqual(0);
      expect(['low', 'medium', 'high'], category).toContain(d.confidence);
      expect(d.summary.length, category).toBeGreaterThan(10);
      expect(d.probableCause.length, category).toBeGreaterThan(20);
      expect(d.nextSteps.length, category).toBeGreaterThan(0);
      expect(d.commands.length, category).toBeGreaterThan(0);
      for (const c of d.commands) expect(isReadOnlyCommand(c), `${category}: ${c}`).toBe(true);
      // No unfilled placeholders anywhere.
      expect(all(d) + d.commands.join('\n'), category).not.toMatch(/<(?:ns|pod|node|container|namespace)>|undefined|\[object/);
      if (subject.kind === 'Node') {
        expect(d.commands.some((c) => c.includes(NODE)), `${category} names the node`).toBe(true);
      } else {
        expect(
          d.commands.some((c) => c.includes('-n shop') && c.includes('checkout-6f7c9d8b5-q2w4x')),
          `${category} names namespace and pod`,
        ).toBe(true);
      }
    }
  });

  it('explains a failed Job container by its exit signal and points at the Job', async () => {
    const d = await diagnoser.diagnose(finding('ContainerFailed', container, { exitCode: 137, reason: 'Error', signal: 'SIGKILL', ownerKind: 'Job', ownerName: 'nightly-export' }));
    expect(d.summary).toContain('exited with code 137');
    expect(d.probableCause).toContain('SIGKILL');
    expect(d.commands).toContain('kubectl -n shop describe job nightly-export');
    expect(d.commands).toContain('kubectl -n shop logs checkout-6f7c9d8b5-q2w4x -c api --tail=200');
  });

  it('points kubectl logs at the crashing container and its previous run', async () => {
    const d = await diagnoser.diagnose(finding('CrashLoop', container, { exitCode: 127, lastReason: 'Error', restartCount: 9 }));
    expect(d.commands).toContain('kubectl -n shop logs checkout-6f7c9d8b5-q2w4x -c api --previous --tail=200');
    expect(d.commands).toContain('kubectl -n shop describe pod checkout-6f7c9d8b5-q2w4x');
    expect(d.summary).toContain('9 restarts');
    expect(d.summary).toContain('exit code 127');
    expect(d.probableCause).toMatch(/not found in the image/);
  });

  it('explains exit code 137 as a kill and a liveness kill as the probe', async () => {
    const oom = await diagnoser.diagnose(finding('CrashLoop', container, { exitCode: 137 }));
    expect(oom.probableCause).toMatch(/SIGKILL/);
    expect(oom.nextSteps.join(' ')).toMatch(/OOMKilled|memory limit/);
    const probe = await diagnoser.diagnose(finding('CrashLoop', container, { exitCode: 137, probeKill: true }));
    expect(probe.probableCause).toMatch(/liveness probe/);
  });

  it('names every probe of a merged ProbeFailure in words', async () => {
    const both = await diagnoser.diagnose(finding('ProbeFailure', container, { probe: 'liveness,readiness', restarts: 4, lastExitCode: 137 }));
    expect(both.summary).toMatch(/^The liveness and readiness probes of the .* are failing and caused 4 restarts\.$/);
    expect(both.probableCause).toMatch(/liveness and readiness checks within the timeout, so the kubelet kills and restarts it \(exit code 137\)/);
    expect(both.nextSteps.join(' ')).toMatch(/startupProbe/);
    const readiness = await diagnoser.diagnose(finding('ProbeFailure', container, { probe: 'readiness' }));
    expect(readiness.summary).toMatch(/The readiness probe of the .* is failing\.$/);
    expect(readiness.probableCause).toMatch(/receives no traffic/);
  });

  it('uses the image pull cause in the text and the commands', async () => {
    const texts = new Map<string, string>();
    for (const cause of ['auth', 'not-found', 'network', 'rate-limit']) {
      const d = await diagnoser.diagnose(
        finding('ImagePull', container, { cause, image: 'registry.factory.local:5000/shop/checkout:2.4.1', waitingReason: 'ImagePullBackOff' }),
      );
      expect(d.confidence).toBe('high');
      texts.set(cause, d.probableCause);
      if (cause === 'auth') expect(d.commands).toContain('kubectl -n shop get pod checkout-6f7c9d8b5-q2w4x -o jsonpath={.spec.imagePullSecrets}');
      if (cause === 'network') {
        expect(d.commands).toContain('getent hosts registry.factory.local');
        expect(d.probableCause).toContain('registry.factory.local');
      }
      expect(d.summary).toContain('registry.factory.local:5000/shop/checkout:2.4.1');
    }
    expect(texts.get('auth')).toMatch(/credentials/);
    expect(texts.get('not-found')).toMatch(/does not exist/);
    expect(texts.get('network')).toMatch(/cannot reach/);
    expect(texts.get('rate-limit')).toMatch(/rate limit/);
    const unknown = await diagnoser.diagnose(finding('ImagePull', container, {}));
    expect(unknown.confidence).toBe('low');
  });

  it('names the missing ConfigMap and the command that shows it', async () => {
    const d = await diagnoser.diagnose(
      finding('ContainerConfig', container, { cause: 'missing-configmap', missingKind: 'ConfigMap', missingName: 'checkout-config', waitingReason: 'CreateContainerConfigError' }),
    );
    expect(d.probableCause).toContain('ConfigMap checkout-config');
    expect(d.probableCause).toContain('namespace shop');
    expect(d.commands).toContain('kubectl -n shop describe configmap checkout-config');
    expect(d.confidence).toBe('high');
  });

  it('uses the mount point of a full filesystem, mapping kubelet labels to paths', async () => {
    const d = await diagnoser.diagnose(finding('DiskFull', nodeSubject, { mount: '/var/lib/containerd', usedPercent: 96.4, availBytes: 1e9 }));
    expect(d.summary).toContain('/var/lib/containerd');
    expect(d.summary).toContain('96.4%');
    expect(d.commands).toContain('df -h /var/lib/containerd');
    expect(d.commands).toContain('du -xh -d 1 /var/lib/containerd');
    const nodefs = await diagnoser.diagnose(finding('InodeExhaustion', nodeSubject, { mount: 'nodefs', inodesUsedPercent: 99 }));
    expect(nodefs.commands).toContain('df -i /var/lib/kubelet');
    expect(nodefs.probableCause).toMatch(/no space left on device/);
  });

  it('keeps values that are not plain names out of commands', async () => {
    const d = await diagnoser.diagnose(finding('DiskFull', nodeSubject, { mount: '/data; rm -rf /' }));
    expect(d.commands.join('\n')).not.toContain('rm -rf');
    expect(d.commands).toContain('df -h');
    for (const c of d.commands) expect(isReadOnlyCommand(c), c).toBe(true);
    const link = await diagnoser.diagnose(finding('NetworkLinkDown', nodeSubject, { interface: 'eth0$(reboot)' }));
    expect(link.commands.join('\n')).not.toContain('reboot');
    const linkOk = await diagnoser.diagnose(finding('NetworkLinkDown', nodeSubject, { interface: 'enp3s0' }));
    expect(linkOk.commands).toContain('ip -s link show enp3s0');
  });

  it('knows the meaning of common GPU Xid codes', async () => {
    const d = await diagnoser.diagnose(finding('GPUXid', nodeSubject, { xid: 79, rule: 'nvidia-xid', reason: 'GPUXidError' }));
    expect(d.probableCause).toMatch(/fallen off the bus/);
    expect(d.confidence).toBe('high');
  });

  it('reads the reason and groups of the log rule that matched', async () => {
    const cases: [Category, FindingFacts, RegExp, string][] = [
      ['RuntimeUnhealthy', { rule: 'kubelet-cni-not-ready', reason: 'NetworkPluginNotReady' }, /CNI/, 'ls /etc/cni/net.d'],
      ['RuntimeUnhealthy', { rule: 'runtime-service-failed', reason: 'ContainerRuntimeFailed', service: 'crio.service' }, /socket/, 'systemctl status crio'],
      ['KernelOops', { rule: 'unregister-netdevice', reason: 'UnregisterNetDevice', device: 'eth0' }, /network namespace/, 'journalctl -k --since -1h --no-pager --grep "unregister_netdevice"'],
      ['KernelHungTask', { rule: 'task-hung', reason: 'TaskHung', comm: 'jbd2/sda1-8', seconds: '122' }, /I\/O/, 'cat /proc/pressure/io'],
      ['KernelOops', { rule: 'kernel-oops', reason: 'KernelOops', location: 'nf_nat_setup_info+0x1c' }, /kernel or driver bug/, 'lsmod'],
      ['KernelOops', { rule: 'kdump-vmcore-saved', reason: 'KernelCrashDump', path: '/var/crash/202511011541' }, /panicked/, 'ls -l /var/crash'],
      ['KernelSoftLockup', { rule: 'kernel-soft-lockup', reason: 'SoftLockup', cpu: '3' }, /without scheduling/, 'cat /proc/pressure/cpu'],
      ['HardwareError', { rule: 'edac-uncorrected', reason: 'MemoryUncorrectableError', mc: '0', dimm: 'CPU_SrcID#0_MC#0_Chan#0_DIMM#0' }, /could not correct/, 'grep -r . /sys/devices/system/edac/mc/mc0'],
      ['HardwareError', { rule: 'pcie-aer-corrected', reason: 'PCIeCorrectedError' }, /corrected the error|rising rate/, 'lspci -vv'],
      ['DiskFailure', { rule: 'smartd-bad-sectors', reason: 'DiskBadBlock', device: 'sda', sectors: '8' }, /unreadable/, 'smartctl -a /dev/sda'],
      ['DiskFailure', { rule: 'block-io-error', reason: 'IOError', device: 'nvme0' }, /below the filesystem/, 'journalctl -k --since -1h --no-pager --grep "nvme0"'],
      ['DiskFailure', { rule: 'ata-command-failed', reason: 'DiskCommandFailed', port: 'ata1' }, /below the filesystem/, 'lsblk -o NAME,SIZE,MODEL,SERIAL,STATE'],
      ['ClockSkew', { rule: 'chrony-clock-stepped', reason: 'ClockJumped', offset: '+37.2 seconds', unit: 'chronyd.service' }, /time source/, 'chronyc sources'],
      ['ClockSkew', { rule: 'timesyncd-no-reply', reason: 'ClockNotSynchronised', unit: 'systemd-timesyncd.service' }, /time source/, 'timedatectl timesync-status'],
      ['DNSFailure', { rule: 'coredns-loop', reason: 'DNSForwardingLoop' }, /forwarding loop/, 'cat /etc/resolv.conf'],
      ['FilesystemError', { rule: 'fs-readonly-remount', reason: 'ReadonlyFilesystem', device: 'sda1' }, /stopped writes/, 'journalctl -k --since -1h --no-pager --grep "sda1"'],
      ['NetworkLinkDown', { rule: 'nic-link-flapping', reason: 'LinkFlapping', interface: 'enp3s0' }, /lost carrier/, 'ethtool enp3s0'],
    ];
    for (const [category, facts, cause, command] of cases) {
      const subject = category === 'DNSFailure' ? container : nodeSubject;
      const d = await diagnoser.diagnose(finding(category, subject, facts));
      expect(d.probableCause, `${category}/${facts.reason}`).toMatch(cause);
      expect(d.commands, `${category}/${facts.reason}`).toContain(command);
      for (const c of d.commands) expect(isReadOnlyCommand(c), c).toBe(true);
    }
    const clock = await diagnoser.diagnose(finding('ClockSkew', nodeSubject, { reason: 'ClockJumped', offset: '+37.2 seconds' }));
    expect(clock.summary).toContain('stepped by +37.2 seconds');
    const flap = await diagnoser.diagnose(finding('NetworkLinkDown', nodeSubject, { reason: 'LinkFlapping', interface: 'enp3s0' }));
    expect(flap.summary).toContain('enp3s0 on node edge-node-07 is flapping');
  });

  it('points kubelet, runtime and certificate commands at the distribution the finding came from', async () => {
    const cases: [Category, FindingFacts, string[]][] = [
      ['KubeletUnhealthy', { rule: 'kubelet-restart-loop', reason: 'FrequentKubeletRestart', service: 'k3s-agent', unit: 'k3s-agent.service' }, ['systemctl status k3s-agent', 'crictl --runtime-endpoint unix:///run/k3s/containerd/containerd.sock ps -a']],
      ['KubeletUnhealthy', { rule: 'kubelet-pleg-unhealthy', reason: 'PLEGNotHealthy', unit: 'rke2-kubelet' }, ['systemctl status rke2-agent']],
      ['KubeletUnhealthy', { rule: 'kubelet-pleg-unhealthy', reason: 'PLEGNotHealthy', unit: 'k0sworker.service' }, ['crictl --runtime-endpoint unix:///run/k0s/containerd.sock info']],
      ['RuntimeUnhealthy', { rule: 'containerd-cri-plugin-failed', reason: 'ContainerRuntimeUnhealthy', unit: 'snap.microk8s.daemon-containerd.service' }, ['systemctl status snap.microk8s.daemon-containerd', 'crictl --runtime-endpoint unix:///var/snap/microk8s/common/run/containerd.sock info']],
      ['CertificateExpiry', { rule: 'kubelet-cert-expired', reason: 'CertificateExpired', unit: 'rke2-agent.service' }, ['openssl x509 -in /var/lib/rancher/rke2/agent/client-kubelet.crt -noout -dates']],
      ['CertificateExpiry', { rule: 'kubelet-cert-expired', reason: 'CertificateExpired', unit: 'kubelet.service' }, ['openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem -noout -dates']],
    ];
    for (const [category, facts, commands] of cases) {
      const d = await diagnoser.diagnose(finding(category, nodeSubject, facts));
      for (const cmd of commands) expect(d.commands, `${category} ${facts.unit ?? facts.service}`).toContain(cmd);
      for (const cmd of d.commands) expect(isReadOnlyCommand(cmd), cmd).toBe(true);
    }
  });

  it('says low confidence when the finding has no evidence', async () => {
    const d = await diagnoser.diagnose(finding('NodeMemoryPressure', nodeSubject, {}, false));
    expect(d.confidence).toBe('low');
  });

  it('honours an aborted signal', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stopping'));
    await expect(diagnoser.diagnose(finding('ClockSkew', nodeSubject), ac.signal)).rejects.toThrow('stopping');
  });
});

describe('hint helpers', () => {
  it('finds the registry host of image references', () => {
    expect(registryHost('nginx:1.27')).toBe('registry-1.docker.io');
    expect(registryHost('bitnami/redis:7.2')).toBe('registry-1.docker.io');
    expect(registryHost('ghcr.io/acme/app@sha256:0123abcd')).toBe('ghcr.io');
    expect(registryHost('localhost:5000/app:dev')).toBe('localhost');
    expect(registryHost('registry.local:5000/a/b:1')).toBe('registry.local');
  });

  it('explains exit codes by signal', () => {
    expect(describeExitCode(139)).toMatch(/SIGSEGV/);
    expect(describeExitCode(130)).toMatch(/signal 2/);
    expect(describeExitCode(3)).toMatch(/exit code 3/);
  });
});
