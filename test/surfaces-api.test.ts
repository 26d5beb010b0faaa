/**
 * The routes for people and tools, over real HTTP against a seeded agent:
 * the page and its assets (no CDN), the timeline, the metrics history,
 * feedback and its JSONL export, the OpenAPI document, and error messages
 * that name what is allowed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORIES } from '../daemon/core/types.js';
import { IDS, type SurfaceNode, startSurfaceNode } from './helpers/surface-node.js';

let node: SurfaceNode;
beforeAll(async () => {
  node = await startSurfaceNode('edge-04');
});
afterAll(async () => node?.close());

const get = async (path: string) => {
  const res = await fetch(`${node.url}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', headers: res.headers, text: await res.text() };
};

describe('web page', () => {
  it('serves the dashboard at / with its own assets only (CSP self, no external URL)', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.filter((r) => /^(https?:)?\/\//.test(r))).toEqual([]);
    for (const r of refs.filter((x) => x.startsWith('/ui/'))) {
      const a = await get(r);
      expect(a.status, r).toBe(200);
      expect(a.text.length, r).toBeGreaterThan(100);
    }
    expect((await get('/ui/uPlot.min.js')).text).toContain('uPlot');
    // The page's modules and what they import: a browser runs a module only when it comes with a JavaScript type.
    expect(page.text).toContain('<script src="/ui/app.js" type="module">');
    const imports = [...(await get('/ui/app.js')).text.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]!);
    expect(imports).toEqual(['/ui/sse.js']);
    const sse = await get('/ui/sse.js');
    expect(sse.status).toBe(200);
    expect(sse.type).toMatch(/^text\/javascript/);
    expect(sse.text).toContain('export function sseParser');
    expect((await get('/ui/../package.json')).status).toBe(404);
  });
});

describe('timeline and metrics history', () => {
  it('lists opened and diagnosed events newest first, with the finding headline', async () => {
    const r = await get('/v1/timeline?since=2h');
    expect(r.status).toBe(200);
    const items = (JSON.parse(r.text) as { items: { at: string; kind: string; detail: string | null; finding: { id: string; title: string } }[] }).items;
    const kinds = items.filter((e) => e.finding.id === IDS.probe).map((e) => e.kind);
    expect(kinds.sort()).toEqual(['diagnosed', 'opened']);
    expect(items.find((e) => e.kind === 'diagnosed')!.detail).toBe('rule-hint');
    const times = items.map((e) => e.at);
    expect([...times].sort().reverse()).toEqual(times);
    // Resolving a finding adds an event.
    const disk = node.store.getFinding(IDS.disk)!;
    const at = new Date().toISOString();
    node.store.commit({ at, findings: [{ ...disk, status: 'resolved', resolvedAt: at }], checkpoints: [], gaps: [], lineCounts: new Map() });
    const after = JSON.parse((await get('/v1/timeline?since=5m')).text) as { items: { kind: string; finding: { id: string; status: string } }[] };
    expect(after.items[0]).toMatchObject({ kind: 'resolved', finding: { id: IDS.disk, status: 'resolved' } });
    node.store.commit({ at, findings: [{ ...disk, status: 'open', resolvedAt: null }], checkpoints: [], gaps: [], lineCounts: new Map() });
  });

  it('serves 24 h of a host series per filesystem, memory as used percent', async () => {
    const disk = JSON.parse((await get('/v1/metrics/history?series=disk&since=24h')).text) as {
      unit: string;
      resolutionSeconds: number;
      lines: { label: string; points: { at: string; mean: number }[] }[];
    };
    expect(disk.unit).toBe('percent');
    expect(disk.resolutionSeconds).toBe(60);
    expect(disk.lines.map((l) => l.label).sort()).toEqual(['/', '/var/lib/containerd']);
    const containerd = disk.lines.find((l) => l.label === '/var/lib/containerd')!;
    expect(containerd.points.length).toBeGreaterThan(250);
    expect(containerd.points.at(-1)!.mean).toBeCloseTo(97.1, 0);
    const mem = JSON.parse((await get('/v1/metrics/history?series=memory&since=1h')).text) as { lines: { points: { mean: number }[] }[] };
    expect(mem.lines[0]!.points.at(-1)!.mean).toBeCloseTo(59.4, 0); // 100 - 40.6 % available
    const bad = await get('/v1/metrics/history?series=gpu');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.message).toBe('series must be one of: cpu, memory, disk, inodes, load');
  });
});

describe('feedback', () => {
  it('stores a verdict and exports prompt, evidence, diagnosis and feedback as one JSON line each', async () => {
    const post = (id: string, body: unknown) =>
      fetch(`${node.url}/v1/findings/${id}/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await post(IDS.crash, { helpful: false, note: 'the database was down, not the app' });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ findingId: IDS.crash, helpful: false, note: 'the database was down, not the app' });
    expect((await post(IDS.disk, { helpful: true })).status).toBe(201);
    expect((await post('0000000000000000', { helpful: true })).status).toBe(404);
    const bad = await post(IDS.disk, { helpful: 'yes' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe('helpful must be boolean');

    const exp = await get('/v1/export/feedback.jsonl');
    expect(exp.type).toMatch(/application\/x-ndjson/);
    const lines = exp.text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    const crash = lines[0];
    expect(crash.finding).toMatchObject({ id: IDS.crash, category: 'CrashLoop' });
    expect(crash.feedback).toEqual({ helpful: false, note: 'the database was down, not the app' });
    expect(crash.evidence[0].text).toContain('connection refused');
    expect(crash.diagnosis.diagnoser).toBe('rule-hint');
    expect(crash.prompt.user).toContain('connection refused');
    expect(crash.prompt.system.length).toBeGreaterThan(200);
    expect(lines[1].feedback).toEqual({ helpful: true, note: null });
  });
});

describe('OpenAPI and errors', () => {
  it('describes every registered route with its parameters', async () => {
    const doc = JSON.parse((await get('/v1/openapi.json')).text) as { openapi: string; paths: Record<string, Record<string, { parameters: { name: string; schema: { enum?: string[] } }[] }>> };
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    for (const r of [
      'GET /',
      'GET /healthz',
      'GET /readyz',
      'GET /v1/status',
      'GET /v1/findings',
      'GET /v1/findings/{id}',
      'POST /v1/findings/{id}/feedback',
      'GET /v1/timeline',
      'GET /v1/metrics/history',
      'GET /v1/export/feedback.jsonl',
      'POST /v1/ask',
      'POST /mcp',
      'GET /metrics',
      'GET /v1/openapi.json',
    ]) {
      expect(routes, r).toContain(r);
    }
    for (const [p, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops)) expect((op as { summary?: string }).summary, `${m} ${p}`).toBeTruthy();
    const category = doc.paths['/v1/findings']!.get!.parameters.find((p) => p.name === 'category')!;
    expect(category.schema.enum).toContain('CrashLoop');
  });

  it('names the allowed values and accepts relative since', async () => {
    const bad = await get('/v1/findings?category=Crashloop');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.message).toBe(`category must be one of: ${CATEGORIES.join(', ')}`);
    const since = await get('/v1/findings?since=yesterday');
    expect(JSON.parse(since.text).error.message).toBe('since must be an RFC3339 time (2026-05-04T08:00:00Z) or an age such as 30m, 1h, 2d');
    const recent = JSON.parse((await get('/v1/findings?since=5m')).text) as { items: { id: string }[] };
    expect(recent.items.map((f) => f.id).sort()).toEqual([IDS.disk, IDS.probe].sort());
    const all = JSON.parse((await get('/v1/findings?since=2d')).text) as { items: unknown[] };
    expect(all.items).toHaveLength(3);
  });
});
