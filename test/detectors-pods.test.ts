import { describe, expect, it } from 'vitest';
import { analyzeBundle } from '../daemon/analyze.js';
import type { KubeContainerStatus, KubeEvent, KubePod } from '../daemon/core/kube.js';
import type { Finding, LogLine } from '../daemon/core/types.js';
import { parseConfigProblem, createContainerConfigDetector } from '../daemon/detectors/container-config.js';
import { createCrashLoopDetector } from '../daemon/detectors/crashloop.js';
import { createEvictedDetector, parseEviction } from '../daemon/detectors/evicted.js';
import { classifyImagePull, createImagePullDetector } from '../daemon/detectors/image-pull.js';
import { createOomKilledDetector, kernelLines, parseMemcgOomKills } from '../daemon/detectors/oom-killed.js';
import { keyLogLine } from '../daemon/detectors/pod-status.js';
import { createProbeFailureDetector } from '../daemon/detectors/probe-failure.js';
import { ruleHint } from '../daemon/diagnoser/rule-hint.js';
import { NodeState } from '../daemon/state/node-state.js';

import { ago, FIXTURES, NOW, view } from './helpers/detector-view.js';

function pod(name: string, statuses: KubeContainerStatus[], extra: { start?: string; phase?: string; ns?: string; uid?: string; limits?: Record<string, string> } = {}): KubePod {
  return {
    metadata: { name, namespace: extra.ns ?? 'demo', uid: extra.uid ?? `uid-${name}` },
    spec: { containers: statuses.map((s) => ({ name: s.name, image: `registry.local/${s.name}:1.0`, resources: extra.limits ? { limits: extra.limits } : {} })) },
    status: {
      phase: extra.phase ?? 'Running',
      startTime: extra.start ?? ago(24 * 60),
      conditions: [{ type: 'Ready', status: statuses.every((s) => s.ready) ? 'True' : 'False', lastTransitionTime: ago(30) }],
      containerStatuses: statuses,
    },
  };
}

function podEvent(podName: string, container: string | undefined, reason: string, message: string, first: string, last: string, count = 1): KubeEvent {
  return {
    metadata: { name: `${podName}.${reason}.${first}`, namespace: 'demo', uid: `${podName}-${reason}-${first}-${message.length}` },
    involvedObject: { kind: 'Pod', name: podName, namespace: 'demo', ...(container ? { fieldPath: `spec.containers{${container}}` } : {}) },
    reason,
    message,
    type: 'Warning',
    count,
    firstTimestamp: first,
    lastTimestamp: last,
  };
}

function bySubject(findings: Finding[], category: string, container: string): Finding | undefined {
  return findings.find((f) => f.category === category && f.subject.container === container);
}

