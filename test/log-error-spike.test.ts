import { describe, expect, it } from 'vitest';
import type { LogLine, NodeView, TemplateStat } from '../daemon/core/types.js';
import { createLogErrorSpikeDetector, logErrorSpikeDetector } from '../daemon/detectors/log-error-spike.js';
import { TemplateStats } from '../daemon/detectors/templates/stats.js';

const T0 = Date.parse('2025-03-12T10:00:00.000Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

const POD = { namespace: 'shop', pod: 'checkout-6c9f8d7b5-q2w4z', uid: '3f1e2d4c-5b6a-4789-8a9b-0c1d2e3f4a5b', container: 'app', restart: 0 };

function app(minutes: number, text: string): LogLine {
  return { source: 'podLog', at: at(minutes), text, stream: 'stdout', container: POD };
}

function coredns(minutes: number, text: string): LogLine {
  return {
    source: 'podLog',
    at: at(minutes),
    text,
    stream: 'stdout',
    container: { namespace: 'kube-system', pod: 'coredns-76f75df574-8qz2n', uid: '9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d', container: 'coredns' },
  };
}

function unit(minutes: number, u: string, text: string, priority = 6): LogLine {
  return { source: 'journald', at: at(minutes), text, unit: u, priority };
}

function view(now: number, templates: TemplateStat[]): NodeView {
  return { nodeName: 'edge-7', now: at(now), events: [], logs: [], containerLogTail: new Map(), templates };
}

/** A healthy, noisy hour of the checkout app, kubelet and coredns, one line every 20 s per source. */
function healthyHour(stats: TemplateStats, from = 0, to = 60): void {
  for (let m = from; m < to; m += 1 / 3) {
    const s = Math.round(m * 60);
    stats.observe(app(m, `2025-03-12 10:${String(Math.floor(m)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}.120  INFO 1 --- [nio-8080-exec-${(s % 9) + 1}] c.e.shop.CheckoutController : Checkout ${40000 + s} completed in ${20 + (s % 70)}ms`));
    // INFO lines with "error" in their data.
    if (s % 120 === 0) stats.observe(app(m, `2025-03-12 10:00:00.000  INFO 1 --- [scheduling-1] c.e.shop.Metrics : flushed metrics: requests=${s} error_rate=0.00 errors=0`));
    if (s % 300 === 0)
      stats.observe(unit(m, 'kubelet.service', `I0312 10:${String(Math.floor(m)).padStart(2, '0')}:00.000000    2384 prober.go:107] "Probe failed" probeType="Readiness" pod="db/pg-0" containerName="postgres" probeResult="failure" output="error: connection in progress"`));
    if (s % 600 === 0) stats.observe(coredns(m, '[WARNING] No files matching import glob pattern: /etc/coredns/custom/*.server'));
    stats.observe(unit(m, 'kubelet.service', `I0312 10:${String(Math.floor(m)).padStart(2, '0')}:00.000000    2384 kubelet.go:2453] "SyncLoop (PLEG): event for pod" pod="shop/web-${s}" event={"Type":"ContainerStarted"}`));
  }
}

describe('LogErrorSpike', () => {
  it('stays quiet on a healthy noisy node: INFO lines that say "error", coredns warnings, periodic lines', () => {
    const stats = new TemplateStats();
    healthyHour(stats);
    const snap = stats.snapshot(at(50));
    // The noise is there, mined, and not error level.
    expect(snap.find((t) => t.template.startsWith('[WARNING] No files matching'))?.isError).toBe(false);
    expect(snap.find((t) => t.template.includes('error_rate='))?.isError).toBe(false);
    expect(snap.find((t) => t.template.includes('"Probe failed"'))?.isError).toBe(false);
    expect(snap.some((t) => t.isError)).toBe(false);
    for (const now of [15, 30, 45, 59.9]) expect(logErrorSpikeDetector.detect(view(now, stats.snapshot(at(now))))).toEqual([]);
  });

  it('reports a new ERROR template in a container after the warm-up, with the line as evidence', () => {
    const stats = new TemplateStats();
    healthyHour(stats, 0, 30);
    const error =
      '2025-03-12 10:30:05.311 ERROR 1 --- [nio-8080-exec-4] c.e.shop.PaymentClient : Payment provider call failed: Connection refused (Connection refused) to payments.shop.svc:8443';
    stats.observe(app(30.1, error));
    stats.observe(app(30.5, error.replace('10:30:05.311', '10:30:29.002').replace('exec-4', 'exec-8')));
    const drafts = logErrorSpikeDetector.detect(view(31, stats.snapshot(at(31))));
    expect(drafts).toHaveLength(1);
    const [d] = drafts;
    expect(d).toMatchObject({
      category: 'LogErrorSpike',
      severity: 'warning',
      lifecycle: 'event',
      detector: 'log-error-spike',
      subject: { kind: 'Container', namespace: 'shop', name: 'checkout-6c9f8d7b5-q2w4z', container: 'app' },
      title: 'New errors in the log of container app of pod shop/checkout-6c9f8d7b5-q2w4z',
      occurrences: 2,
      firstAt: at(30.1),
      at: at(30.5),
    });
    expect(d?.evidence).toHaveLength(1);
    expect(d?.evidence[0]).toEqual({
      source: 'podLog',
      at: at(30.5),
      text: `${error.replace('10:30:05.311', '10:30:29.002').replace('exec-4', 'exec-8')} [new error, 2 lines now]`,
    });
    expect(d?.message).toContain('1 new error template');
    expect(d?.message).toContain('Payment provider call failed');
    expect(d?.facts).toMatchObject({ stream: 'podLog:shop/checkout-6c9f8d7b5-q2w4z/app', newTemplates: 1, burstTemplates: 0, errorLines: 2 });
    // Ten minutes later the template is no longer new and its rate is not a burst.
    stats.observe(app(45, error));
    expect(logErrorSpikeDetector.detect(view(46, stats.snapshot(at(46))))).toEqual([]);
  });

  it('does not call templates of a stream\'s first minutes new', () => {
    const stats = new TemplateStats();
    stats.observe(app(0, 'Starting CheckoutApplication v2.4.1 using Java 21.0.2 with PID 1'));
    stats.observe(app(1, '2025-03-12 10:01:00.000 ERROR 1 --- [main] o.h.engine.jdbc.spi.SqlExceptionHelper : Connection is not available, request timed out after 30000ms.'));
    expect(logErrorSpikeDetector.detect(view(2, stats.snapshot(at(2))))).toEqual([]);
  });

  it('reports a burst of a known error template far above its baseline', () => {
    const stats = new TemplateStats();
    healthyHour(stats, 0, 60);
    // One upstream timeout every 10 minutes for an hour: the baseline.
    for (let m = 0; m < 60; m += 10) stats.observe(app(m + 0.2, `level=error msg="upstream request failed" upstream=inventory.shop.svc:8080 err="context deadline exceeded" duration=${5 + m}s`));
    expect(logErrorSpikeDetector.detect(view(60, stats.snapshot(at(60))))).toEqual([]);
    // Then 40 in two minutes.
    for (let k = 0; k < 40; k++) stats.observe(app(60 + k * 0.05, `level=error msg="upstream request failed" upstream=inventory.shop.svc:8080 err="context deadline exceeded" duration=${5 + k}.${k}s`));
    const drafts = logErrorSpikeDetector.detect(view(62.5, stats.snapshot(at(62.5))));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({
      title: 'Burst of errors in the log of container app of pod shop/checkout-6c9f8d7b5-q2w4z',
      subject: { kind: 'Container', name: 'checkout-6c9f8d7b5-q2w4z', namespace: 'shop', container: 'app' },
      occurrences: 40,
      facts: { newTemplates: 0, burstTemplates: 1, errorLines: 40 },
    });
    expect(drafts[0]?.evidence[0]?.text).toBe(
      'level=error msg="upstream request failed" upstream=inventory.shop.svc:8080 err="context deadline exceeded" duration=44.39s [40 lines now, baseline 0.5 per 5 min]',
    );
    expect(drafts[0]?.message).toContain('1 error template far above baseline');
  });

  it('does not call a steady error rate a burst', () => {
    const stats = new TemplateStats();
    // 30 identical-shape errors per 5 minutes, every bucket for an hour and now.
    for (let m = 0; m < 62; m += 1 / 6) stats.observe(app(m, `E0312 10:00:00.000000       1 reflector.go:147] failed to list *v1.Pod: Unauthorized (retry ${Math.round(m * 6)})`));
    expect(logErrorSpikeDetector.detect(view(62, stats.snapshot(at(62))))).toEqual([]);
  });

  it('reports journald units on the node, one finding per unit', () => {
    const stats = new TemplateStats();
    healthyHour(stats, 0, 20);
    for (let m = 0; m < 20; m += 1) stats.observe(unit(m, 'containerd.service', `time="2025-03-12T10:${String(m).padStart(2, '0')}:00Z" level=info msg="ImageCreate event name:\\"registry.k8s.io/pause:3.9\\""`));
    stats.observe(unit(20.5, 'containerd.service', 'time="2025-03-12T10:20:30Z" level=error msg="failed to reload cni configuration after receiving fs change event" error="cni config load failed: no network config found in /etc/cni/net.d"'));
    stats.observe(unit(20.6, 'kubelet.service', 'E0312 10:20:36.000000    2384 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"'));
    const drafts = logErrorSpikeDetector.detect(view(21, stats.snapshot(at(21))));
    expect(drafts.map((d) => [d.subject, d.detail, d.evidence[0]?.source])).toEqual([
      [{ kind: 'Node', name: 'edge-7' }, 'journald:containerd.service', 'journald'],
      [{ kind: 'Node', name: 'edge-7' }, 'journald:kubelet.service', 'journald'],
    ]);
    expect(drafts[1]?.title).toBe('New errors in the log of kubelet.service on node edge-7');
  });

  it('uses its configured thresholds and works from plain TemplateStat fields', () => {
    const stat: TemplateStat = {
      stream: 'podLog:shop/checkout-6c9f8d7b5-q2w4z/app',
      templateId: '00112233aabbccdd',
      template: 'level=error msg="queue full" dropped=<*>',
      isError: true,
      firstSeen: at(0),
      recentCount: 12,
      baselinePerBucket: 1,
      example: 'level=error msg="queue full" dropped=17',
    };
    expect(logErrorSpikeDetector.detect(view(60, [stat]))).toEqual([]);
    const eager = createLogErrorSpikeDetector({ burstMinLines: 10, burstFactor: 10 });
    const [d] = eager.detect(view(60, [stat]));
    expect(d?.evidence).toEqual([{ source: 'podLog', at: at(60), text: 'level=error msg="queue full" dropped=17 [12 lines now, baseline 1 per bucket]' }]);
    expect(createLogErrorSpikeDetector({ burstMinLines: 10, burstFactor: 13 }).detect(view(60, [stat]))).toEqual([]);
  });
});
