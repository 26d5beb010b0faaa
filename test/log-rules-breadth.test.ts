/**
 * The breadth of the shipped log rules: kernel crashes, hardware and disk
 * failures, runtime store corruption, every certificate-manager phrasing, and
 * the units of edge distributions (k3s, RKE2, k0s, MicroK8s). Lines are shaped
 * as the named upstream versions print them; findings go through the same
 * tracker merge as `nodesage analyze`, so "one problem, one finding" is checked
 * on what a user sees.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findingsFromDrafts } from '../daemon/analyze.js';
import { DEFAULT_EMBEDDED_LOG_FILES } from '../daemon/collectors/journald.js';
import { loadConfig } from '../daemon/config.js';
import type { Finding, FindingDraft, LogLine, NodeView } from '../daemon/core/types.js';
import { compileRuleFile, createLogRuleDetectorFromRules, defaultRuleDir, loadRuleFiles, RuleFileError } from '../daemon/detectors/log-rules.js';
import { UNIT_GROUPS } from '../daemon/detectors/log-rules/compile.js';

const RULES = loadRuleFiles(defaultRuleDir());
const NODE = 'edge-7';
const T0 = '2026-03-06T02:00:00.000Z';

function at(plusSeconds: number): string {
  return new Date(Date.parse(T0) + plusSeconds * 1000).toISOString();
}

function kmsg(s: number, text: string, priority = 3): LogLine {
  return { source: 'kmsg', at: at(s), text, priority };
}

function journal(unit: string, s: number, text: string, priority = 6): LogLine {
  return { source: 'journald', unit, at: at(s), text, priority };
}

function detect(logs: LogLine[], nowSeconds = 3600): FindingDraft[] {
  const view: NodeView = { nodeName: NODE, now: at(nowSeconds), logs, events: [], containerLogTail: new Map(), templates: [], bootTime: '2026-03-05T00:00:00.000Z' };
  return createLogRuleDetectorFromRules(RULES).detect(view);
}

function findings(logs: LogLine[], nowSeconds?: number): Finding[] {
  return findingsFromDrafts(detect(logs, nowSeconds));
}

function categories(fs: { category: string }[]): string[] {
  return [...new Set(fs.map((f) => f.category))].sort();
}

describe('kernel crashes are KernelOops', () => {
  it.each([
    ['x86 5.15 NULL dereference', 'BUG: kernel NULL pointer dereference, address: 0000000000000010'],
    ['x86 5.4 divide error', 'divide error: 0000 [#1] SMP NOPTI'],
    ['x86 6.12 general protection fault', 'Oops: general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI'],
    ['kernel BUG at', 'kernel BUG at mm/slub.c:305!'],
    ['arm64 (Raspberry Pi) NULL dereference', 'Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008'],
    ['arm64 oops header', 'Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP'],
  ])('%s', (_label, line) => {
    const fs = findings([kmsg(10, line, 1)]);
    expect(categories(fs)).toEqual(['KernelOops']);
    expect(fs[0]).toMatchObject({ severity: 'critical', subject: { kind: 'Node', name: NODE } });
  });

  it('reports a leaked network device reference as KernelOops, not as a hung task or a link going down', () => {
    const lines = [0, 10, 20].map((s) => kmsg(s, 'unregister_netdevice: waiting for veth3f2a1b4 to become free. Usage count = 1', 0));
    const fs = findings(lines);
    expect(fs.map((f) => [f.category, f.title])).toEqual([['KernelOops', 'Kernel leaked a reference to network device veth3f2a1b4']]);
    expect(fs[0]!.count).toBe(3);
  });

  it('reports a saved crash dump (kdump) and an ABRT kernel report, but not a user-space crash', () => {
    const fs = findings([
      journal('kdump-tools.service', 5, ' * kdump-tools: saved vmcore in /var/crash/202603060159'),
      journal('abrtd.service', 50, 'System encountered a non-fatal error in nf_nat_setup_info()'),
      journal('abrtd.service', 60, 'Process 1432 (nginx) crashed in ngx_http_process_request()'),
    ]);
    expect(fs.map((f) => f.category)).toEqual(['KernelOops', 'KernelOops']);
    expect(fs.map((f) => f.title).sort()).toEqual(['ABRT reported a kernel problem', 'The kernel crashed (previous boot)']);
  });
});

describe('hardware errors are HardwareError', () => {
  it('a fatal GHES record is critical; corrected ones are warnings', () => {
    const fatal = findings([
      kmsg(0, '{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1', 0),
      kmsg(0.001, '{1}[Hardware Error]: event severity: fatal', 0),
    ]);
    // Both lines are one problem: one finding at the worst severity.
    expect(fatal.map((f) => [f.category, f.severity])).toEqual([['HardwareError', 'critical']]);
    const corrected = findings([kmsg(0, '{2}[Hardware Error]: event severity: corrected', 4)]);
    expect(corrected.map((f) => [f.category, f.severity])).toEqual([['HardwareError', 'warning']]);
  });

  it('memory ECC: corrected errors count only at a rate, an uncorrectable one at once, on one finding per controller', () => {
    const ce = (s: number) => kmsg(s, 'EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4cb1b8 offset:0x240 grain:32 syndrome:0x0 - area:DRAM err_code:0001:0091 socket:0 ha:0 channel_mask:2 rank:1)', 4);
    expect(findings([ce(0), ce(600)])).toEqual([]);
    const three = findings([ce(0), ce(600), ce(1200)]);
    expect(three.map((f) => [f.category, f.severity, f.count])).toEqual([['HardwareError', 'warning', 3]]);
    const ue = kmsg(1300, 'EDAC MC0: 1 UE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x3f2e1d offset:0x0 grain:32)', 0);
    const both = findings([ce(0), ce(600), ce(1200), ue]);
    expect(both.map((f) => [f.category, f.severity])).toEqual([['HardwareError', 'critical']]);
  });

  it('machine checks and PCIe AER', () => {
    expect(categories(findings([kmsg(0, 'mce: [Hardware Error]: Machine check events logged', 4)]))).toEqual(['HardwareError']);
    const aer = findings([kmsg(0, 'pcieport 0000:00:01.1: AER: Uncorrected (Fatal) error received: 0000:01:00.0', 2)]);
    expect(aer.map((f) => [f.category, f.severity])).toEqual([['HardwareError', 'critical']]);
    // One corrected error is noise; a burst is a marginal link.
    const line = (s: number) => kmsg(s, 'pcieport 0000:00:1c.5: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)', 4);
    expect(findings([line(0)])).toEqual([]);
    expect(categories(findings(Array.from({ length: 10 }, (_, i) => line(i * 60))))).toEqual(['HardwareError']);
  });
});

describe('one failing disk is one DiskFailure finding', () => {
  it('block layer (kernel < 5.14 and >= 5.14), buffer layer, SCSI and smartd reports on sda merge; the ext4 error on it stays a FilesystemError', () => {
    const fs = findings([
      kmsg(0, 'sd 0:0:0:0: [sda] tag#23 FAILED Result: hostbyte=DID_BAD_TARGET driverbyte=DRIVER_OK cmd_age=0s', 6),
      kmsg(0.001, 'blk_update_request: I/O error, dev sda, sector 81788224 op 0x0:(READ) flags 0x80700 phys_seg 4 prio class 0'),
      kmsg(30, 'I/O error, dev sda, sector 81788232 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2'),
      kmsg(30.001, 'Buffer I/O error on dev sda1, logical block 10223521, async page read'),
      kmsg(31, 'EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0', 2),
      journal('smartd.service', 600, 'Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors', 2),
    ]);
    expect(fs.map((f) => f.category).sort()).toEqual(['DiskFailure', 'FilesystemError']);
    const disk = fs.find((f) => f.category === 'DiskFailure')!;
    expect(disk.count).toBe(5);
    expect(disk.evidence.map((e) => e.source)).toContain('journald');
  });

  it('the NVMe driver (nvme0) and the block layer (nvme0n1p1) name the same disk', () => {
    const fs = findings([
      kmsg(0, 'nvme nvme0: I/O 123 QID 4 timeout, aborting', 4),
      kmsg(30, 'nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff', 4),
      kmsg(31, 'I/O error, dev nvme0n1, sector 1953525128 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2'),
    ]);
    expect(fs.map((f) => [f.category, f.count])).toEqual([['DiskFailure', 3]]);
    expect(fs[0]!.title).toMatch(/nvme0/);
  });

  it('two disks are two findings; CD-ROM and loop devices are ignored', () => {
    const fs = findings([
      kmsg(0, 'blk_update_request: I/O error, dev sdb, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0'),
      kmsg(1, 'I/O error, dev sdc, sector 4096 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0'),
      kmsg(2, 'I/O error, dev sr0, sector 0 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0'),
      kmsg(3, 'Buffer I/O error on dev loop3, logical block 0, async page read'),
    ]);
    expect(fs.map((f) => f.title).sort()).toEqual(['Disk sdb is failing', 'Disk sdc is failing']);
  });
});

describe('container runtime errors beyond fatal/panic', () => {
  it.each([
    ['docker.service', 'time="2023-05-11T03:00:01Z" level=error msg="Handler for GET /v1.41/containers/json returned error: readlink /var/lib/docker/overlay2/l: invalid argument"'],
    ['docker.service', 'time="2024-04-02T08:11:22.123456789Z" level=error msg="Handler for POST /v1.43/containers/create returned error: error creating overlay mount to /var/lib/docker/overlay2/4e1f/merged: too many levels of symbolic links"'],
    ['containerd.service', 'time="2024-06-01T10:00:00.000000000Z" level=warning msg="failed to load plugin io.containerd.grpc.v1.cri" error="invalid plugin config: `mirrors` cannot be set when `config_path` is provided"'],
    ['containerd.service', 'time="2024-06-01T10:00:00Z" level=error msg="RunPodSandbox for &PodSandboxMetadata{Name:web-0,Uid:1,Namespace:shop,Attempt:0,} failed, error" error="failed to create containerd container: snapshotter not loaded: overlayfs: invalid argument"'],
    ['crio.service', 'time="2024-05-01 10:00:00.000000000Z" level=warning msg="Failed to get container from storage" error="layer not known"'],
  ])('%s: %s', (unit, line) => {
    expect(categories(findings([journal(unit, 0, line, 3)]))).toEqual(['RuntimeUnhealthy']);
  });

  it('does not report optional snapshotters that are skipped on every node', () => {
    expect(
      findings([
        journal('containerd.service', 0, 'time="2025-02-10T08:00:00Z" level=warning msg="failed to load plugin" error="devmapper not configured" id=io.containerd.snapshotter.v1.devmapper type=io.containerd.snapshotter.v1', 4),
        journal('containerd.service', 0, 'time="2024-06-01T10:00:00Z" level=info msg="skip loading plugin \\"io.containerd.snapshotter.v1.btrfs\\"..." error="path /var/lib/containerd/io.containerd.snapshotter.v1.btrfs (ext4) must be a btrfs filesystem to be used with the btrfs snapshotter: skip plugin" type=io.containerd.snapshotter.v1'),
      ]),
    ).toEqual([]);
  });
});

describe('certificate manager phrasings are CertificateExpiry', () => {
  // The held-out incident: kubelet 1.28 on a node that was off for months.
  it('reports the expired client certificate with the server unreachable, and the expired bootstrap certificate', () => {
    const fs = findings([
      journal('kubelet.service', 0, 'E0306 02:11:02.112001    1432 bootstrap.go:265] part of the existing bootstrap client certificate is expired: 2026-03-05 23:59:59 +0000 UTC', 3),
      journal('kubelet.service', 10, 'E0306 02:11:12.881220    1432 transport.go:123] "The currently active client certificate has expired, but the server is not responsive. A restart may be necessary to retrieve new initial credentials."', 3),
    ], 60);
    expect(fs.map((f) => [f.category, f.severity, f.count])).toEqual([['CertificateExpiry', 'critical', 2]]);
  });

  it('stays quiet on routine rotation messages of client-go before and after 1.33', () => {
    expect(
      findings([
        journal('kubelet.service', 0, 'I0115 08:00:01.002211     912 certificate_manager.go:356] kubernetes.io/kube-apiserver-client-kubelet: Certificate expiration is 2027-01-14 10:22:31 +0000 UTC, rotation deadline is 2026-10-29 04:11:50.123456789 +0000 UTC'),
        journal('kubelet.service', 1, 'I0115 08:00:01.002211     912 certificate_manager.go:724] "Certificate rotation deadline determined" logger="kubernetes.io/kube-apiserver-client-kubelet" expiration="2027-01-14 10:22:31 +0000 UTC" deadline="2026-10-29 04:11:50.123456789 +0000 UTC"'),
      ]),
    ).toEqual([]);
  });
});

describe('edge distributions: kubelet and runtime rules apply to their units', () => {
  it('every unit of the kubelet group is read by default and matched by the kubelet rules', () => {
    const units = loadConfig({ env: {}, serviceAccountDir: '/nonexistent' }).journaldUnits;
    // Journal units are read by default; the rest are the k3s/RKE2 log files the journald collector follows.
    const files = DEFAULT_EMBEDDED_LOG_FILES.map((f) => f.unit);
    for (const u of [...UNIT_GROUPS.kubelet!, ...UNIT_GROUPS.containerd!]) expect([...units, ...files], u).toContain(u);
    const pleg = (unit: string) =>
      journal(unit, 0, 'E1206 10:00:00.000000    1234 kubelet.go:2412] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m30.1s ago; threshold is 3m0s"', 3);
    for (const unit of ['k3s.service', 'k3s-agent.service', 'rke2-agent.service', 'k0sworker.service', 'snap.microk8s.daemon-kubelite.service']) {
      expect(categories(findings([pleg(unit)], 60)), unit).toEqual(['KubeletUnhealthy']);
    }
    expect(findings([pleg('nginx.service')], 60)).toEqual([]);
  });

  it('a k3s-agent restart loop is KubeletUnhealthy: one finding for the loop, the exits as events', () => {
    const logs: LogLine[] = [];
    for (let i = 0; i < 4; i++) {
      const s = i * 15;
      logs.push(
        journal('k3s-agent.service', s, 'k3s-agent.service: Main process exited, code=exited, status=1/FAILURE', 5),
        journal('k3s-agent.service', s + 0.01, "k3s-agent.service: Failed with result 'exit-code'.", 4),
        journal('k3s-agent.service', s + 5, `k3s-agent.service: Scheduled restart job, restart counter is at ${i + 1}.`),
        journal('k3s-agent.service', s + 5.1, 'Started k3s-agent.service - Lightweight Kubernetes.'),
      );
    }
    const fs = findings(logs, 120);
    expect(categories(fs)).toEqual(['KubeletUnhealthy']);
    const loop = fs.filter((f) => /restart loop/.test(f.title));
    expect(loop.map((f) => f.title)).toEqual(['Kubelet (k3s-agent) in a restart loop']);
    expect(fs.some((f) => f.title === 'Kubelet (k3s-agent) exited with an error')).toBe(true);
  });

  it('containerd lines of MicroK8s and k0s units are runtime lines', () => {
    const shim =
      'time="2023-09-28T04:02:25.148192311Z" level=error msg="StartContainer for \\"038ad1\\" failed" error="failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to create new parent process: namespace path: lstat /proc/0/ns/ipc: no such file or directory: unknown"';
    for (const unit of ['snap.microk8s.daemon-containerd.service', 'k0sworker.service']) {
      expect(categories(findings([journal(unit, 0, shim, 3)])), unit).toEqual(['RuntimeUnhealthy']);
    }
  });

  it('rejects an unknown unit group with the file, rule and field', () => {
    try {
      compileRuleFile('site.json', {
        rules: [
          {
            id: 'site-x',
            category: 'KubeletUnhealthy',
            severity: 'warning',
            type: 'temporary',
            reason: 'X',
            source: ['journald:@kublet'],
            keywords: [],
            pattern: 'x',
            title: 't',
            message: 'm',
            examples: { match: ['x'], noMatch: ['y'] },
          },
        ],
      });
      expect.unreachable('compiled');
    } catch (err) {
      expect(err).toBeInstanceOf(RuleFileError);
      expect((err as RuleFileError).message).toBe('site.json: rule site-x: source: unknown unit group "@kublet" (known: @kubelet, @containerd)');
    }
  });
});

/**
 * node-problem-detector's shipped Linux rules (config/*.json at
 * kubernetes/node-problem-detector 6632ca67), each with a line its pattern
 * matches and the nodesage category the same problem gets. The table in
 * daemon/rules/README.md is checked against this list.
 */