describe('pod detectors on fixture bundles', () => {
  it('reports a crash loop caused by memcg OOM kills, with exit code, log tail and kernel evidence', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}crashloop-oom-memcg`);
    const crash = bySubject(findings, 'CrashLoop', 'cart');
    const oom = bySubject(findings, 'OOMKilled', 'cart');
    expect(crash).toBeDefined();
    expect(oom).toBeDefined();
    expect(crash!.subject).toEqual({ kind: 'Container', namespace: 'shop', name: 'cart-7c9f8d6b4-x2x9q', container: 'cart' });
    expect(crash!.severity).toBe('critical');
    expect(crash!.title).toContain('exit code 137');
    expect(crash!.message).toContain('2025-03-04T09:58:52Z');
    expect(crash!.evidence.some((e) => e.source === 'podStatus' && e.text.includes('CrashLoopBackOff'))).toBe(true);
    // The log lines are those of the instance that died (5.log), up to the last one it wrote.
    const logs = crash!.evidence.filter((e) => e.source === 'podLog');
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.at(-1)!.text).toContain('resident set above 240MB');
    expect(logs.every((e) => e.at >= '2025-03-04T09:57:40')).toBe(true);

    expect(oom!.severity).toBe('critical');
    expect(oom!.count).toBe(2);
    expect(oom!.title).toContain('256Mi');
    const kills = oom!.evidence.filter((e) => e.source === 'kmsg' && e.text.startsWith('Memory cgroup out of memory'));
    expect(kills.map((e) => e.text.match(/Killed process (\d+)/)?.[1])).toEqual(['40211', '41877']);
    expect(findings.some((f) => f.category === 'KernelOOM')).toBe(false);
  });

  it('splits image pull failures by cause and ignores a pull that failed before and works now', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}image-pull-causes`);
    const pulls = findings.filter((f) => f.category === 'ImagePull');
    const cause = (c: string) => bySubject(pulls, 'ImagePull', c)?.title.split(': ').at(-1);
    expect(cause('api')).toBe('auth');
    expect(cause('worker')).toBe('not-found');
    expect(cause('agent')).toBe('network');
    expect(cause('redis')).toBe('rate-limit');
    expect(pulls).toHaveLength(4);
    expect(pulls.every((f) => f.severity === 'warning')).toBe(true);
    const auth = bySubject(pulls, 'ImagePull', 'api')!;
    expect(auth.title).toContain('ghcr.io/acme/billing:2.0.1');
    expect(auth.evidence.some((e) => e.source === 'event' && e.text.includes('401 Unauthorized'))).toBe(true);
    expect(findings.some((f) => f.subject.name.startsWith('reports-'))).toBe(false);
  });

  it('names the missing Secret, the missing key and the unmountable ConfigMap', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}container-config-missing-refs`);
    const cfg = findings.filter((f) => f.category === 'ContainerConfig');
    expect(cfg).toHaveLength(3);
    expect(bySubject(cfg, 'ContainerConfig', 'ledger')!.title).toContain('Secret "ledger-db" not found');
    expect(bySubject(cfg, 'ContainerConfig', 'notifier')!.title).toContain('key SMTP_PASSWORD missing in Secret payments/notifier-smtp');
    const web = cfg.find((f) => f.subject.name === 'web-6c5b4a3d2-fk8lp')!;
    expect(web.subject).toEqual({ kind: 'Pod', namespace: 'payments', name: 'web-6c5b4a3d2-fk8lp' });
    expect(web.title).toContain('ConfigMap "web-nginx-conf" not found');
    expect(web.evidence.some((e) => e.source === 'event' && e.text.startsWith('FailedMount'))).toBe(true);
    expect(findings.some((f) => f.subject.name.startsWith('api-'))).toBe(false);
  });

  it('reports liveness kills (exit 137) as ProbeFailure, never as OOMKilled or an inferred CrashLoop', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}probe-liveness-disk-full`);
    const probes = findings.filter((f) => f.category === 'ProbeFailure' && f.subject.container === 'transcoder');
    // Liveness and readiness failing on one container: one finding that names both.
    expect(probes).toHaveLength(1);
    const liveness = probes.find((f) => f.title.startsWith('Liveness'));
    expect(liveness).toBeDefined();
    expect(liveness!.title).toContain('4 restarts');
    expect(liveness!.message).toContain('exit code 137 is the kill signal, not an OOM');
    expect(liveness!.evidence.some((e) => e.source === 'event' && e.text.includes('failed liveness probe, will be restarted'))).toBe(true);
    expect(liveness!.message).toContain('Also seen: Readiness probe failing');
    expect(liveness!.evidence.some((e) => e.text.startsWith('Unhealthy: Readiness probe failed'))).toBe(true);
    expect(findings.some((f) => f.category === 'OOMKilled' || f.category === 'CrashLoop')).toBe(false);
    const evicted = findings.find((f) => f.category === 'Evicted')!;
    expect(evicted.subject).toEqual({ kind: 'Pod', namespace: 'media', name: 'thumbnailer-5d6c7b8a9-c3v4b' });
    expect(evicted.title).toContain('node low on ephemeral-storage');
    expect(evicted.severity).toBe('warning');
  });

  it('stays quiet on a healthy node full of old, resolved noise', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}healthy-noisy-node`);
    expect(findings.filter((f) => f.severity !== 'info')).toEqual([]);
    // The only thing left is the 4-day-old evicted pod, as information.
    expect(findings.map((f) => [f.category, f.subject.name, f.severity])).toEqual([['Evicted', 'batch-import-6a7b8c9d0-r4t5y', 'info']]);
  });
});

describe('CrashLoop', () => {
  const detector = createCrashLoopDetector();

  it('infers a crash loop from restarts within the window even between back-offs', () => {
    const p = pod('api-1', [
      {
        name: 'api',
        restartCount: 4,
        ready: true,
        state: { running: { startedAt: ago(1) } },
        lastState: { terminated: { exitCode: 1, reason: 'Error', startedAt: ago(3), finishedAt: ago(1.1) } },
      },
    ], { start: ago(20) });
    const drafts = detector.detect(view({ pods: [p] }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.severity).toBe('critical');
    expect(drafts[0]!.message).toContain('restarted 4 times in the last 60 minutes');
  });

  it('does not report a single old restart, nor one outside a shorter configured window', () => {
    const p = pod('api-2', [
      {
        name: 'api',
        restartCount: 1,
        ready: true,
        state: { running: { startedAt: ago(90) } },
        lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: ago(90) } },
      },
    ]);
    expect(detector.detect(view({ pods: [p] }))).toEqual([]);
    const three = pod('api-3', [
      { name: 'api', restartCount: 3, ready: true, state: { running: { startedAt: ago(20) } }, lastState: { terminated: { exitCode: 1, finishedAt: ago(20) } } },
    ], { start: ago(40) });
    expect(detector.detect(view({ pods: [three] }))).toHaveLength(1);
    expect(createCrashLoopDetector({ windowMinutes: 10 }).detect(view({ pods: [three] }))).toEqual([]);
  });

  it('leaves repeated OOM kills without back-off to the OOMKilled detector', () => {
    const p = pod('cache-1', [
      {
        name: 'cache',
        restartCount: 3,
        ready: true,
        state: { running: { startedAt: ago(2) } },
        lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: ago(2) } },
      },
    ], { start: ago(30) });
    expect(detector.detect(view({ pods: [p] }))).toEqual([]);
    const oom = createOomKilledDetector().detect(view({ pods: [p] }));
    expect(oom.map((d) => [d.category, d.subject.container])).toEqual([['OOMKilled', 'cache']]);
  });

  it('reports init containers in CrashLoopBackOff and skips completed Job pods', () => {
    const p: KubePod = {
      metadata: { name: 'migrate-1', namespace: 'demo', uid: 'u1' },
      status: {
        phase: 'Pending',
        startTime: ago(10),
        initContainerStatuses: [
          { name: 'wait-db', restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2, reason: 'Error', finishedAt: ago(1) } } },
        ],
        containerStatuses: [{ name: 'app', restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }],
      },
    };
    const job = pod('job-1', [
      { name: 'job', restartCount: 3, state: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: ago(2) } }, lastState: { terminated: { exitCode: 1, finishedAt: ago(5) } } },
    ], { phase: 'Succeeded', start: ago(20) });
    const drafts = detector.detect(view({ pods: [p, job] }));
    expect(drafts.map((d) => d.subject.container)).toEqual(['wait-db']);
    expect(drafts[0]!.title).toMatch(/^Init container wait-db/);
    expect(drafts[0]!.severity).toBe('warning');
  });

  it('picks the line that explains the crash, not a stack frame', () => {
    const line = (text: string): LogLine => ({ source: 'podLog', at: NOW, text });
    const lines = [
      line('Exception in thread "main" java.lang.IllegalStateException: Failed to load ApplicationContext'),
      line('\tat org.example.Main.main(Main.java:12)'),
      line('Caused by: java.net.UnknownHostException: postgres.db.svc'),
      line('\tat java.base/java.net.InetAddress.getAllByName(InetAddress.java:1302)'),
      line('\t... 12 more'),
    ];
    expect(keyLogLine(lines)!.text).toBe('Caused by: java.net.UnknownHostException: postgres.db.svc');
    expect(keyLogLine([line('panic: runtime error: index out of range [3] with length 3'), line('goroutine 1 [running]:'), line('main.main()'), line('\t/src/main.go:14 +0x1d')])!.text).toMatch(/^panic:/);
  });
});

describe('OOMKilled from kernel memcg reports', () => {
  it('reads the old two-line format and attributes it by pod UID and container ID', () => {
    const lines: LogLine[] = [
      'java invoked oom-killer: gfp_mask=0x24000c0, order=0, oom_score_adj=999',
      'Task in /kubepods/burstable/pod0d5b8c3e-2f1a-4e6b-9c7d-8a9b0c1d2e3f/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 killed as a result of limit of /kubepods/burstable/pod0d5b8c3e-2f1a-4e6b-9c7d-8a9b0c1d2e3f/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      'memory: usage 1048576kB, limit 1048576kB, failcnt 412',
      'Memory cgroup out of memory: Kill process 3121 (java) score 1998 or sacrifice child',
      'Killed process 3121 (java) total-vm:4718592kB, anon-rss:1040000kB, file-rss:16000kB, shmem-rss:0kB',
    ].map((text, i) => ({ source: 'kmsg' as const, at: new Date(Date.parse(ago(5)) + i).toISOString(), text }));
    const kills = parseMemcgOomKills(lines);
    expect(kills).toHaveLength(1);
    expect(kills[0]).toMatchObject({
      pid: 3121,
      comm: 'java',
      podUids: ['0d5b8c3e-2f1a-4e6b-9c7d-8a9b0c1d2e3f'],
      containerIds: ['9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
      limitLine: 'memory: usage 1048576kB, limit 1048576kB, failcnt 412',
    });

    const two: KubePod = {
      metadata: { name: 'search-0', namespace: 'demo', uid: '0d5b8c3e-2f1a-4e6b-9c7d-8a9b0c1d2e3f' },
      spec: { containers: [{ name: 'search', resources: { limits: { memory: '1Gi' } } }, { name: 'sidecar' }] },
      status: {
        phase: 'Running',
        containerStatuses: [
          { name: 'search', restartCount: 0, ready: true, containerID: 'containerd://9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', state: { running: {} } },
          { name: 'sidecar', restartCount: 0, ready: true, state: { running: {} } },
        ],
      },
    };
    // A child process was killed: the container keeps running, only the kernel knows.
    const drafts = createOomKilledDetector().detect(view({ pods: [two], logs: lines }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.subject).toEqual({ kind: 'Container', namespace: 'demo', name: 'search-0', container: 'search' });
    expect(drafts[0]!.severity).toBe('warning');
    expect(drafts[0]!.title).toContain('1Gi');
  });

  it('attributes a report split across two detection cycles to its container, and counts the kill once', () => {
    const uid = '0d5b8c3e-2f1a-4e6b-9c7d-8a9b0c1d2e3f';
    const cid = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
    const cg = `/kubepods/burstable/pod${uid}/${cid}`;
    const t0 = Date.parse(NOW) - 4000;
    const line = (ms: number, text: string): LogLine => ({ source: 'kmsg', at: new Date(t0 + ms).toISOString(), text });
    const before = [
      line(0, 'java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=999'),
      line(1, 'memory: usage 1048576kB, limit 1048576kB, failcnt 412'),
      line(2, `oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=${cid},mems_allowed=0,oom_memcg=${cg},task_memcg=${cg},task=java,pid=3121,uid=0`),
    ];
    const after = [line(3, 'Memory cgroup out of memory: Killed process 3121 (java) total-vm:4718592kB, anon-rss:1040000kB, file-rss:16000kB, shmem-rss:0kB, UID:0')];
    const search: KubePod = {
      metadata: { name: 'search-0', namespace: 'demo', uid },
      spec: { containers: [{ name: 'search', resources: { limits: { memory: '1Gi' } } }] },
      status: { phase: 'Running', containerStatuses: [{ name: 'search', restartCount: 0, ready: true, containerID: `containerd://${cid}`, state: { running: {} } }] },
    };
    const state = new NodeState('edge-test');
    const detector = createOomKilledDetector();
    const cycle = (lines: LogLine[], at: number) => {
      state.ingest(lines.map((l) => ({ type: 'log' as const, line: l })));
      const v = state.takeView(new Date(t0 + at).toISOString());
      return detector.detect({ ...v, pods: [search] });
    };
    // The oom-kill: line alone already names the memcg: the kill is counted in the first cycle...
    const first = cycle(before, 2500);
    expect(first.map((d) => d.subject)).toEqual([{ kind: 'Container', namespace: 'demo', name: 'search-0', container: 'search' }]);
    // ...and the "Killed process" line arriving a cycle later is the same kill, not a new one on the Node.
    const second = cycle(after, 4000);
    expect(second.filter((d) => d.subject.kind === 'Node')).toEqual([]);

    // Without the structured line the kill line needs the report's earlier lines, which came a cycle before.
    const state2 = new NodeState('edge-test');
    const oldFormat = [
      line(0, 'java invoked oom-killer: gfp_mask=0x24000c0, order=0, oom_score_adj=999'),
      line(1, `Task in ${cg} killed as a result of limit of ${cg}`),
      line(2, 'memory: usage 1048576kB, limit 1048576kB, failcnt 412'),
    ];
    state2.ingest(oldFormat.map((l) => ({ type: 'log' as const, line: l })));
    expect(detector.detect({ ...state2.takeView(new Date(t0 + 2500).toISOString()), pods: [search] })).toEqual([]);
    state2.ingest([{ type: 'log', line: line(3, 'Memory cgroup out of memory: Killed process 3121 (java) total-vm:4718592kB, anon-rss:1040000kB') }]);
    const drafts = detector.detect({ ...state2.takeView(new Date(t0 + 4000).toISOString()), pods: [search] });
    expect(drafts.map((d) => d.subject)).toEqual([{ kind: 'Container', namespace: 'demo', name: 'search-0', container: 'search' }]);
    // Seen once: the next cycle, with the report only in the context, reports no new kill.
    expect(detector.detect({ ...state2.takeView(new Date(t0 + 5500).toISOString()), pods: [search] })).toEqual([]);
  });

  it('counts a kernel line mirrored into journald once and ignores the global OOM killer', () => {
    const kill = 'Memory cgroup out of memory: Killed process 777 (python3) total-vm:812344kB, anon-rss:520000kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:1200kB oom_score_adj:998';
    const logs: LogLine[] = [
      { source: 'kmsg', at: ago(3), text: kill },
      { source: 'journald', unit: 'kernel', at: new Date(Date.parse(ago(3)) + 400).toISOString(), text: kill },
      { source: 'kmsg', at: ago(2), text: 'Out of memory: Killed process 999 (stress) total-vm:9000000kB, anon-rss:8000000kB' },
    ];
    expect(kernelLines(logs)).toHaveLength(2);
    expect(parseMemcgOomKills(kernelLines(logs)).map((k) => k.pid)).toEqual([777]);
  });

  it('reports a memcg kill that matches no pod on the node as OOMKilled on the Node, never KernelOOM', () => {
    const logs: LogLine[] = [
      { source: 'kmsg', at: ago(4), text: 'oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/fluent-bit.service,task_memcg=/system.slice/fluent-bit.service,task=fluent-bit,pid=812,uid=0' },
      { source: 'kmsg', at: ago(4), text: 'Memory cgroup out of memory: Killed process 812 (fluent-bit) total-vm:412000kB, anon-rss:199000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:600kB oom_score_adj:0' },
    ];
    const drafts = createOomKilledDetector().detect(view({ pods: [], logs }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.category).toBe('OOMKilled');
    expect(drafts[0]!.subject).toEqual({ kind: 'Node', name: 'edge-test' });
    expect(drafts[0]!.detail).toBe('/system.slice/fluent-bit.service');
    expect(drafts[0]!.occurrences).toBe(1);
    expect(drafts[0]!.message).toContain('not the node running out of memory');
    // Kernels that print only the structured line still count one kill.
    expect(parseMemcgOomKills(logs.slice(0, 1)).map((k) => [k.pid, k.comm, k.cgroup])).toEqual([[812, 'fluent-bit', '/system.slice/fluent-bit.service']]);
  });

  it('ignores kills older than the window', () => {
    const logs: LogLine[] = [{ source: 'kmsg', at: ago(300), text: 'Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB' }];
    expect(createOomKilledDetector().detect(view({ logs }))).toEqual([]);
  });
});

