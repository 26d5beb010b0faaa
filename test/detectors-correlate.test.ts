import { describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { Category, Finding, FindingDraft, Subject } from '../daemon/core/types.js';
import { correlate, draftId } from '../daemon/detectors/correlate.js';

import { ago, FIXTURES, NOW } from './helpers/detector-view.js';

const NODE: Subject = { kind: 'Node', name: 'edge-test' };
const APP: Subject = { kind: 'Container', namespace: 'demo', name: 'app-1', container: 'app' };

function draft(category: Category, subject: Subject, extra: Partial<FindingDraft> = {}): FindingDraft {
  return {
    category,
    severity: 'warning',
    subject,
    title: category,
    message: category,
    evidence: [],
    at: NOW,
    lifecycle: 'condition',
    detector: 'test',
    ...extra,
  };
}

function find(findings: Finding[], category: string, name?: string): Finding {
  const f = findings.find((x) => x.category === category && (name === undefined || x.subject.name === name || x.title.startsWith(name)));
  if (!f) throw new Error(`no ${category} finding`);
  return f;
}

describe('correlation on fixture bundles', () => {
  it('makes the OOM kill the root cause of the crash loop', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}crashloop-oom-memcg`);
    const crash = find(findings, 'CrashLoop');
    const oom = find(findings, 'OOMKilled');
    expect(crash.causes).toEqual([oom.id]);
    expect(crash.rootCause).toBe(false);
    expect(oom.rootCause).toBe(true);
    expect(findings[0]!.id).toBe(oom.id);
  });

  it('makes the full disk the root cause of liveness kills and pressure evictions', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}probe-liveness-disk-full`);
    const disk = find(findings, 'DiskFull');
    const pressure = find(findings, 'NodeDiskPressure');
    const liveness = find(findings, 'ProbeFailure', 'Liveness');
    const evicted = find(findings, 'Evicted');
    expect(liveness.causes).toEqual(expect.arrayContaining([disk.id, pressure.id]));
    expect(liveness.rootCause).toBe(false);
    expect(evicted.causes).toEqual(expect.arrayContaining([disk.id, pressure.id]));
    expect(disk.rootCause).toBe(true);
    // The kubelet's DiskPressure is the full nodefs seen from the kubelet: the disk is what to fix.
    expect(pressure.causes).toEqual([disk.id]);
    expect(pressure.rootCause).toBe(false);
    expect(findings.filter((f) => f.rootCause).map((f) => f.category)).toEqual(['DiskFull']);
    // Liveness and readiness of the one transcoder container failing together are one problem.
    expect(findings.filter((f) => f.category === 'ProbeFailure')).toHaveLength(1);
  });

  it('chains NotReady to the kubelet and the kubelet to the runtime', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}node-notready-runtime-down`);
    const nr = find(findings, 'NodeNotReady');
    const ku = find(findings, 'KubeletUnhealthy');
    const rt = find(findings, 'RuntimeUnhealthy');
    expect(nr.causes).toEqual(expect.arrayContaining([ku.id, rt.id]));
    expect(ku.causes).toEqual([rt.id]);
    expect(rt.rootCause).toBe(true);
    expect(nr.rootCause).toBe(false);
  });
});

describe('correlate()', () => {
  it('never links an eviction for the pod\'s own ephemeral-storage limit to node disk pressure', () => {
    const pressure = draft('NodeDiskPressure', NODE, { firstAt: ago(60) });
    const limit = draft('Evicted', { kind: 'Pod', namespace: 'demo', name: 'p1' }, { lifecycle: 'event', at: ago(10), facts: { cause: 'container-ephemeral-limit', resource: 'ephemeral-storage' } });
    const node = draft('Evicted', { kind: 'Pod', namespace: 'demo', name: 'p2' }, { lifecycle: 'event', at: ago(10), facts: { cause: 'node-pressure', resource: 'ephemeral-storage' } });
    const memory = draft('Evicted', { kind: 'Pod', namespace: 'demo', name: 'p3' }, { lifecycle: 'event', at: ago(10), facts: { cause: 'node-pressure', resource: 'memory' } });
    const out = correlate([pressure, limit, node, memory]);
    expect(out[1]!.causes).toBeUndefined();
    expect(out[2]!.causes).toEqual([draftId(pressure)]);
    // A memory eviction is not explained by disk pressure.
    expect(out[3]!.causes).toBeUndefined();
  });

  it('links a container OOM to a node OOM only when they happen at the same time', () => {
    const kernel = draft('KernelOOM', NODE, { lifecycle: 'event', at: ago(2), firstAt: ago(3) });
    const now = draft('OOMKilled', APP, { lifecycle: 'event', at: ago(2) });
    const old = draft('OOMKilled', { ...APP, container: 'other' }, { lifecycle: 'event', at: ago(180) });
    const out = correlate([kernel, now, old]);
    expect(out[1]!.causes).toEqual([draftId(kernel)]);
    expect(out[2]!.causes).toBeUndefined();
  });

  it('links NotReady to link flaps that overlap it, not to ones long before', () => {
    const notReady = draft('NodeNotReady', NODE, { firstAt: ago(4) });
    const flap = draft('NetworkLinkDown', NODE, { lifecycle: 'event', detail: 'eth0', firstAt: ago(25), at: ago(4.5) });
    const oldFlap = draft('NetworkLinkDown', NODE, { lifecycle: 'event', detail: 'eth1', firstAt: ago(300), at: ago(290) });
    const out = correlate([notReady, flap, oldFlap]);
    expect(out[0]!.causes).toEqual([draftId(flap)]);
  });

  it('links a crash loop to the liveness probe that kills it, not to a readiness probe', () => {
    const crash = draft('CrashLoop', APP, { facts: { probeKill: true, lastReason: 'Error' } });
    const liveness = draft('ProbeFailure', APP, { facts: { probe: 'liveness' } });
    const otherPod = draft('ProbeFailure', { ...APP, name: 'app-2' }, { facts: { probe: 'liveness' } });
    expect(correlate([crash, liveness, otherPod])[0]!.causes).toEqual([draftId(liveness)]);
    const readiness = draft('ProbeFailure', APP, { facts: { probe: 'readiness' } });
    expect(correlate([crash, readiness])[0]!.causes).toBeUndefined();
    // Both probes of one container merged into one finding: its liveness part kills the container.
    const both = draft('ProbeFailure', APP, { facts: { probe: 'liveness,readiness' } });
    expect(correlate([crash, both])[0]!.causes).toEqual([draftId(both)]);
  });

  it("links a container's error burst to its own crash loop, and a failed container to the memory or disk that ran out", () => {
    const crash = draft('CrashLoop', APP, { facts: { exitCode: 1, lastReason: 'Error' } });
    const burst = draft('LogErrorSpike', APP, { lifecycle: 'event' });
    const otherBurst = draft('LogErrorSpike', { ...APP, name: 'app-2' }, { lifecycle: 'event' });
    const out = correlate([crash, burst, otherBurst]);
    expect(out[1]!.causes).toEqual([draftId(crash)]);
    expect(out[2]!.causes).toBeUndefined();

    const job = { ...APP, name: 'export-1', container: 'job' };
    const oom = draft('KernelOOM', NODE, { lifecycle: 'event', at: ago(3) });
    const killed = draft('ContainerFailed', job, { lifecycle: 'condition', at: ago(3), facts: { exitCode: 137, reason: 'Error' } });
    const failedOwn = draft('ContainerFailed', { ...job, name: 'export-2' }, { at: ago(3), facts: { exitCode: 1, reason: 'Error' } });
    const full = draft('DiskFull', NODE);
    const enospc = draft('ContainerFailed', { ...job, name: 'export-3' }, { at: ago(3), facts: { exitCode: 1 }, evidence: [{ source: 'podLog', at: ago(3), text: "OSError: [Errno 28] No space left on device: '/tmp/out.csv'" }] });
    const linked = correlate([oom, killed, failedOwn, full, enospc]);
    expect(linked[1]!.causes).toEqual([draftId(oom)]);
    expect(linked[2]!.causes).toBeUndefined();
    expect(linked[4]!.causes).toEqual([draftId(full)]);
  });

  it('returns copies and never creates a cycle', () => {
    const all: FindingDraft[] = [
      draft('CrashLoop', APP, { facts: { lastReason: 'OOMKilled', probeKill: true } }),
      draft('OOMKilled', APP, { lifecycle: 'event' }),
      draft('ProbeFailure', APP, { facts: { probe: 'liveness' } }),
      draft('ContainerFailed', { ...APP, container: 'job' }, { facts: { exitCode: 137 } }),
      draft('LogErrorSpike', APP, { lifecycle: 'event' }),
      draft('LogErrorSpike', NODE, { lifecycle: 'event', detail: 'journald:kubelet.service' }),
      draft('Evicted', { kind: 'Pod', namespace: 'demo', name: 'p' }, { lifecycle: 'event', facts: { cause: 'node-pressure' } }),
      draft('ImagePull', APP, { facts: { cause: 'network' } }),
      draft('KernelOOM', NODE, { lifecycle: 'event' }),
      draft('NodeMemoryPressure', NODE),
      draft('NodeDiskPressure', NODE),
      draft('NodePIDPressure', NODE),
      draft('DiskFull', NODE),
      draft('InodeExhaustion', NODE),
      draft('NodeNotReady', NODE),
      draft('KubeletUnhealthy', NODE),
      draft('RuntimeUnhealthy', NODE),
      draft('NetworkLinkDown', NODE, { lifecycle: 'event' }),
      draft('CertificateExpiry', NODE),
    ];
    const frozen = JSON.stringify(all);
    const out = correlate(all);
    expect(JSON.stringify(all)).toBe(frozen);
    const edges = new Map(out.map((d) => [draftId(d), d.causes ?? []]));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const acyclic = (id: string): boolean => {
      if (done.has(id)) return true;
      if (visiting.has(id)) return false;
      visiting.add(id);
      const ok = (edges.get(id) ?? []).every(acyclic);
      visiting.delete(id);
      done.add(id);
      return ok;
    };
    expect([...edges.keys()].every(acyclic)).toBe(true);
    // Everything links somewhere except the node-level roots.
    const roots = out.filter((d) => !d.causes || d.causes.length === 0).map((d) => d.category).sort();
    expect(roots).toEqual(['CertificateExpiry', 'DiskFull', 'InodeExhaustion', 'NetworkLinkDown', 'NodeMemoryPressure', 'NodePIDPressure', 'RuntimeUnhealthy']);
  });
});
