import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeBundle, findingsFromDrafts, formatFindingsText, publicFindings } from '../daemon/analyze.js';
import { fingerprint } from '../daemon/core/fingerprint.js';
import type { FindingDraft } from '../daemon/core/types.js';

const FIXTURES = new URL('./fixtures/bundles/', import.meta.url).pathname;
const tmp: string[] = [];

afterAll(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});

function draft(extra: Partial<FindingDraft> & Pick<FindingDraft, 'category'>): FindingDraft {
  return {
    severity: 'warning',
    subject: { kind: 'Node', name: 'n1' },
    title: extra.category,
    message: extra.category,
    evidence: [],
    at: '2025-01-01T10:00:00.000Z',
    lifecycle: 'condition',
    detector: 'test',
    ...extra,
  };
}

describe('analyzeBundle', () => {
  it('prints findings in the DESIGN.md Finding shape, root causes first', async () => {
    const result = await analyzeBundle(`${FIXTURES}crashloop-oom-memcg`);
    expect(result.meta).toEqual({ nodeName: 'edge-01', capturedAt: '2025-03-04T10:00:00.000Z', bootTime: '2025-03-01T08:00:00Z' });
    expect(result.parts).toEqual(expect.arrayContaining(['meta.json', 'node.json', 'pods.json', 'events.json', 'logs/pods/', 'logs/kmsg.txt']));
    expect(result.failures).toEqual([]);
    expect(result.findings.map((f) => f.category)).toEqual(['OOMKilled', 'CrashLoop']);
    const crash = result.findings[1]!;
    // The diagnoser gets the detector's facts; the printed JSON does not.
    expect(crash.facts).toMatchObject({ exitCode: 137, lastReason: 'OOMKilled', restartCount: 5 });
    expect(Object.keys(publicFindings(result.findings)[1]!).sort()).toEqual(
      ['category', 'causes', 'count', 'diagnosis', 'evidence', 'firstSeen', 'id', 'lastSeen', 'message', 'rootCause', 'severity', 'status', 'subject', 'title'].sort(),
    );
    expect(crash.id).toBe(fingerprint('CrashLoop', crash.subject));
    expect(crash).toMatchObject({ status: 'open', diagnosis: null, count: 5, lastSeen: '2025-03-04T10:00:00.000Z', rootCause: false });
    expect(crash.firstSeen < crash.lastSeen).toBe(true);
    for (const e of crash.evidence) expect(['podStatus', 'event', 'podLog']).toContain(e.source);
  });

  it('redacts secrets in evidence and messages', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nodesage-analyze-'));
    tmp.push(dir);
    const uid = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ nodeName: 'n1', capturedAt: '2025-01-01T10:00:00Z' }));
    await writeFile(
      join(dir, 'pods.json'),
      JSON.stringify({
        items: [
          {
            metadata: { name: 'api-1', namespace: 'demo', uid },
            status: {
              phase: 'Running',
              startTime: '2025-01-01T09:40:00Z',
              containerStatuses: [
                {
                  name: 'api',
                  restartCount: 4,
                  ready: false,
                  state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container=api' } },
                  lastState: { terminated: { exitCode: 1, reason: 'Error', startedAt: '2025-01-01T09:58:00Z', finishedAt: '2025-01-01T09:58:03Z' } },
                },
              ],
            },
          },
        ],
      }),
    );
    const logDir = join(dir, 'logs', 'pods', `demo_api-1_${uid}`, 'api');
    await mkdir(logDir, { recursive: true });
    await writeFile(
      join(logDir, '4.log'),
      [
        '2025-01-01T09:58:01.000000000Z stdout F connecting with DATABASE_URL=postgres://app:s3cr3tPassw0rd@db:5432/app',
        '2025-01-01T09:58:02.000000000Z stderr F FATAL: password=Hunter2Hunter2 rejected for user app',
      ].join('\n'),
    );
    const { findings } = await analyzeBundle(dir);
    const crash = findings.find((f) => f.category === 'CrashLoop')!;
    const text = JSON.stringify(crash);
    expect(text).not.toContain('Hunter2Hunter2');
    expect(text).not.toContain('s3cr3tPassw0rd');
    expect(crash.evidence.filter((e) => e.source === 'podLog').map((e) => e.text)).toHaveLength(2);
  });

  it('feeds the bundle\'s log history to the template statistics (LogErrorSpike)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nodesage-analyze-'));
    tmp.push(dir);
    const uid = '0a9b8c7d-6e5f-4a3b-8c1d-2e3f4a5b6c7d';
    await writeFile(join(dir, 'meta.json'), JSON.stringify({ nodeName: 'n1', capturedAt: '2025-01-01T10:00:00Z' }));
    const logDir = join(dir, 'logs', 'pods', `shop_checkout-1_${uid}`, 'checkout');
    await mkdir(logDir, { recursive: true });
    const lines: string[] = [];
    const start = Date.parse('2025-01-01T09:20:00Z');
    for (let i = 0; i < 160; i++) {
      const t = new Date(start + i * 15_000).toISOString().replace('Z', '000000Z');
      lines.push(`${t} stdout F 2025-01-01 level=info msg="order placed" order_id=${10_000 + i} items=${(i % 4) + 1} latency_ms=${20 + (i % 13)}`);
    }
    for (let i = 0; i < 30; i++) {
      const t = new Date(Date.parse('2025-01-01T09:56:00Z') + i * 7_000).toISOString().replace('Z', '000000Z');
      lines.push(`${t} stderr F 2025-01-01 level=error msg="payment call failed" err="dial tcp 10.43.12.7:8443: connect: connection refused" order_id=${20_000 + i}`);
    }
    await writeFile(join(logDir, '0.log'), `${lines.join('\n')}\n`);
    const { findings } = await analyzeBundle(dir);
    const spike = findings.find((f) => f.category === 'LogErrorSpike');
    expect(spike?.subject).toEqual({ kind: 'Container', namespace: 'shop', name: 'checkout-1', container: 'checkout' });
    expect(spike!.evidence.some((e) => e.text.includes('payment call failed'))).toBe(true);
  });

  it('fails with a BundleError on a folder that is not a bundle', async () => {
    await expect(analyzeBundle(join(tmpdir(), 'nodesage-no-such-bundle'))).rejects.toMatchObject({ code: 'BUNDLE_INVALID' });
  });
});