describe('ImagePull cause', () => {
  it.each([
    ['pull access denied for acme/private, repository does not exist or may require \'docker login\': denied: requested access to the resource is denied', 'auth'],
    ['failed to resolve reference "r.example/app:1": unexpected status from HEAD request to https://r.example/v2/app/manifests/1: 403 Forbidden', 'auth'],
    ['failed to resolve reference "docker.io/library/nginx:9.9": docker.io/library/nginx:9.9: not found', 'not-found'],
    ['Error response from daemon: manifest for quay.io/acme/x:v1 not found: manifest unknown: manifest unknown', 'not-found'],
    ['failed to do request: Head "https://r.local/v2/a/manifests/1": dial tcp 10.0.0.5:443: i/o timeout', 'network'],
    ['failed to do request: Head "https://r.local/v2/a/manifests/1": x509: certificate signed by unknown authority', 'network'],
    ['failed to do request: Head "https://r.local/v2/a/manifests/1": dial tcp 10.0.0.5:443: connect: connection refused', 'network'],
    ['unexpected status code https://registry-1.docker.io/v2/library/redis/manifests/7: 429 Too Many Requests - Server message: toomanyrequests', 'rate-limit'],
    ['something nobody has seen before', 'unknown'],
  ])('%s → %s', (text, cause) => {
    expect(classifyImagePull([text])).toBe(cause);
  });

  it('uses the waiting reason for invalid names and the Never pull policy', () => {
    expect(classifyImagePull(['couldn\'t parse image reference "Nginx:Latest"'], 'InvalidImageName')).toBe('invalid-name');
    expect(classifyImagePull(['Container image "app:dev" is not present with pull policy of Never'], 'ErrImageNeverPull')).toBe('never-pull');
  });

  it('reports nothing for a container that is running', () => {
    const p = pod('web-1', [{ name: 'web', restartCount: 0, ready: true, state: { running: { startedAt: ago(5) } } }]);
    const ev = podEvent('web-1', 'web', 'Failed', 'Failed to pull image "registry.local/web:1.0": rpc error: code = NotFound desc = not found', ago(10), ago(6), 3);
    expect(createImagePullDetector().detect(view({ pods: [p], events: [ev] }))).toEqual([]);
  });
});