const NPD_PARITY: { reason: string; category: string; lines: LogLine[] }[] = [
  { reason: 'OOMKilling', category: 'KernelOOM', lines: [kmsg(0, 'Out of memory: Killed process 3121 (stress-ng-vm) total-vm:2108196kB, anon-rss:1983364kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:3920kB oom_score_adj:1000')] },
  { reason: 'TaskHung', category: 'KernelHungTask', lines: [kmsg(0, 'INFO: task jbd2/nvme0n1p1-8:412 blocked for more than 122 seconds.')] },
  { reason: 'DockerHung', category: 'KernelHungTask', lines: [kmsg(0, 'INFO: task docker:1180 blocked for more than 120 seconds.')] },
  { reason: 'UnregisterNetDevice', category: 'KernelOops', lines: [kmsg(0, 'unregister_netdevice: waiting for lo to become free. Usage count = 2')] },
  { reason: 'FrequentUnregisterNetDevice', category: 'KernelOops', lines: [0, 10, 20].map((s) => kmsg(s, 'unregister_netdevice: waiting for eth0 to become free. Usage count = 1')) },
  { reason: 'KernelOops', category: 'KernelOops', lines: [kmsg(0, 'BUG: unable to handle kernel NULL pointer dereference at 0000000000000008'), kmsg(9, 'divide error: 0000 [#1] SMP')] },
  { reason: 'Ext4Error', category: 'FilesystemError', lines: [kmsg(0, 'EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0')] },
  { reason: 'Ext4Warning', category: 'FilesystemError', lines: [kmsg(0, 'EXT4-fs warning (device sda1): ext4_dx_add_entry:2461: Directory (ino: 2097153) index full, reach max htree level :2')] },
  { reason: 'IOError', category: 'DiskFailure', lines: [kmsg(0, 'Buffer I/O error on dev sdb1, logical block 8192, lost async page write')] },
  { reason: 'XfsShutdown', category: 'FilesystemError', lines: [kmsg(0, 'XFS (dm-3): Corruption of in-memory data detected.  Shutting down filesystem')] },
  { reason: 'ReadonlyFilesystem', category: 'FilesystemError', lines: [kmsg(0, 'EXT4-fs (sda1): Remounting filesystem read-only')] },
  {
    reason: 'MemoryReadError',
    category: 'HardwareError',
    lines: [0, 60, 120].map((s) => kmsg(s, 'EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4cb1b8 offset:0x240 grain:32 syndrome:0x0)')),
  },
  { reason: 'CperHardwareErrorCorrected', category: 'HardwareError', lines: [kmsg(0, '{1}[Hardware Error]: event severity: corrected')] },
  { reason: 'CperHardwareErrorRecoverable', category: 'HardwareError', lines: [kmsg(0, '{1}[Hardware Error]: event severity: recoverable')] },
  { reason: 'CperHardwareErrorFatal', category: 'HardwareError', lines: [kmsg(0, '{1}[Hardware Error]: event severity: fatal')] },
  {
    reason: 'CorruptDockerImage',
    category: 'RuntimeUnhealthy',
    lines: [journal('docker.service', 0, 'time="2022-01-03T10:11:12Z" level=error msg="Error trying v2 registry: failed to register layer: rename /var/lib/docker/image/overlay2/layerdb/tmp/write-set-1234 /var/lib/docker/image/overlay2/layerdb/sha256/ab12: directory not empty"')],
  },
  { reason: 'CorruptDockerOverlay2', category: 'RuntimeUnhealthy', lines: [journal('docker.service', 0, 'time="2023-05-11T03:00:01Z" level=error msg="Handler for GET /v1.41/containers/json returned error: readlink /var/lib/docker/overlay2/l: invalid argument"')] },
  {
    reason: 'DockerContainerStartupFailure',
    category: 'RuntimeUnhealthy',
    lines: [journal('docker.service', 0, 'time="2020-06-01T10:00:00Z" level=error msg="Handler for POST /v1.40/containers/4c3d/start returned error: OCI runtime start failed: container process is already dead: unknown"')],
  },
  { reason: 'KubeletStart', category: 'KubeletUnhealthy', lines: [0, 60, 120, 180, 240].map((s) => journal('kubelet.service', s, 'Started kubelet.service - kubelet: The Kubernetes Node Agent.')) },
  { reason: 'FrequentKubeletRestart', category: 'KubeletUnhealthy', lines: [journal('kubelet.service', 0, 'kubelet.service: Scheduled restart job, restart counter is at 5.')] },
  { reason: 'DockerStart', category: 'RuntimeUnhealthy', lines: [0, 60, 120, 180, 240].map((s) => journal('docker.service', s, 'Started docker.service - Docker Application Container Engine.')) },
  { reason: 'FrequentDockerRestart', category: 'RuntimeUnhealthy', lines: [0, 60, 120, 180, 240].map((s) => journal('docker.service', s, 'Started Docker Application Container Engine.')) },
  { reason: 'ContainerdStart', category: 'RuntimeUnhealthy', lines: [0, 60, 120, 180, 240].map((s) => journal('containerd.service', s, 'Started containerd.service - containerd container runtime.')) },
  { reason: 'FrequentContainerdRestart', category: 'RuntimeUnhealthy', lines: [0, 60, 120, 180, 240].map((s) => journal('containerd.service', s, 'Started containerd container runtime.')) },
  {
    reason: 'ContainerCreationFailed',
    category: 'RuntimeUnhealthy',
    lines: [
      journal(
        'containerd.service',
        0,
        'time="2023-02-01T10:00:00Z" level=error msg="CreateContainer within sandbox \\"a1b2\\" for &ContainerMetadata{Name:app,Attempt:0,} failed" error="failed to create containerd container: error unpacking image: failed to extract layer sha256:9c1b: wrong diff id calculated on extraction \\"sha256:1f2e\\""',
      ),
    ],
  },
  {
    reason: 'CorruptContainerImageLayer',
    category: 'RuntimeUnhealthy',
    lines: [journal('kubelet.service', 0, 'E0201 10:00:00.000000    1234 remote_image.go:180] "PullImage from image service failed" err="rpc error: code = Unknown desc = failed to pull and unpack image \\"docker.io/library/nginx:1.25\\": failed to extract layer sha256:5d4c: archive/tar: invalid tar header: unknown" image="nginx:1.25"')],
  },
  { reason: 'DiskBadBlock', category: 'DiskFailure', lines: [journal('smartd.service', 0, 'Device: /dev/sda [SAT], 120 Currently unreadable (pending) sectors')] },
  { reason: 'VMcore', category: 'KernelOops', lines: [journal('abrtd.service', 0, 'System encountered a fatal error in __mutex_lock()')] },
  { reason: 'KernelOops (ABRT)', category: 'KernelOops', lines: [journal('abrtd.service', 0, 'System encountered a non-fatal error in nf_nat_setup_info()')] },
  { reason: 'NTPProblem', category: 'ClockSkew', lines: [journal('chronyd.service', 0, "Can't synchronise: no majority")] },
  { reason: 'ConntrackFull', category: 'ConntrackFull', lines: [kmsg(0, 'nf_conntrack: nf_conntrack: table full, dropping packet', 4)] },
  {
    reason: 'DNSUnreachable',
    category: 'DNSFailure',
    lines: [0, 5, 10].map((s) => ({ ...journal('x', s, 'dial udp 10.96.0.10:53: i/o timeout'), source: 'podLog' as const, unit: undefined, container: { namespace: 'shop', pod: 'web-0', uid: 'u', container: 'app' } })),
  },
  {
    reason: 'ContainerRuntimeUnhealthy',
    category: 'RuntimeUnhealthy',
    lines: [journal('kubelet.service', 0, 'E0513 09:12:44.129873    1733 kubelet.go:2359] "Skipping pod synchronization" err="container runtime is down"', 3)],
  },
];