describe('findingsFromDrafts', () => {
  it('merges drafts with the same fingerprint and keeps only causes that are present', () => {
    const disk = draft({ category: 'DiskFull', detail: 'nodefs', severity: 'critical', evidence: [{ source: 'kubelet', at: '2025-01-01T10:00:00.000Z', text: 'nodefs 97%' }] });
    const diskId = fingerprint('DiskFull', disk.subject, 'nodefs');
    const a = draft({ category: 'KubeletUnhealthy', detail: 'k', at: '2025-01-01T09:00:00.000Z', occurrences: 2, evidence: [{ source: 'journald', at: '2025-01-01T09:00:00.000Z', text: 'a' }] });
    const b = draft({ category: 'KubeletUnhealthy', detail: 'k', severity: 'critical', firstAt: '2025-01-01T08:00:00.000Z', evidence: [{ source: 'kubelet', at: '2025-01-01T10:00:00.000Z', text: 'b' }], causes: ['0000000000000000', diskId] });
    const out = findingsFromDrafts([a, b, disk]);
    expect(out).toHaveLength(2);
    const k = out.find((f) => f.category === 'KubeletUnhealthy')!;
    expect(k).toMatchObject({ severity: 'critical', count: 3, firstSeen: '2025-01-01T08:00:00.000Z', lastSeen: '2025-01-01T10:00:00.000Z', causes: [diskId], rootCause: false });
    expect(k.evidence.map((e) => e.text)).toEqual(['a', 'b']);
    expect(out[0]!.category).toBe('DiskFull');
  });
});

describe('formatFindingsText', () => {
  it('prints each root cause with what it caused indented under it', async () => {
    const { findings } = await analyzeBundle(`${FIXTURES}probe-liveness-disk-full`);
    const text = formatFindingsText(findings);
    const lines = text.split('\n');
    expect(lines[0]).toBe('4 findings: 2 critical, 2 warning, 0 info; 1 root cause.');
    const root = lines.findIndex((l) => l.startsWith('CRITICAL DiskFull node/edge-04'));
    expect(lines.findIndex((l) => l.startsWith('    ↳ CRITICAL NodeDiskPressure node/edge-04'))).toBe(root + 6);
    const child = lines.findIndex((l) => l.startsWith('    ↳ WARNING ProbeFailure media/transcoder-69f8b7c6d5-8n4kd/transcoder'));
    expect(root).toBeGreaterThanOrEqual(0);
    expect(child).toBeGreaterThan(root);
    expect(text).toContain('    ↳ WARNING ProbeFailure media/transcoder-69f8b7c6d5-8n4kd/transcoder (see above)');
    expect(text).toContain('event: Killing: Container transcoder failed liveness probe, will be restarted (x4 over 18m)');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('says so when there is nothing', () => {
    expect(formatFindingsText([])).toBe('No findings: nothing wrong was detected.\n');
  });
});
