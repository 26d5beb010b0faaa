import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { KubePod } from '../daemon/core/kube.js';
import type { FindingDraft, LogLine, NodeView } from '../daemon/core/types.js';
import { CATEGORIES } from '../daemon/core/types.js';
import {
  type CompiledRule,
  compileRuleFile,
  createLogRuleDetector,
  createLogRuleDetectorFromRules,
  defaultRuleDir,
  loadRuleFiles,
  matchRules,
  RuleFileError,
  ruleMatchesExample,
  UnknownRuleError,
} from '../daemon/detectors/log-rules.js';

const RULES = loadRuleFiles(defaultRuleDir());

describe('shipped rule files', () => {
  it('load, validate and cover the node-problem-detector defaults plus the extended catalog', () => {
    const reasons = new Set(RULES.map((r) => r.spec.reason));
    for (const r of ['OOMKilling', 'TaskHung', 'KernelOops', 'Ext4Error', 'Ext4Warning', 'IOError', 'ReadonlyFilesystem', 'XfsShutdown', 'UnregisterNetDevice', 'FrequentKubeletRestart', 'FrequentContainerdRestart', 'FrequentDockerRestart', 'MemoryReadError', 'CperHardwareErrorCorrected', 'CperHardwareErrorFatal', 'DiskBadBlock', 'CorruptDockerOverlay2', 'DockerContainerStartupFailure', 'CorruptContainerImageLayer']) {
      expect(reasons, r).toContain(r);
    }
    const categories = new Set(RULES.map((r) => r.spec.category));
    for (const c of ['KernelOOM', 'KernelHungTask', 'KernelSoftLockup', 'KernelOops', 'HardwareError', 'DiskFailure', 'FilesystemError', 'NetworkLinkDown', 'ConntrackFull', 'GPUXid', 'ThermalThrottle', 'KubeletUnhealthy', 'RuntimeUnhealthy', 'ClockSkew', 'CertificateExpiry', 'DNSFailure'] as const) {
      expect(categories, c).toContain(c);
    }
    for (const r of RULES) expect(CATEGORIES).toContain(r.spec.category);
  });

  it('every shipped rule cites the upstream message it matches and carries examples', () => {
    expect(uncited(RULES)).toEqual([]);
    // The check itself: a rule without citations (allowed for site rules) is named.
    const [site] = compileRuleFile('site.json', { rules: [{ ...SITE_MEMCG_RULE, id: 'site-uncited' }] });
    expect(uncited([site!])).toEqual(['site-uncited: no citations']);
  });

  describe.each(RULES.map((r) => [r.spec.id, r] as [string, CompiledRule]))('rule %s', (_id, rule) => {
    it.each(rule.spec.examples.match.map((e) => [e.slice(0, 90), e]))('matches %s', (_label, example) => {
      expect(ruleMatchesExample(rule, example)).toBe(true);
    });
    it.each(rule.spec.examples.noMatch.map((e) => [e.slice(0, 90), e]))('does not match %s', (_label, example) => {
      expect(ruleMatchesExample(rule, example)).toBe(false);
    });
  });
});

/** Shipped rules that lack an upstream citation (repository, file, message) or an example of each kind. */
function uncited(rules: readonly CompiledRule[]): string[] {
  const bad: string[] = [];
  for (const r of rules) {
    const { citations, examples } = r.spec;
    if (!citations || citations.length === 0) bad.push(`${r.spec.id}: no citations`);
    for (const c of citations ?? []) {
      if (!/^[\w.-]+\/[\w.-]+$/.test(c.repo) || c.path.trim() === '' || c.message.trim() === '') bad.push(`${r.spec.id}: incomplete citation ${JSON.stringify(c)}`);
    }
    if (examples.match.length === 0 || examples.noMatch.length === 0) bad.push(`${r.spec.id}: missing examples`);
  }
  return bad;
}

// ---------- detector behaviour on real-shaped sequences ----------

const NODE = 'edge-worker-3';

function at(base: string, plusSeconds: number): string {
  return new Date(Date.parse(base) + plusSeconds * 1000).toISOString();
}

function kmsg(time: string, text: string, priority = 6): LogLine {
  return { source: 'kmsg', at: time, text, priority };
}

/** journald's copy of a kernel line (`_TRANSPORT=kernel`), received a little later. */
function journalKernel(time: string, text: string, priority = 6): LogLine {
  return { source: 'journald', unit: 'kernel', at: at(time, 0.35), text, priority };
}