describe('ContainerConfig message parsing', () => {
  it.each([
    ['configmap "app-settings" not found', { cause: 'missing-configmap', kind: 'ConfigMap', name: 'app-settings' }],
    ['secret "db-creds" not found', { cause: 'missing-secret', kind: 'Secret', name: 'db-creds' }],
    ["couldn't find key LOG_LEVEL in ConfigMap demo/app-settings", { cause: 'missing-key', kind: 'ConfigMap', name: 'app-settings', key: 'LOG_LEVEL' }],
    ['container has runAsNonRoot and image will run as root (pod: "x_demo(1)", container: x)', { cause: 'security-context' }],
    ['failed to sync secret cache: timed out waiting for the condition', { cause: 'api-sync' }],
  ])('%s', (text, expected) => {
    expect(parseConfigProblem(text)).toMatchObject(expected);
  });

  it('does not treat an old FailedMount as the reason a pod is still creating', () => {
    const p = pod('web-2', [{ name: 'web', restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }]);
    const old = podEvent('web-2', undefined, 'FailedMount', 'MountVolume.SetUp failed for volume "cfg" : configmap "web" not found', ago(120), ago(90), 4);
    expect(createContainerConfigDetector().detect(view({ pods: [p], events: [old] }))).toEqual([]);
    const fresh = podEvent('web-2', undefined, 'FailedMount', 'MountVolume.SetUp failed for volume "cfg" : configmap "web" not found', ago(12), ago(1), 8);
    expect(createContainerConfigDetector().detect(view({ pods: [p], events: [fresh] }))[0]!.facts).toMatchObject({ missingKind: 'ConfigMap', missingName: 'web' });
  });
});