describe('node-problem-detector parity', () => {
  it.each(NPD_PARITY.map((p) => [p.reason, p] as const))('%s', (_reason, p) => {
    // "Now" a minute after the last line: conditions (PLEG, runtime down) are still held.
    const last = Math.max(...p.lines.map((l) => (Date.parse(l.at) - Date.parse(T0)) / 1000));
    expect(categories(findings(p.lines, last + 60))).toEqual([p.category]);
  });

  it('daemon/rules/README.md lists exactly these mappings', () => {
    const readme = readFileSync(new URL('../daemon/rules/README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## node-problem-detector rules'));
    const rows = [...section.matchAll(/^\| `([^`]+)` \| [^|]+ \| ([^|]+?) \| ([^|]+?) \|$/gm)].map((m) => ({ reason: m[1]!, category: m[2]!.trim(), shownBy: m[3]!.trim() }));
    const tested = rows.filter((r) => r.shownBy.startsWith('log-rules-breadth'));
    expect(tested.map((r) => [r.reason, r.category]).sort()).toEqual(NPD_PARITY.map((p) => [p.reason, p.category]).sort());
    // Rows shown elsewhere or not covered say so.
    for (const r of rows.filter((x) => !x.shownBy.startsWith('log-rules-breadth'))) expect(r.shownBy, r.reason).toMatch(/^(?:detectors-node|not covered)/);
  });
});