function journal(unit: string, time: string, text: string, priority = 6): LogLine {
  return { source: 'journald', unit, at: time, text, priority };
}

function podLog(ns: string, pod: string, container: string, time: string, text: string): LogLine {
  return { source: 'podLog', at: time, text, stream: 'stderr', container: { namespace: ns, pod, uid: '5c0a3f1e-2b4d-4c6e-8f0a-1b2c3d4e5f60', container } };
}

function view(logs: LogLine[], now: string, extra: Partial<NodeView> = {}): NodeView {
  return { nodeName: NODE, now, logs, events: [], containerLogTail: new Map(), templates: [], bootTime: '2024-05-01T06:00:00.000Z', ...extra };
}

function byCategory(drafts: FindingDraft[], category: string): FindingDraft[] {
  return drafts.filter((d) => d.category === category);
}

const T0 = '2024-05-09T10:20:00.000Z';

const MEMCG_POD_UID = '7d1e2f3a-4b5c-11ee-9d36-5254b24cbf5e';
const MEMCG_OLD_CID = 'a3f9c2e1d4b5a6978877665544332211ffeeddccbbaa99887766554433221100';
const MEMCG_SLICE = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${MEMCG_POD_UID.replaceAll('-', '_')}.slice`;

/** A memory-cgroup OOM report as a 5.15 kernel prints it (systemd cgroup driver, containerd). */
const MEMCG_BLOCK = [
  'ledger-api invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=985',
  'CPU: 1 PID: 48211 Comm: ledger-api Not tainted 5.15.0-1034-aws #38-Ubuntu',
  'memory: usage 262144kB, limit 262144kB, failcnt 311',
  `Memory cgroup stats for ${MEMCG_SLICE}/cri-containerd-${MEMCG_OLD_CID}.scope:`,
  'anon 266240000',
  'Tasks state (memory values in pages):',
  '[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name',
  '[  48211]  1000 48211   311403    65256   659456        0           985 ledger-api',
  `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-${MEMCG_OLD_CID}.scope,mems_allowed=0,oom_memcg=${MEMCG_SLICE}/cri-containerd-${MEMCG_OLD_CID}.scope,task_memcg=${MEMCG_SLICE}/cri-containerd-${MEMCG_OLD_CID}.scope,task=ledger-api,pid=48211,uid=1000`,
  'Memory cgroup out of memory: Killed process 48211 (ledger-api) total-vm:1245612kB, anon-rss:261024kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:644kB oom_score_adj:985',
];

/** The pod of MEMCG_BLOCK: the killed container has restarted since, so its old id is only in lastState. */
const MEMCG_PODS: KubePod[] = [
  {
    metadata: { name: 'ledger-api-6b7c8d9f4-q2x7m', namespace: 'payments', uid: MEMCG_POD_UID },
    spec: { containers: [{ name: 'ledger-api' }, { name: 'envoy' }] },
    status: {
      containerStatuses: [
        {
          name: 'ledger-api',
          restartCount: 1,
          containerID: 'containerd://0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a09080706050403020100a',
          lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', containerID: `containerd://${MEMCG_OLD_CID}` } },
        },
        { name: 'envoy', restartCount: 0, containerID: 'containerd://1111111111111111111111111111111111111111111111111111111111111111' },
      ],
    },
  },
];

/** A site rule that attributes memory-cgroup OOM kills through the cgroup path (multi-line window). */
const SITE_MEMCG_RULE = {
  id: 'site-memcg-oom',
  category: 'OOMKilled',
  severity: 'warning',
  type: 'temporary',
  reason: 'OOMKilling',
  source: ['kmsg'],
  keywords: ['Memory cgroup out of memory'],
  window: 80,
  pattern:
    '(?:(?<![^\\n])(?<context>[^\\n]*(?:Memory cgroup stats for |task_memcg=|Task in | cpuset=)[^\\n]*\\n(?:(?![^\\n]*Memory cgroup out of memory)[^\\n]*\\n){0,78}))?Memory cgroup out of memory: Kill(?:ed)? process (?<pid>\\d+) \\((?<comm>[^)]*)\\)[^\\n]*',
  subject: { cgroup: 'context', detailPrefix: '', unresolvedSeverity: 'info' },
  title: 'Container killed at its memory limit ({comm})',
  message: 'The memory-cgroup OOM killer killed {comm} (pid {pid}).',
  examples: { match: ['Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB'], noMatch: ['Out of memory: Killed process 1 (x) total-vm:1kB'] },
};