describe('ProbeFailure', () => {
  const detector = createProbeFailureDetector();

  it('ignores readiness failures during start-up that ended when the container became ready', () => {
    const p = pod('db-0', [{ name: 'db', restartCount: 0, ready: true, state: { running: { startedAt: ago(6) } } }], { start: ago(6) });
    p.status!.conditions = [{ type: 'Ready', status: 'True', lastTransitionTime: ago(5) }];
    const ev = podEvent('db-0', 'db', 'Unhealthy', 'Readiness probe failed: connection refused', ago(5.9), ago(5.2), 4);
    expect(detector.detect(view({ pods: [p], events: [ev] }))).toEqual([]);
  });

  it('reports readiness failing now on a container that is not ready', () => {
    const p = pod('api-4', [{ name: 'api', restartCount: 0, ready: false, state: { running: { startedAt: ago(60) } } }]);
    const ev = podEvent('api-4', 'api', 'Unhealthy', 'Readiness probe failed: HTTP probe failed with statuscode: 500', ago(20), ago(0.2), 120);
    const drafts = detector.detect(view({ pods: [p], events: [ev] }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]).toMatchObject({ category: 'ProbeFailure', severity: 'warning', facts: { probe: 'readiness' }, occurrences: 120 });
    expect(drafts[0]!.message).toContain('receives no Service traffic');
  });

  it('needs a kill or repeated failures for liveness, and forgets failures older than the window', () => {
    const p = pod('api-5', [{ name: 'api', restartCount: 0, ready: true, state: { running: { startedAt: ago(600) } } }]);
    const once = podEvent('api-5', 'api', 'Unhealthy', 'Liveness probe failed: Get "http://10.1.0.4:8080/healthz": context deadline exceeded', ago(3), ago(3), 1);
    expect(detector.detect(view({ pods: [p], events: [once] }))).toEqual([]);
    const old = podEvent('api-5', 'api', 'Unhealthy', 'Liveness probe failed: Get "http://10.1.0.4:8080/healthz": context deadline exceeded', ago(80), ago(70), 9);
    expect(detector.detect(view({ pods: [p], events: [old] }))).toEqual([]);
  });
});

