import { describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { KubeNode, KubeNodeCondition, StatsSummary } from '../daemon/core/kube.js';
import { createKubeletHealthDetector, failingHealthChecks } from '../daemon/detectors/kubelet-health.js';
import { createNodeConditionsDetector } from '../daemon/detectors/node-conditions.js';
import { createStatsSummaryDetector, parseQuantity } from '../daemon/detectors/stats-summary.js';

import { ago, FIXTURES, NOW, view } from './helpers/detector-view.js';

function condition(type: string, status: string, reason = '', message = '', since = ago(60 * 24)): KubeNodeCondition {
  return { type, status, reason, message, lastHeartbeatTime: ago(0.3), lastTransitionTime: since };
}

function node(conditions: KubeNodeCondition[], taints?: NonNullable<KubeNode['spec']>['taints']): KubeNode {
  return {
    metadata: { name: 'edge-test' },
    spec: taints ? { taints } : {},
    status: { conditions, capacity: { memory: '8039920Ki', cpu: '4' } },
  };
}

const healthy = () => [
  condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
  condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
  condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
  condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
];

describe('node findings on the runtime-down fixture bundle', () => {
  it('reports NotReady with the kubelet reason, taints, failing /healthz checks and PID exhaustion', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}node-notready-runtime-down`);
    const get = (c: string) => findings.find((f) => f.category === c);
    const nr = get('NodeNotReady')!;
    expect(nr.subject).toEqual({ kind: 'Node', name: 'edge-05' });
    expect(nr.severity).toBe('critical');
    expect(nr.firstSeen).toBe('2025-08-11T03:13:00.000Z');
    expect(nr.evidence.some((e) => e.text.startsWith('condition Ready=False reason KubeletNotReady'))).toBe(true);
    expect(nr.evidence.some((e) => e.text.startsWith('taint node.kubernetes.io/not-ready:NoExecute'))).toBe(true);
    const ku = get('KubeletUnhealthy')!;
    expect(ku.title).toBe('Kubelet health check failing: syncloop (PLEG is not healthy)');
    expect(ku.evidence.some((e) => e.text === '/healthz: [-]syncloop failed: reason withheld')).toBe(true);
    expect(get('RuntimeUnhealthy')!.message).toContain('container runtime is down');
    const pid = get('NodePIDPressure')!;
    expect(pid.severity).toBe('critical');
    expect(pid.title).toContain('96%');
  });
});

describe('node conditions', () => {
  const detector = createNodeConditionsDetector();

  it('says nothing about a healthy node', () => {
    expect(detector.detect(view({ node: node(healthy()) }))).toEqual([]);
  });

  it('reads Unknown conditions as a silent kubelet, not as pressure', () => {
    const unknown = ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((t) =>
      condition(t, 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.', ago(3)),
    );
    unknown.forEach((c) => {
      c.lastHeartbeatTime = ago(4);
    });
    const drafts = detector.detect(view({ node: node(unknown, [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: ago(3) }]) }));
    expect(drafts.map((d) => d.category)).toEqual(['NodeNotReady']);
    expect(drafts[0]!.message).toContain('has not heard from the kubelet for 4m');
    expect(drafts[0]!.facts).toMatchObject({ status: 'Unknown', heartbeatAgeSeconds: 240 });
  });

  it('reports kubelet pressure conditions with the reclaim events that belong to them', () => {
    const conds = healthy();
    conds[0] = condition('MemoryPressure', 'True', 'KubeletHasInsufficientMemory', 'kubelet has insufficient memory available', ago(12));
    const events = [
      {
        metadata: { name: 'edge-test.1', namespace: 'default', uid: 'e1' },
        involvedObject: { kind: 'Node', name: 'edge-test' },
        reason: 'EvictionThresholdMet',
        message: 'Attempting to reclaim memory',
        count: 2,
        firstTimestamp: ago(12),
        lastTimestamp: ago(6),
      },
      {
        metadata: { name: 'edge-test.2', namespace: 'default', uid: 'e2' },
        involvedObject: { kind: 'Node', name: 'edge-test' },
        reason: 'EvictionThresholdMet',
        message: 'Attempting to reclaim ephemeral-storage',
        firstTimestamp: ago(12),
        lastTimestamp: ago(6),
      },
    ];
    const drafts = detector.detect(view({ node: node(conds), events }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ category: 'NodeMemoryPressure', severity: 'critical', firstAt: ago(12) });
    expect(drafts[0]!.evidence.map((e) => e.text)).toEqual([
      expect.stringContaining('condition MemoryPressure=True'),
      'EvictionThresholdMet: Attempting to reclaim memory (x2 over 6m)',
    ]);
  });

  it('reports not-ready taints even without a Ready condition, and node-problem-detector conditions', () => {
    const drafts = detector.detect(
      view({
        node: node([condition('KernelDeadlock', 'True', 'DockerHung', 'kernel: INFO: task docker:20744 blocked for more than 120 seconds.')], [
          { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule', timeAdded: ago(2) },
        ]),
      }),
    );
    expect(drafts.map((d) => [d.category, d.severity])).toEqual([
      ['NodeNotReady', 'critical'],
      ['KernelHungTask', 'warning'],
    ]);
  });
});

describe('kubelet /healthz', () => {
  it('names the failing checks', () => {
    expect(failingHealthChecks('[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\n[-]pleg failed\nhealthz check failed')).toEqual([
      'syncloop: reason withheld',
      'pleg',
    ]);
  });

  it('reports a kubelet that does not answer, and nothing for ok', () => {
    const d = createKubeletHealthDetector();
    expect(d.detect(view({ kubeletHealth: { at: NOW, ok: true, body: 'ok' } }))).toEqual([]);
    const down = d.detect(view({ kubeletHealth: { at: NOW, ok: false, body: 'Get "http://127.0.0.1:10248/healthz": dial tcp 127.0.0.1:10248: connect: connection refused' } }));
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({ category: 'KubeletUnhealthy', severity: 'critical', title: 'Kubelet /healthz is not answering ok' });
    expect(down[0]!.message).toContain('connection refused');
  });
});

describe('stats summary', () => {
  const summary = (node: Partial<StatsSummary['node']>): StatsSummary => ({ node: { nodeName: 'edge-test', ...node } });

  it('reports memory running out against the node capacity and is quiet above the threshold', () => {
    const d = createStatsSummaryDetector();
    const cap = parseQuantity('8039920Ki');
    expect(cap).toBe(8039920 * 1024);
    const low = d.detect(view({ node: node(healthy()), statsSummary: summary({ memory: { time: ago(0.1), availableBytes: cap * 0.015, workingSetBytes: cap * 0.985 } }) }));
    expect(low.map((x) => [x.category, x.severity, x.detail])).toEqual([['NodeMemoryPressure', 'critical', undefined]]);
    const fine = d.detect(view({ node: node(healthy()), statsSummary: summary({ memory: { availableBytes: cap * 0.3, workingSetBytes: cap * 0.7 }, rlimit: { maxpid: 32768, curproc: 900 } }) }));
    expect(fine).toEqual([]);
  });

  it('warns at 85% of pid_max', () => {
    const drafts = createStatsSummaryDetector().detect(view({ statsSummary: summary({ rlimit: { maxpid: 32768, curproc: 29000 } }) }));
    expect(drafts.map((x) => [x.category, x.severity])).toEqual([['NodePIDPressure', 'warning']]);
  });
});
