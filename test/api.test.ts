import { describe, expect, it } from 'vitest';
import { buildApi } from '../daemon/api/server.js';
import type { Status } from '../daemon/core/contract.js';
import { Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';

function app(ready = true) {
  const store = Store.open({ dir: tempDir() });
  const f: TrackedFinding = {
    id: '0123456789abcdef',
    category: 'DiskFull',
    severity: 'critical',
    subject: { kind: 'Node', name: 'n1' },
    title: 'full',
    message: 'm',
    evidence: [{ source: 'host', at: '2026-01-01T00:00:00.000Z', text: '/: 99% used' }],
    firstSeen: '2026-01-01T00:00:00.000Z',
    lastSeen: '2026-01-01T00:00:00.000Z',
    count: 1,
    status: 'open',
    diagnosis: null,
    detector: 'disk',
    lifecycle: 'condition',
    facts: { secretInternal: 'must not leak' },
  };
  store.commit({ at: 'x', findings: [f], checkpoints: [], gaps: [], lineCounts: new Map() });
  const status: Status = {
    mode: 'host',
    nodeName: 'n1',
    version: '0',
    startedAt: 'x',
    sources: [],
    model: { state: 'none', id: null, reason: 'no model configured' },
    store: { path: store.path, sizeBytes: 1, recoveredFrom: null, writeFailure: null },
    rulesOnly: true,
  };
  return buildApi({ store, status: () => status, ready: () => ready });
}

describe('HTTP API', () => {
  it('serves findings in the DESIGN shape without internal fields', async () => {
    const a = app();
    const r = await a.inject({ method: 'GET', url: '/v1/findings?status=open&severity=critical' });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { items: Record<string, unknown>[]; nextCursor: null };
    expect(body.items).toHaveLength(1);
    expect(body.items[0]!.evidence).toEqual([{ source: 'host', at: '2026-01-01T00:00:00.000Z', text: '/: 99% used' }]);
    expect(Object.keys(body.items[0]!)).not.toContain('facts');
    expect(Object.keys(body.items[0]!)).not.toContain('detector');
    const one = await a.inject({ method: 'GET', url: '/v1/findings/0123456789abcdef' });
    expect(one.json().category).toBe('DiskFull');
  });

  it('answers errors as JSON with a code', async () => {
    const a = app(false);
    const cases: [string, number, string][] = [
      ['/nope', 404, 'NOT_FOUND'],
      ['/v1/findings/ffffffffffffffff', 404, 'FINDING_NOT_FOUND'],
      ['/v1/findings?severity=loud', 400, 'BAD_REQUEST'],
      ['/v1/findings?category=NotACategory', 400, 'BAD_REQUEST'],
      ['/v1/findings?cursor=zzz', 400, 'BAD_CURSOR'],
      ['/v1/findings?since=yesterday', 400, 'BAD_REQUEST'],
      ['/readyz', 503, 'NOT_READY'],
    ];
    for (const [url, status, code] of cases) {
      const r = await a.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(status);
      expect(r.json().error.code, url).toBe(code);
      expect(typeof r.json().error.message).toBe('string');
    }
    const big = await a.inject({ method: 'POST', url: '/v1/findings', payload: 'x'.repeat(100_000), headers: { 'content-type': 'application/json' } });
    expect([404, 413]).toContain(big.statusCode);
    expect(big.json().error.code).toMatch(/NOT_FOUND|BODY_TOO_LARGE/);
  });
});