describe('Evicted', () => {
  it('tells a pod limit from node pressure', () => {
    expect(parseEviction('Container consumerui exceeded its local ephemeral storage limit "20Mi". ')).toMatchObject({ cause: 'container-ephemeral-limit', container: 'consumerui', limit: '20Mi' });
    expect(parseEviction('Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.')).toMatchObject({ cause: 'pod-ephemeral-limit', limit: '1Gi' });
    expect(parseEviction('Usage of EmptyDir volume "cache" exceeds the limit "512Mi".')).toMatchObject({ cause: 'emptydir-limit', limit: '512Mi' });
    expect(parseEviction('The node was low on resource: memory. Threshold quantity: 100Mi, available: 91232Ki. Container a was using 5892312Ki, request is 1Gi, has larger consumption of memory. ')).toEqual({
      cause: 'node-pressure',
      resource: 'memory',
      threshold: '100Mi',
      available: '91232Ki',
      container: 'a',
    });
    expect(parseEviction('The node was low on resource: [DiskPressure].')).toMatchObject({ cause: 'node-pressure', resource: 'DiskPressure' });
  });

  it('reports an eviction whose pod is gone from its event while recent', () => {
    const ev = podEvent('gone-1', undefined, 'Evicted', 'The node was low on resource: pids. ', ago(30), ago(30));
    const drafts = createEvictedDetector().detect(view({ pods: [], events: [ev] }));
    expect(drafts.map((d) => [d.subject.name, d.severity, d.facts?.resource])).toEqual([['gone-1', 'warning', 'pids']]);
    const old = podEvent('gone-2', undefined, 'Evicted', 'The node was low on resource: pids. ', ago(3000), ago(3000));
    expect(createEvictedDetector().detect(view({ pods: [], events: [old] }))).toEqual([]);
  });
});