describe('log-rule detector', () => {
  it('does not report a memcg OOM block (a container hitting its limit) as KernelOOM, from kmsg or journald', () => {
    // A 5.15 report and, a minute later, the same container killed on a 3.10 kernel (docker, cgroupfs), whose
    // "Killed process" line is what node-problem-detector's OOMKilling pattern matches.
    const old = [
      'java invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=-998',
      `java cpuset=${MEMCG_OLD_CID} mems_allowed=0`,
      `Task in /kubepods/pod${MEMCG_POD_UID}/${MEMCG_OLD_CID} killed as a result of limit of /kubepods/pod${MEMCG_POD_UID}/${MEMCG_OLD_CID}`,
      'memory: usage 524288kB, limit 524288kB, failcnt 1024',
      `Memory cgroup stats for /kubepods/pod${MEMCG_POD_UID}/${MEMCG_OLD_CID}: cache:32KB rss:524188KB rss_huge:370688KB mapped_file:0KB swap:0KB inactive_anon:0KB active_anon:524188KB`,
      '[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name',
      '[28438]     0 28438  5063909   119961    1661        0          -998 java',
      'Memory cgroup out of memory: Kill process 28438 (java) score 0 or sacrifice child',
      'Killed process 28438 (java) total-vm:20255636kB, anon-rss:466160kB, file-rss:13684kB',
    ];
    const logs: LogLine[] = [];
    for (const [i, t] of MEMCG_BLOCK.entries()) logs.push(kmsg(at(T0, i * 0.001), t, 4), journalKernel(at(T0, i * 0.001), t, 4));
    for (const [i, t] of old.entries()) logs.push(kmsg(at(T0, 60 + i * 0.001), t, 3), journalKernel(at(T0, 60 + i * 0.001), t, 3));
    // OOMKilled belongs to the oom-killed detector (it joins the kernel report with pod status): no draft here at all.
    expect(createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 120), { pods: MEMCG_PODS }))).toEqual([]);
  });

  it('names the container of a cgroup path for rules with subject.cgroup, and falls back to the node', () => {
    const [rule] = compileRuleFile('site.json', { rules: [SITE_MEMCG_RULE] });
    const logs = MEMCG_BLOCK.map((t, i) => kmsg(at(T0, i * 0.001), t));
    const drafts = matchRules([rule!], logs, { nodeName: NODE, pods: MEMCG_PODS });
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({
      category: 'OOMKilled',
      severity: 'warning',
      subject: { kind: 'Container', name: 'ledger-api-6b7c8d9f4-q2x7m', namespace: 'payments', container: 'ledger-api' },
      title: 'Container killed at its memory limit (ledger-api)',
      facts: { rule: 'site-memcg-oom', comm: 'ledger-api', pid: '48211' },
    });
    // The detailPrefix "" leaves no detail, so the finding merges with other detectors' OOMKilled on this container.
    expect(drafts[0]!.detail).toBeUndefined();
    // Evidence: the first line of the matched window (where the cgroup is named) and the kill line.
    expect(drafts[0]!.evidence.map((e) => e.text)).toEqual([MEMCG_BLOCK[3], MEMCG_BLOCK[9]]);
    // Without pod data (or for an unknown pod) the node is named, at the rule's unresolvedSeverity.
    const unresolved = matchRules([rule!], logs, { nodeName: NODE });
    expect(unresolved[0]).toMatchObject({ subject: { kind: 'Node', name: NODE }, severity: 'info' });
  });

  it('reports a whole-node OOM as KernelOOM on the node', () => {
    const logs = [
      kmsg(T0, 'stress-ng-vm invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=1000', 4),
      kmsg(at(T0, 0.01), 'oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/batch.service,task=stress-ng-vm,pid=3121,uid=0'),
      kmsg(at(T0, 0.02), 'Out of memory: Killed process 3121 (stress-ng-vm) total-vm:2108196kB, anon-rss:1983364kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:3920kB oom_score_adj:1000', 3),
    ];
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 30)));
    const oom = byCategory(drafts, 'KernelOOM');
    expect(oom).toHaveLength(1);
    expect(oom[0]!.subject).toEqual({ kind: 'Node', name: NODE });
    expect(oom[0]!.severity).toBe('critical');
    expect(oom[0]!.title).toContain('stress-ng-vm');
    expect(byCategory(drafts, 'OOMKilled')).toEqual([]);
  });

  it('turns repeated link down/up of one NIC into one NetworkLinkDown draft with occurrences, counting journald copies once', () => {
    const logs: LogLine[] = [];
    const flaps = [0, 262, 437, 445, 722, 980, 987, 1136];
    for (const s of flaps) {
      const down = at(T0, s);
      const up = at(T0, s + 2.5);
      for (const [t, text] of [
        [down, 'ixgbe 0000:3b:00.0 enp59s0f0: NIC Link is Down'],
        [at(down, 0.0002), 'ixgbe 0000:3b:00.0 enp59s0f0: speed changed to 0 for port enp59s0f0'],
        [up, 'ixgbe 0000:3b:00.0 enp59s0f0: NIC Link is Up 10 Gbps, Flow Control: RX/TX'],
      ] as const) {
        logs.push(kmsg(t, text), journalKernel(t, text));
      }
    }
    logs.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 1200)));
    const link = byCategory(drafts, 'NetworkLinkDown');
    expect(link).toHaveLength(1);
    expect(link[0]!.subject).toEqual({ kind: 'Node', name: NODE });
    expect(link[0]!.detail).toBe('nic-link-flapping:enp59s0f0');
    expect(link[0]!.occurrences).toBe(8);
    expect(link[0]!.firstAt).toBe(T0);
    expect(link[0]!.at).toBe(at(T0, 1136));
    expect(link[0]!.title).toBe('NIC enp59s0f0 link flapping');
    expect(link[0]!.evidence.length).toBeLessThanOrEqual(5);
    expect(link[0]!.evidence[0]).toEqual({ source: 'kmsg', at: T0, text: 'ixgbe 0000:3b:00.0 enp59s0f0: NIC Link is Down' });
  });

  it('ignores link-down messages of interface bring-up right after boot', () => {
    const boot = '2024-05-09T06:00:00.000Z';
    const logs = [
      kmsg(at(boot, 9.1), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Down'),
      kmsg(at(boot, 11.4), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX'),
      kmsg(at(boot, 12.0), 'igb 0000:07:00.1 enp7s1: igb: enp7s1 NIC Link is Down'),
      kmsg(at(boot, 14.2), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Down'),
      kmsg(at(boot, 16.9), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX'),
      kmsg(at(boot, 20.3), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Down'),
      kmsg(at(boot, 22.0), 'igb 0000:07:00.0 enp7s0: igb: enp7s0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX'),
    ];
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(boot, 3600), { bootTime: boot }));
    expect(byCategory(drafts, 'NetworkLinkDown')).toEqual([]);
  });

  it('holds a runtime link-down as a condition once it lasted a minute, and resolves it when the link comes back', () => {
    const det = createLogRuleDetectorFromRules(RULES);
    const down = kmsg(T0, 'mlx5_core 0000:5e:00.1 ens2f1np1: Link down');
    expect(byCategory(det.detect(view([down], at(T0, 5))), 'NetworkLinkDown')).toEqual([]);
    const second = byCategory(det.detect(view([], at(T0, 90))), 'NetworkLinkDown');
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ lifecycle: 'condition', detail: 'nic-link-down:ens2f1np1', title: 'NIC ens2f1np1 link is down', at: T0 });
    // Still down: the condition is reported again in the next cycle.
    expect(byCategory(det.detect(view([], at(T0, 120))), 'NetworkLinkDown')).toHaveLength(1);
    const up = kmsg(at(T0, 150), 'mlx5_core 0000:5e:00.1 ens2f1np1: Link up');
    expect(byCategory(det.detect(view([up], at(T0, 160))), 'NetworkLinkDown')).toEqual([]);
  });

  it('counts a kernel line once when kmsg and journald both carry it', () => {
    const logs: LogLine[] = [];
    for (let i = 0; i < 3; i++) {
      const t = at(T0, i * 5);
      logs.push(kmsg(t, 'nf_conntrack: nf_conntrack: table full, dropping packet', 4));
      logs.push(journalKernel(t, 'nf_conntrack: nf_conntrack: table full, dropping packet', 4));
    }
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 30)));
    const ct = byCategory(drafts, 'ConntrackFull');
    expect(ct).toHaveLength(1);
    expect(ct[0]!.occurrences).toBe(3);
    expect(ct[0]!.evidence.map((e) => e.source)).toEqual(['kmsg', 'kmsg', 'kmsg']);
  });

  it('pairs the journald copy even when it arrives in a later cycle, but still counts true repeats', () => {
    const det = createLogRuleDetectorFromRules(RULES);
    const text = 'INFO: task jbd2/sdb1-8:731 blocked for more than 122 seconds.';
    const first = det.detect(view([kmsg(T0, text, 3)], at(T0, 1)));
    expect(byCategory(first, 'KernelHungTask')[0]?.occurrences).toBe(1);
    const second = det.detect(view([journalKernel(T0, text, 3)], at(T0, 2)));
    expect(byCategory(second, 'KernelHungTask')).toEqual([]);
    const third = det.detect(view([kmsg(at(T0, 125), text, 3), journalKernel(at(T0, 125), text, 3)], at(T0, 130)));
    expect(byCategory(third, 'KernelHungTask')[0]?.occurrences).toBe(1);
  });

  it('reports PLEG not healthy as a KubeletUnhealthy condition that ends when the lines stop, and ignores SyncLoop (PLEG) INFO lines', () => {
    const det = createLogRuleDetectorFromRules(RULES);
    const info = [0, 4, 9].map((s) =>
      journal('kubelet.service', at(T0, s), `I0509 10:20:0${s} 2499 kubelet.go:1953] SyncLoop (PLEG): "web-0_shop(3e6375ee-7834-4c22-b0c3-94afbcbf1a49)", event: &pleg.PodLifecycleEvent{ID:"3e6375ee-7834-4c22-b0c3-94afbcbf1a49", Type:"ContainerStarted", Data:"701dd02d"}`),
    );
    expect(det.detect(view(info, at(T0, 10)))).toEqual([]);
    const pleg = [0, 5, 10, 15].map((s) =>
      journal('kubelet.service', at(T0, 20 + s), `E0509 10:20:${20 + s} 3263 kubelet.go:2055] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m${10 + s}.61s ago; threshold is 3m0s"`, 3),
    );
    const drafts = det.detect(view(pleg, at(T0, 40)));
    const k = byCategory(drafts, 'KubeletUnhealthy');
    expect(k).toHaveLength(1);
    expect(k[0]).toMatchObject({ subject: { kind: 'Node', name: NODE }, severity: 'critical', lifecycle: 'condition', occurrences: 4, detail: 'kubelet' });
    expect(k[0]!.title).toBe('Kubelet PLEG not healthy (last active 3m25.61s ago)');
    expect(byCategory(det.detect(view([], at(T0, 100))), 'KubeletUnhealthy')).toHaveLength(1);
    expect(byCategory(det.detect(view([], at(T0, 400))), 'KubeletUnhealthy')).toEqual([]);
  });

  it('tells an expired kubelet certificate from a clock that is behind, and ignores x509 lines in container logs', () => {
    const logs = [
      podLog('ops', 'helm-repo-sync-29012340-k8v2x', 'helm', T0, '\tGet "https://charts.example.org/index.yaml": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2024-05-09T10:20:00Z is before 2024-05-09T10:48:43Z'),
      journal('kubelet.service', at(T0, 1), 'E0509 10:20:01.031001    1288 reflector.go:138] k8s.io/client-go/informers/factory.go:134: Failed to watch *v1.Service: failed to list *v1.Service: Get "https://10.0.0.10:6443/api/v1/services?limit=500&resourceVersion=0": x509: certificate has expired or is not yet valid: current time 2024-05-09T10:20:01Z is before 2024-05-09T10:48:43Z', 3),
    ];
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 60)));
    expect(byCategory(drafts, 'CertificateExpiry')).toEqual([]);
    const skew = byCategory(drafts, 'ClockSkew');
    expect(skew).toHaveLength(1);
    expect(skew[0]!.subject).toEqual({ kind: 'Node', name: NODE });
    expect(skew[0]!.evidence[0]!.source).toBe('journald');

    const expired = createLogRuleDetectorFromRules(RULES).detect(
      view([journal('kubelet.service', T0, 'E0509 10:20:00.558122     912 reflector.go:138] k8s.io/client-go/informers/factory.go:134: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.10:6443/api/v1/nodes?limit=500": x509: certificate has expired or is not yet valid: current time 2024-05-09T10:20:00Z is after 2024-05-08T10:22:31Z', 3)], at(T0, 30)),
    );
    expect(byCategory(expired, 'CertificateExpiry')).toHaveLength(1);
    expect(byCategory(expired, 'ClockSkew')).toEqual([]);
  });

  it('reports chrony losing synchronisation and a large offset as ClockSkew on the node', () => {
    const logs = [
      journal('chrony.service', T0, 'Selected source 81.19.96.148'),
      journal('chrony.service', at(T0, 300), 'System clock wrong by 1721.913772 seconds, adjustment started', 4),
      journal('chrony.service', at(T0, 900), "Can't synchronise: no majority", 4),
    ];
    const drafts = byCategory(createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 1000))), 'ClockSkew');
    expect(drafts.map((d) => d.detail).sort()).toEqual(['chrony-clock-wrong', 'chrony-not-synchronised']);
    for (const d of drafts) expect(d.subject).toEqual({ kind: 'Node', name: NODE });
    expect(drafts.find((d) => d.detail === 'chrony-clock-wrong')!.title).toBe('Clock off by 1721.913772 s (chrony)');
  });

  it('reports DNS failures on the container that logs them once they repeat, across cycles', () => {
    const det = createLogRuleDetectorFromRules(RULES);
    const line = (s: number): LogLine =>
      podLog('shop', 'checkout-7d9c8b6f5-kz4wn', 'app', at(T0, s), 'ConnectionError: Error -3 connecting to cart-redis.shop.svc.cluster.local:6379. Temporary failure in name resolution.');
    const noise = podLog('shop', 'checkout-7d9c8b6f5-kz4wn', 'app', at(T0, 1), 'INFO request id=42 error_count=0 upstream=cart-redis');
    expect(byCategory(det.detect(view([line(0), noise, line(30)], at(T0, 40))), 'DNSFailure')).toEqual([]);
    const drafts = byCategory(det.detect(view([line(95)], at(T0, 100))), 'DNSFailure');
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({
      subject: { kind: 'Container', namespace: 'shop', name: 'checkout-7d9c8b6f5-kz4wn', container: 'app' },
      occurrences: 3,
      firstAt: T0,
      at: at(T0, 95),
      lifecycle: 'event',
      detail: 'dns-lookup-failed',
    });
    expect(drafts[0]!.evidence.map((e) => e.at)).toEqual([T0, at(T0, 30), at(T0, 95)]);
    // A lone failure much later starts a new count.
    expect(byCategory(det.detect(view([line(2000)], at(T0, 2001))), 'DNSFailure')).toEqual([]);
  });

  it("reports CoreDNS upstream timeouts on the CoreDNS container and leaves its usual warnings alone", () => {
    const logs = [
      podLog('kube-system', 'coredns-5dd5756b68-x2m9r', 'coredns', T0, '[WARNING] No files matching import glob pattern: /etc/coredns/custom/*.server'),
      ...[1, 29, 51, 55].map((s) =>
        podLog('kube-system', 'coredns-5dd5756b68-x2m9r', 'coredns', at(T0, s), `[ERROR] plugin/errors: 2 cart-redis. A: read udp 10.244.1.9:4${s}806->192.0.2.53:53: i/o timeout`),
      ),
    ];
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 60)));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ category: 'DNSFailure', detail: 'coredns-upstream-error', occurrences: 4, subject: { kind: 'Container', container: 'coredns' } });
  });

  it('needs five kubelet starts within 20 minutes for FrequentKubeletRestart', () => {
    const starts = (n: number): LogLine[] =>
      Array.from({ length: n }, (_, i) => journal('kubelet.service', at(T0, i * 70), 'Started kubelet.service - kubelet: The Kubernetes Node Agent.'));
    expect(byCategory(createLogRuleDetectorFromRules(RULES).detect(view(starts(4), at(T0, 600))), 'KubeletUnhealthy')).toEqual([]);
    const drafts = byCategory(createLogRuleDetectorFromRules(RULES).detect(view(starts(5), at(T0, 600))), 'KubeletUnhealthy');
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ detail: 'kubelet-frequent-restart', occurrences: 5, lifecycle: 'condition', facts: { reason: 'FrequentKubeletRestart' } });
  });

  it('names the pod of a failed sandbox from containerd lines', () => {
    const line = journal(
      'containerd.service',
      T0,
      'time="2024-05-09T10:20:00.123456789Z" level=error msg="RunPodSandbox for &PodSandboxMetadata{Name:web-0,Uid:e67e56d5-68b4-4a72-b381-668044917057,Namespace:shop,Attempt:0,} failed, error" error="failed to setup network for sandbox \\"5f0a1b2c3d4e\\": plugin type=\\"flannel\\" failed (add): loadFlannelSubnetEnv failed: open /run/flannel/subnet.env: no such file or directory"',
      3,
    );
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view([line], at(T0, 10)));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ category: 'RuntimeUnhealthy', subject: { kind: 'Pod', namespace: 'shop', name: 'web-0' } });
    expect(drafts[0]!.message).toContain('/run/flannel/subnet.env');
  });

  it('redacts secrets in evidence and caps evidence while counting every match', () => {
    const logs = Array.from({ length: 12 }, (_, i) =>
      podLog('shop', 'importer-5f4d3c2b1-abcde', 'importer', at(T0, i), `dial tcp: lookup db.internal on 10.96.0.10:53: no such host (dsn=postgres://importer:Sup3rS3cret@db.internal:5432/orders attempt=${i})`),
    );
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view(logs, at(T0, 20)));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.occurrences).toBe(12);
    expect(drafts[0]!.evidence).toHaveLength(5);
    expect(drafts[0]!.evidence[0]!.text).toContain('attempt=0');
    expect(drafts[0]!.evidence.at(-1)!.text).toContain('attempt=11');
    for (const e of drafts[0]!.evidence) {
      expect(e.text).not.toContain('Sup3rS3cret');
      expect(e.text).toContain('postgres://importer:[REDACTED:url-password]@db.internal:5432/orders');
    }
    expect(JSON.stringify(drafts[0]!.facts)).not.toContain('Sup3rS3cret');
  });

  it('splits multi-line journald kernel records into lines', () => {
    const record = journalKernel(T0, 'BUG: kernel NULL pointer dereference, address: 0000000000000010\n#PF: supervisor read access in kernel mode\n#PF: error_code(0x0000) - not-present page');
    const drafts = createLogRuleDetectorFromRules(RULES).detect(view([record], at(T0, 5)));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.evidence).toEqual([{ source: 'journald', at: record.at, text: 'BUG: kernel NULL pointer dereference, address: 0000000000000010' }]);
  });

  it('matchRules runs rules over lines from a clean state', () => {
    const lines = [kmsg(T0, 'EXT4-fs error (device nvme1n1): ext4_validate_block_bitmap:384: comm kworker/u8:2: bg 16: bad block bitmap checksum', 3), kmsg(at(T0, 1), 'EXT4-fs (nvme1n1): Remounting filesystem read-only', 2)];
    const drafts = matchRules(RULES, lines, { nodeName: 'n1' });
    expect(drafts.map((d) => [d.category, d.detail, d.lifecycle]).sort()).toEqual([
      ['FilesystemError', 'ext4-error:nvme1n1', 'event'],
      ['FilesystemError', 'fs-readonly-remount:nvme1n1', 'condition'],
    ]);
    expect(drafts.every((d) => d.subject.name === 'n1' && d.detector === 'log-rules')).toBe(true);
  });
});