describe('events only (no pod list: kubelet unreachable, or a bundle of events)', () => {
  const events = [
    podEvent('api-9', 'api', 'BackOff', 'Back-off restarting failed container api in pod api-9_demo(1b2c)', ago(30), ago(1), 40),
    podEvent('web-9', 'web', 'Failed', 'Failed to pull image "registry.local/web:2.0": rpc error: code = Unknown desc = failed to pull and unpack image "registry.local/web:2.0": failed to resolve reference "registry.local/web:2.0": unexpected status from HEAD request to https://registry.local/v2/web/manifests/2.0: 401 Unauthorized', ago(20), ago(2), 5),
    podEvent('web-9', 'web', 'BackOff', 'Back-off pulling image "registry.local/web:2.0"', ago(20), ago(0.5), 60),
    podEvent('db-9', 'db', 'Failed', 'Error: secret "db-root" not found', ago(15), ago(0.3), 30),
    podEvent('old-9', 'old', 'BackOff', 'Back-off restarting failed container old in pod old-9_demo(9z)', ago(300), ago(200), 12),
  ];

  it('reports crash loops, pull failures and missing secrets from recent events', () => {
    const v = view({ events });
    const crash = createCrashLoopDetector().detect(v);
    expect(crash.map((d) => [d.subject.name, d.subject.container, d.severity])).toEqual([['api-9', 'api', 'warning']]);
    const pull = createImagePullDetector().detect(v);
    expect(pull.map((d) => [d.subject.container, d.facts?.cause, d.facts?.image])).toEqual([['web', 'auth', 'registry.local/web:2.0']]);
    const cfg = createContainerConfigDetector().detect(v);
    expect(cfg.map((d) => [d.subject.container, d.facts?.missingKind, d.facts?.missingName])).toEqual([['db', 'Secret', 'db-root']]);
  });

  it('trusts pod status over events when a pod list exists', () => {
    const p = pod('api-9', [{ name: 'api', restartCount: 0, ready: true, state: { running: { startedAt: ago(1) } } }]);
    expect(createCrashLoopDetector().detect(view({ events, pods: [p] }))).toEqual([]);
  });
});

describe('node scope and reboots', () => {
  it('ignores pods that run on another node', () => {
    const other = pod('api-7', [{ name: 'api', restartCount: 9, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, finishedAt: ago(1) } } }]);
    other.spec!.nodeName = 'edge-other';
    const mine = pod('api-8', [{ name: 'api', restartCount: 9, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: ago(1) } } }]);
    mine.spec!.nodeName = 'edge-test';
    const drafts = createCrashLoopDetector().detect(view({ pods: [other, mine] }));
    expect(drafts.map((d) => d.subject.name)).toEqual(['api-8']);
    expect(drafts[0]!.message).toContain('Exit code 0 means the process ended successfully');
  });

  it('words an exit code in the finding as its rule hint does', () => {
    for (const [exitCode, meaning] of [
      [139, 'is SIGSEGV: the process crashed on a memory access fault'],
      [127, 'means the entrypoint or a command it runs was not found in the image'],
      [130, 'means the process was killed by signal 2'],
    ] as const) {
      const p = pod(`api-${exitCode}`, [{ name: 'api', restartCount: 9, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode, reason: 'Error', finishedAt: ago(1) } } }]);
      const [draft] = createCrashLoopDetector().detect(view({ pods: [p] }));
      expect(draft!.message).toContain(`Exit code ${exitCode} ${meaning}.`);
      const hint = ruleHint({ ...draft!, id: 'f1', firstSeen: draft!.at, lastSeen: draft!.at, count: 1, status: 'open', diagnosis: null }, { nodeName: 'edge-test' });
      // The same clause after "exit code N:" (and the signal's name, where it has one).
      expect(hint.probableCause).toContain(meaning.replace(/^(?:means|is \S+:) /, ''));
    }
  });

  it('does not call restarts caused by a node reboot a crash loop', () => {
    const bootTime = ago(25);
    const p = pod('calico-node-x', [
      {
        name: 'calico-node',
        restartCount: 3,
        ready: true,
        state: { running: { startedAt: ago(22) } },
        lastState: { terminated: { exitCode: 1, reason: 'Error', startedAt: ago(23), finishedAt: ago(22.5) } },
      },
    ], { start: ago(50) });
    expect(createCrashLoopDetector().detect(view({ pods: [p], bootTime }))).toEqual([]);
    // The same restarts long after boot are a crash loop.
    expect(createCrashLoopDetector().detect(view({ pods: [p], bootTime: ago(60 * 24) }))).toHaveLength(1);
  });

  it('reads the older "node had condition" eviction message as node pressure', () => {
    expect(parseEviction('Pod The node had condition: [DiskPressure]. ')).toEqual({ cause: 'node-pressure', resource: 'ephemeral-storage' });
  });
});

describe('ProbeFailure on a container that is ready now', () => {
  it('does not report sporadic readiness failures below the threshold', () => {
    const p = pod('api-6', [{ name: 'api', restartCount: 0, ready: true, state: { running: { startedAt: ago(600) } } }]);
    const ev = podEvent('api-6', 'api', 'Unhealthy', 'Readiness probe failed: Get "http://10.1.0.9:8080/ready": context deadline exceeded', ago(14), ago(2), 4);
    expect(createProbeFailureDetector().detect(view({ pods: [p], events: [ev] }))).toEqual([]);
  });

  it('reads events.k8s.io/v1 events (regarding, note, series)', () => {
    const p = pod('api-7', [{ name: 'api', restartCount: 0, ready: false, state: { running: { startedAt: ago(600) } } }]);
    const ev: KubeEvent = {
      apiVersion: 'events.k8s.io/v1',
      metadata: { name: 'api-7.1', namespace: 'demo', uid: 'ev-api-7' },
      regarding: { kind: 'Pod', name: 'api-7', namespace: 'demo', fieldPath: 'spec.containers{api}' },
      reason: 'Unhealthy',
      note: 'Readiness probe failed: HTTP probe failed with statuscode: 503',
      type: 'Warning',
      eventTime: ago(20),
      series: { count: 42, lastObservedTime: ago(0.5) },
    };
    const drafts = createProbeFailureDetector().detect(view({ pods: [p], events: [ev] }));
    expect(drafts.map((d) => [d.subject.container, d.facts?.probe, d.occurrences])).toEqual([['api', 'readiness', 42]]);
  });
});

describe('OOMKilled by the node-wide OOM killer', () => {
  const uid = '5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c';
  const cid = 'a'.repeat(8) + '1234567890abcdef'.repeat(3) + 'b'.repeat(8);
  const kernel = (pid: number, withTask: boolean): LogLine[] =>
    [
      'java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=1000',
      withTask
        ? `oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=cri-containerd-${cid}.scope,mems_allowed=0,global_oom,task_memcg=/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${cid}.scope,task=java,pid=${pid},uid=185`
        : `oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/backup.service,task=rsync,pid=${pid},uid=0`,
      `Out of memory: Killed process ${pid} (${withTask ? 'java' : 'rsync'}) total-vm:9823412kB, anon-rss:6123400kB, file-rss:0kB, shmem-rss:0kB, UID:185 pgtables:13000kB oom_score_adj:1000`,
    ].map((text, i) => ({ source: 'kmsg' as const, at: new Date(Date.parse(ago(4)) + i).toISOString(), text }));

  it('tells the container the node ran out of memory, not its limit', () => {
    const p = pod(
      'spark-0',
      [
        {
          name: 'worker',
          restartCount: 1,
          ready: true,
          containerID: `containerd://${cid}`,
          state: { running: { startedAt: ago(3) } },
          lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: ago(4) } },
        },
      ],
      { uid },
    );
    const drafts = createOomKilledDetector().detect(view({ pods: [p], logs: kernel(91234, true) }));
    expect(drafts).toHaveLength(1);
    expect(drafts[0]!.title).toBe('Container worker of demo/spark-0 was OOM-killed (node out of memory)');
    expect(drafts[0]!.facts).toMatchObject({ nodeWide: true, memcg: false, kills: 1 });
    expect(drafts[0]!.evidence.some((e) => e.source === 'kmsg' && e.text.startsWith('Out of memory: Killed process 91234 (java)'))).toBe(true);
  });

  it('leaves a node-wide kill of a system service to KernelOOM', () => {
    expect(createOomKilledDetector().detect(view({ pods: [], logs: kernel(4242, false) }))).toEqual([]);
  });
});