describe('rule file validation', () => {
  const good = {
    id: 'site-raid-degraded',
    category: 'FilesystemError',
    severity: 'warning',
    type: 'temporary',
    reason: 'RaidDegraded',
    source: ['kmsg'],
    keywords: ['Disk failure'],
    pattern: 'md/raid\\d+:(?<array>md\\d+): Disk failure on (?<disk>\\w+)',
    subject: { detail: ['array'] },
    title: 'RAID {array} degraded',
    message: 'Disk {disk} failed in {array}.',
    examples: { match: ['md/raid1:md0: Disk failure on sdb1, disabling device.'], noMatch: ['md/raid1:md0: active with 2 out of 2 mirrors'] },
  };

  function errorOf(json: unknown): RuleFileError {
    try {
      compileRuleFile('site.json', json);
    } catch (err) {
      expect(err).toBeInstanceOf(RuleFileError);
      return err as RuleFileError;
    }
    throw new Error('expected a RuleFileError');
  }

  it('accepts a valid site rule and runs it', () => {
    const [rule] = compileRuleFile('site.json', { rules: [good] });
    expect(ruleMatchesExample(rule!, good.examples.match[0]!)).toBe(true);
    const drafts = matchRules([rule!], [kmsg(T0, 'md/raid1:md0: Disk failure on sdb1, disabling device.', 2)], { nodeName: NODE });
    expect(drafts[0]).toMatchObject({ category: 'FilesystemError', title: 'RAID md0 degraded', detail: 'site-raid-degraded:md0' });
  });

  it.each([
    [{ ...good, severity: 'fatal' }, 'site-raid-degraded', 'severity'],
    [{ ...good, pattern: 'md/raid(\\d+' }, 'site-raid-degraded', 'pattern'],
    [{ ...good, subject: { detail: ['device'] } }, 'site-raid-degraded', 'subject.detail'],
    [{ ...good, title: 'RAID {volume} degraded' }, 'site-raid-degraded', 'title'],
    [{ ...good, category: 'RaidDegraded' }, 'site-raid-degraded', 'category'],
    [{ ...good, patern: 'x' }, 'site-raid-degraded', 'patern'],
    [{ ...good, source: ['dmesg'] }, 'site-raid-degraded', 'source.0'],
    [{ ...good, holdSeconds: 60 }, 'site-raid-degraded', 'holdSeconds'],
    [{ ...good, examples: { match: [], noMatch: ['x'] } }, 'site-raid-degraded', 'examples.match'],
    [{ ...good, id: undefined }, '#0', 'id'],
  ])('names file, rule and field of a bad rule (%#)', (rule, id, field) => {
    const err = errorOf({ rules: [rule] });
    expect(err.code).toBe('RULE_FILE_INVALID');
    expect(err.file).toBe('site.json');
    expect(err.ruleId).toBe(id);
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`site.json: rule ${id}: ${field}: `)).toBe(true);
  });

  it('rejects duplicate ids across the folder and extra files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodesage-rules-'));
    writeFileSync(join(dir, 'site.json'), JSON.stringify({ rules: [good] }));
    const extra = join(dir, 'more.json.extra');
    writeFileSync(extra, JSON.stringify({ rules: [{ ...good, id: 'task-hung' }] }));
    expect(() => createLogRuleDetector({ ruleDir: defaultRuleDir(), extraRuleFiles: [extra] })).toThrow(/rule task-hung: id: duplicate id/);
    const det = createLogRuleDetector({ ruleDir: dir });
    expect(det.name).toBe('log-rules');
    expect(det.detect(view([kmsg(T0, 'md/raid1:md0: Disk failure on sdb1, disabling device.', 2)], at(T0, 1)))).toHaveLength(1);
  });

  it('turns off disabled rules and rejects unknown ids in disabledRules', () => {
    const line = kmsg(T0, 'nf_conntrack: nf_conntrack: table full, dropping packet', 4);
    expect(createLogRuleDetectorFromRules(RULES).detect(view([line], at(T0, 1)))).toHaveLength(1);
    expect(createLogRuleDetectorFromRules(RULES, { disabledRules: ['conntrack-table-full'] }).detect(view([line], at(T0, 1)))).toEqual([]);
    expect(() => createLogRuleDetectorFromRules(RULES, { disabledRules: ['conntrack-full'] })).toThrow(UnknownRuleError);
  });

  it('reports a file that is not JSON with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodesage-rules-'));
    writeFileSync(join(dir, 'broken.json'), '{"rules": [');
    expect(() => loadRuleFiles(dir)).toThrow(/broken\.json: not valid JSON/);
  });
});

describe('rule patterns on hostile lines', () => {
  // A log line is attacker-controlled text (a container can print anything): no pattern may backtrack badly.
  const fillers = ['a'.repeat(4000), ' '.repeat(4000), ':'.repeat(4000), '"\\'.repeat(2000), 'ab: '.repeat(1000), '0'.repeat(4000)];
  it.each(RULES.map((r) => [r.spec.id, r] as [string, CompiledRule]))('%s stays linear', (_id, rule) => {
    const t = performance.now();
    for (const example of rule.spec.examples.match) {
      const last = example.split('\n').at(-1)!;
      for (const f of fillers) {
        const mid = Math.floor(last.length / 2);
        ruleMatchesExample(rule, `${last.slice(0, mid)}${f}${last.slice(mid)}`);
        ruleMatchesExample(rule, `${last}${f}`);
        ruleMatchesExample(rule, `${f}${rule.spec.keywords[0] ?? ''}${f}`);
      }
    }
    // Measured well under 10 ms per rule; the bound leaves room for a loaded machine.
    expect(performance.now() - t).toBeLessThan(500);
  });
});
