/**
 * History at scale: every listing shape the API can ask for is served by an
 * index (no table scan, no sort in a temporary B-tree), and a database made
 * by the previous schema upgrades in place without losing a finding.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { gunzipSync } from 'node:zlib';
import { HistoryText } from '../daemon/api/history-text.js';
import { listingBody } from '../daemon/api/listing.js';
import { PageCache, acceptsGzip } from '../daemon/api/page-cache.js';
import { projectToSchema } from '../daemon/api/schema-project.js';
import { buildApi } from '../daemon/api/server.js';
import { DiagnosisSchema, FindingPageSchema, MetricsHistorySchema, responseSchema } from '../daemon/core/contract.js';
import { CATEGORIES, type Finding, SEVERITIES } from '../daemon/core/types.js';
import { MIGRATIONS } from '../daemon/store/migrations.js';
import { DB_FILE, type FindingQuery, LISTING_FILTERS, Store } from '../daemon/store/store.js';
import { type TrackedFinding, toPublicFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function finding(i: number): TrackedFinding {
  const lastSeen = iso(T0 - (i % 500) * 60_000);
  return {
    id: (0x1000000000000000n + BigInt(i) * 7919n).toString(16),
    category: CATEGORIES[i % 7]!,
    severity: SEVERITIES[Math.floor(i / 7) % 3]!,
    subject: { kind: 'Container', namespace: `ns-${i % 40}`, name: `app-${i % 300}`, container: 'c' },
    title: `finding ${i}`,
    message: `message ${i}`,
    evidence: [
      { source: 'podLog', at: lastSeen, text: `line one of ${i}` },
      { source: 'podStatus', at: lastSeen, text: `line two of ${i}` },
    ],
    firstSeen: lastSeen,
    lastSeen,
    count: 1 + (i % 9),
    status: i % 10 === 0 ? 'open' : 'resolved',
    resolvedAt: i % 10 === 0 ? null : lastSeen,
    diagnosis: null,
    detector: 'test',
    lifecycle: 'event',
  };
}

const batch = (findings: TrackedFinding[]) => ({ at: iso(T0), findings, checkpoints: [], gaps: [], lineCounts: new Map<string, number>() });

/** Every subset of the listing filters, with a value for each (the same list the store builds its SQL from). */
function listingShapes(cursor: string): FindingQuery[] {
  const value: Required<Pick<FindingQuery, (typeof LISTING_FILTERS)[number]>> = {
    status: 'open',
    severity: 'critical',
    category: 'DNSFailure',
    since: iso(T0 - 3_600_000),
    cursor,
  };
  const shapes: FindingQuery[] = [];
  for (let mask = 0; mask < 1 << LISTING_FILTERS.length; mask++) {
    const q: FindingQuery = { limit: 50 };
    LISTING_FILTERS.forEach((k, bit) => {
      if (mask & (1 << bit)) Object.assign(q, { [k]: value[k] });
    });
    shapes.push(q);
  }
  return shapes;
}

/** A plan line that reads the whole findings table or sorts outside an index. */
const bad = (line: string) => /^SCAN (findings|fi|f)\b(?!.*USING (COVERING )?INDEX)/.test(line) || /TEMP B-TREE/.test(line);

describe('query plans at scale', () => {
  it('serves every listing shape, page evidence, counts and retention from indexes', () => {
    const store = Store.open({ dir: tempDir() });
    // Enough rows, spread over every category and severity, that the planner has real choices.
    store.commit(batch(Array.from({ length: 2000 }, (_, i) => finding(i))));
    const cursor = store.listFindings({ limit: 50 }).nextCursor!;
    const shapes = listingShapes(cursor);
    expect(shapes).toHaveLength(32);
    const failures: string[] = [];
    const seen = new Set<string>();
    for (const q of shapes) {
      const plans = store.queryPlans(q);
      for (const [name, lines] of Object.entries(plans)) {
        if (!name.startsWith('listing') && seen.has(name)) continue;
        seen.add(name);
        expect(lines.length).toBeGreaterThan(0);
        for (const line of lines) if (bad(line)) failures.push(`${name} ${JSON.stringify(q)}: ${line}`);
      }
      // And each shape returns what it claims: the right rows, newest first.
      const page = store.listFindings(q);
      for (const f of page.items) {
        if (q.status) expect(f.status).toBe(q.status);
        if (q.severity) expect(f.severity).toBe(q.severity);
        if (q.category) expect(f.category).toBe(q.category);
        if (q.since) expect(f.lastSeen >= q.since).toBe(true);
        expect(f.evidence.map((e) => e.text)).toEqual([`line one of ${f.title.split(' ')[1]}`, `line two of ${f.title.split(' ')[1]}`]);
      }
      const keys = page.items.map((f) => `${f.lastSeen} ${f.id}`);
      expect([...keys].sort().reverse()).toEqual(keys);
      // The page the listing route sends (JSON written by SQLite) holds the same findings, evidence in order.
      const json = store.listFindingsJson(q);
      expect(json.nextCursor).toBe(page.nextCursor);
      expect(json.items.map((r) => JSON.parse(`${r.head}}`) as Finding)).toEqual(page.items.map((f) => { const { diagnosis: _d, ...rest } = toPublicFinding(f); return rest; }));
    }
    expect(failures).toEqual([]);
    store.close();
  });

  it('pages through the whole history with the cursor, every finding once, with its evidence and diagnosis', () => {
    const store = Store.open({ dir: tempDir() });
    const all = Array.from({ length: 730 }, (_, i) => finding(i));
    store.commit(batch(all));
    store.setDiagnosis(all[3]!.id, {
      summary: 'dns is down',
      probableCause: 'coredns',
      nextSteps: [],
      commands: [],
      confidence: 'low',
      diagnoser: 'rule-hint',
      tokens: { prompt: 0, completion: 0 },
      latencyMs: 1,
    });
    const got: TrackedFinding[] = [];
    let cursor: string | null = null;
    do {
      const page = store.listFindings({ limit: 100, status: 'resolved', ...(cursor ? { cursor } : {}) });
      got.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    const resolved = all.filter((f) => f.status === 'resolved');
    expect(got.map((f) => f.id).sort()).toEqual(resolved.map((f) => f.id).sort());
    expect(new Set(got.map((f) => f.id)).size).toBe(got.length);
    expect(got.find((f) => f.id === all[3]!.id)?.diagnosis?.summary).toBe('dns is down');
    expect(got.every((f) => f.evidence.length === 2)).toBe(true);
    store.close();
  });

  it('prunes a large backlog in slices while the event loop keeps running', async () => {
    const store = Store.open({ dir: tempDir(), maxAgeDays: 1 });
    store.commit(batch(Array.from({ length: 3000 }, (_, i) => finding(i))));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const { deleted } = await store.prune(T0 + 30 * 86_400_000);
    clearInterval(timer);
    expect(deleted).toBe(2700);
    // Timers ran between the slices (200 findings each).
    expect(ticks).toBeGreaterThan(3);
    expect(store.listFindings({ status: 'resolved' }).items).toHaveLength(0);
    expect(store.openCounts().reduce((n, r) => n + r.n, 0)).toBe(300);
    store.close();
  });

  it('keeps the open counts of /metrics equal to the rows through inserts, status and severity changes and deletes', async () => {
    const dir = tempDir();
    const store = Store.open({ dir, maxAgeDays: 1 });
    const all = Array.from({ length: 500 }, (_, i) => finding(i));
    store.commit(batch(all));
    // Resolve some open ones, reopen some resolved ones with another severity, then let retention delete the old resolved ones.
    store.commit(batch(all.slice(0, 100).map((f, i) => (i % 3 ? { ...f, status: f.status === 'open' ? 'resolved' : 'open', severity: 'critical' } : f))));
    store.commit(batch(all.slice(0, 10)));
    await store.prune(T0 + 10 * 86_400_000);
    const db = new Database(join(dir, DB_FILE), { readonly: true });
    const truth = db
      .prepare("SELECT category, severity, count(*) AS n FROM findings WHERE status = 'open' GROUP BY 1, 2 ORDER BY 1, 2")
      .all() as { category: string; severity: string; n: number }[];
    db.close();
    const counts = [...store.openCounts()].sort((a, b) => a.category.localeCompare(b.category) || a.severity.localeCompare(b.severity));
    expect(truth.length).toBeGreaterThan(5);
    expect(counts).toEqual(truth);
    store.close();
  });
});

describe('a page of findings over HTTP', () => {
  it('is the same JSON as each finding served alone, with only the declared fields', async () => {
    const store = Store.open({ dir: tempDir() });
    const all = Array.from({ length: 120 }, (_, i) => finding(i));
    // Fields the API does not declare never reach a client.
    (all[5]!.subject as unknown as Record<string, unknown>).uid = 'secret-uid';
    // Text every JSON writer must escape alike, a node subject (no namespace or container), causes, not a root cause.
    const odd = `ctl ${String.fromCharCode(0, 1, 8, 9, 10, 12, 13, 27, 31, 127)} "q" \\ / \u2028 é 😀`;
    all[7] = { ...all[7]!, title: odd, message: odd, evidence: [{ source: 'kmsg', at: all[7]!.lastSeen, text: odd }], subject: { kind: 'Node', name: 'edge-1' }, causes: [all[0]!.id], rootCause: false };
    store.commit(batch(all));
    store.setDiagnosis(all[5]!.id, {
      summary: 'tab\there, "quoted", üñí ✓ and a newline\n',
      probableCause: 'c',
      nextSteps: ['a'],
      commands: ['kubectl get pods'],
      confidence: 'high',
      diagnoser: 'rule-hint',
      tokens: { prompt: 1, completion: 2 },
      latencyMs: 3.5,
      evidenceRefs: [0],
      internal: 'not for clients',
    } as never);
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const res = await app.inject('/v1/findings?limit=100');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const page = res.json() as { items: Finding[]; nextCursor: string | null };
    expect(page.items).toHaveLength(100);
    expect(typeof page.nextCursor).toBe('string');
    for (const item of page.items) {
      const alone = await app.inject(`/v1/findings/${item.id}`);
      expect(item).toEqual(alone.json());
    }
    // Byte for byte what JSON.stringify makes of the findings projected onto the page schema in JavaScript.
    const found = store.listFindings({ limit: 100 });
    expect(res.body).toBe(JSON.stringify(projectToSchema({ items: found.items.map(toPublicFinding), nextCursor: found.nextCursor }, responseSchema(FindingPageSchema))));
    const seven = page.items.find((f) => f.id === all[7]!.id)!;
    expect(seven).toMatchObject({ title: all[7]!.title, subject: { kind: 'Node', name: 'edge-1' }, causes: [all[0]!.id], rootCause: false });
    expect(seven.evidence[0]!.text).toBe(all[7]!.title);
    const five = page.items.find((f) => f.id === all[5]!.id)!;
    expect(JSON.stringify(five)).not.toMatch(/secret-uid|not for clients/);
    expect(five.diagnosis?.summary).toBe('tab\there, "quoted", üñí ✓ and a newline\n');
    expect(five.resolvedAt).toBe(all[5]!.lastSeen);
    const rest = (await app.inject(`/v1/findings?limit=100&cursor=${page.nextCursor}`)).json() as { items: Finding[]; nextCursor: string | null };
    expect(rest.items).toHaveLength(20);
    expect(rest.nextCursor).toBeNull();
    await app.close();
    store.close();
  });
});

describe('a page narrowed by since', () => {
  it('is cut from the page without since, byte for byte what SQLite answers for the narrowed query', async () => {
    const store = Store.open({ dir: tempDir() });
    // 1,100 findings on 500 distinct times: ties on lastSeen, broken by id, at every boundary.
    const all = Array.from({ length: 1100 }, (_, i) => finding(i));
    // Multi-byte text moves every later finding's byte offset in the body.
    for (const k of [0, 3, 501]) all[k] = { ...all[k]!, title: `é 😀 \u2028 "${k}"`, message: `ü ${String.fromCharCode(1)} ✓` };
    store.commit(batch(all));
    store.setDiagnosis(all[2]!.id, { summary: 'dns ✓', probableCause: 'c', nextSteps: [], commands: [], confidence: 'low', diagnoser: 'rule-hint', tokens: { prompt: 0, completion: 0 }, latencyMs: 1 });
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const diagnosisSchema = responseSchema(DiagnosisSchema);
    const sqlite = (q: FindingQuery) => listingBody(store.listFindingsJson(q), (d) => JSON.stringify(projectToSchema(JSON.parse(d), diagnosisSchema))).body.toString();
    const page2 = store.listFindings({ limit: 7 }).nextCursor!;
    let compared = 0;
    let cut = 0;
    for (const base of [{ limit: 7 }, { limit: 1 }, { limit: 50, status: 'open' as const }, { limit: 7, category: 'DNSFailure' as const }, { limit: 7, cursor: page2 }, {}]) {
      // Every lastSeen at the page's edge and a millisecond either side, and times before and after everything.
      const times = new Set<string>([iso(T0 + 1), iso(T0 - 600 * 60_000)]);
      for (const f of store.listFindings({ ...base, limit: (base.limit ?? 50) + 2 }).items) {
        for (const d of [-1, 0, 1]) times.add(iso(Date.parse(f.lastSeen) + d));
      }
      for (const since of times) {
        const params = new URLSearchParams({ ...Object.fromEntries(Object.entries(base).map(([k, v]) => [k, String(v)])), since });
        const res = await app.inject(`/v1/findings?${params}`);
        expect(res.statusCode).toBe(200);
        const expected = sqlite({ ...base, since });
        expect(res.body).toBe(expected);
        const page = res.json() as { items: Finding[]; nextCursor: string | null };
        expect(page.items.every((f) => f.lastSeen >= since)).toBe(true);
        if (expected !== sqlite(base)) cut++;
        compared++;
      }
    }
    // Most times narrow the page (a prefix, or the whole page without its next cursor); some leave it whole.
    expect(compared).toBeGreaterThan(60);
    expect(cut).toBeGreaterThan(compared / 3);
    expect(cut).toBeLessThan(compared);
    // An age is turned into a time once, on the server: the last hour of a history that ended long ago is empty.
    expect((await app.inject('/v1/findings?since=1h')).json()).toEqual({ items: [], nextCursor: null });
    await app.close();
    store.close();
  });
});

describe('pages served again between two changes', () => {
  it('serves the stored body until a commit, a diagnosis or retention changes the history', async () => {
    const store = Store.open({ dir: tempDir(), maxAgeDays: 1 });
    const all = Array.from({ length: 60 }, (_, i) => finding(i));
    store.commit(batch(all));
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const get = async (url: string) => (await app.inject(url)).json() as { items: Finding[]; nextCursor: string | null };
    const first = await get('/v1/findings?limit=10');
    expect(await get('/v1/findings?limit=10')).toEqual(first);
    const top = all.find((f) => f.id === first.items[0]!.id)!;
    // A condition seen again: only its count changes, and the page shows it.
    store.commit(batch([{ ...top, count: top.count + 5 }]));
    expect((await get('/v1/findings?limit=10')).items[0]!.count).toBe(top.count + 5);
    store.setDiagnosis(top.id, { summary: 'now diagnosed', probableCause: 'c', nextSteps: [], commands: [], confidence: 'low', diagnoser: 'rule-hint', tokens: { prompt: 0, completion: 0 }, latencyMs: 1 });
    expect((await get('/v1/findings?limit=10')).items[0]!.diagnosis?.summary).toBe('now diagnosed');
    // Another query is its own entry; a filter is never answered with another filter's page.
    expect((await get('/v1/findings?limit=10&status=open')).items.every((f) => f.status === 'open')).toBe(true);
    await store.prune(T0 + 30 * 86_400_000);
    expect((await get('/v1/findings?limit=10')).items.every((f) => f.status === 'open')).toBe(true);
    await app.close();
    store.close();
  });

  it('serves the timeline and the metrics history again until a finding or a sample changes them', async () => {
    const store = Store.open({ dir: tempDir() });
    const now = Date.now();
    const recent = (i: number): TrackedFinding => ({ ...finding(i), firstSeen: iso(now - 60_000), lastSeen: iso(now - 60_000), resolvedAt: null, status: 'open' });
    store.commit(batch([recent(1)]));
    // Two different 1-minute buckets.
    const minute = Math.floor(now / 60_000) * 60_000;
    store.addSamples(minute - 120_000, [{ name: 'cpu_percent', value: 10 }]);
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const get = async <T>(url: string) => (await app.inject(url)).json() as T;
    type Timeline = { items: { kind: string; finding: { id: string } }[] };
    type History = { lines: { points: { mean: number }[] }[] };
    expect((await get<Timeline>('/v1/timeline?since=1h')).items.map((e) => e.finding.id)).toEqual([recent(1).id]);
    expect((await get<History>('/v1/metrics/history?series=cpu&since=1h')).lines[0]!.points.map((p) => p.mean)).toEqual([10]);
    store.commit(batch([recent(2)]));
    store.addSamples(minute, [{ name: 'cpu_percent', value: 30 }]);
    expect((await get<Timeline>('/v1/timeline?since=1h')).items.map((e) => e.finding.id).sort()).toEqual([recent(1).id, recent(2).id].sort());
    const points = (await get<History>('/v1/metrics/history?series=cpu&since=1h')).lines[0]!.points.map((p) => p.mean);
    expect(points[points.length - 1]).toBe(30);
    await app.close();
    store.close();
  });

  it('keeps the metrics history equal to a full read while samples arrive, the window moves and retention prunes', async () => {
    const store = Store.open({ dir: tempDir() });
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const historySchema = responseSchema(MetricsHistorySchema);
    // Every point of a metric read again from the table, one line per label value, as the route once did for each body.
    const reader = new Database(store.path, { readonly: true });
    const fullSeries = (metric: string, firstBucket: number) => {
      const rows = reader
        .prepare(
          "SELECT labels, strftime('%Y-%m-%dT%H:%M:%fZ', bucket_start, 'unixepoch') AS at, value_sum / n AS mean, value_max AS max FROM metric_samples WHERE name = ? AND resolution = 60 AND bucket_start >= ? ORDER BY labels, bucket_start",
        )
        .all(metric, firstBucket) as { labels: string; at: string; mean: number; max: number }[];
      const lines = new Map<string, { at: string; mean: number; max: number }[]>();
      for (const { labels, ...point } of rows) lines.set(labels, [...(lines.get(labels) ?? []), point]);
      return [...lines].map(([labels, points]) => ({ labels, points }));
    };
    const fullRead = (series: 'disk' | 'memory', metric: string, sinceMs: number) => {
      const firstBucket = Math.ceil(sinceMs / 1000 / 60) * 60;
      const lines = fullSeries(metric, firstBucket).map((l) => ({
        label: l.labels || series,
        points: series === 'memory' ? l.points.map((p) => ({ at: p.at, mean: 100 - p.mean, max: 100 - p.mean })) : l.points,
      }));
      const help = series === 'disk' ? 'space used per filesystem' : 'memory in use (100 - available)';
      return JSON.stringify(projectToSchema({ series, unit: 'percent', help, resolutionSeconds: 60, lines }, historySchema));
    };
    const check = async () => {
      for (const [series, metric] of [['disk', 'fs_used_percent'], ['memory', 'memory_available_percent']] as const) {
        const since = Date.now() - 3_600_000;
        const body = (await app.inject(`/v1/metrics/history?series=${series}&since=1h`)).body;
        expect(body, series).toBe(fullRead(series, metric, since));
      }
    };
    const sample = (at: number, k: number) =>
      store.addSamples(at, [
        { name: 'fs_used_percent', labels: '/', value: 40 + (k % 7) / 3 },
        { name: 'fs_used_percent', labels: '/var', value: 70 + k / 9 },
        { name: 'memory_available_percent', value: 55 - k / 7 },
      ]);
    // An hour of history, then samples landing in the newest minute and in new minutes, with reads between.
    for (let k = 0; k < 60; k++) sample(minute - (59 - k) * 60_000, k);
    await check();
    for (let k = 0; k < 5; k++) {
      sample(minute + 1000 * k, 100 + k);
      await check();
    }
    sample(minute + 60_000, 200);
    store.addSamples(minute + 60_000, [{ name: 'fs_used_percent', labels: '/data', value: 12.5 }]);
    await check();
    // The window's start moving on, minute by minute, with samples between: points drop from the front.
    const kept = new HistoryText();
    const disk = { label: (l: string) => l || 'disk', invert: false };
    for (let k = 0; k < 70; k += 7) {
      const firstBucket = (minute - (60 - k) * 60_000) / 1000;
      if (k % 2) sample(minute + 60_000 + k * 100, 300 + k);
      const lines = fullSeries('fs_used_percent', firstBucket).map((l) => ({ label: l.labels, points: l.points }));
      expect(kept.lines(store, 'fs_used_percent', 60, firstBucket, disk), `from ${k}`).toBe(JSON.stringify(lines));
    }
    // Retention removes every 1-minute bucket older than a day from now: a day later, nothing is left to show.
    await store.prune(Date.now() + 2 * 86_400_000);
    await check();
    reader.close();
    await app.close();
    store.close();
  });

  it('exports the same feedback bytes until a verdict is added, then the new verdict too', async () => {
    const store = Store.open({ dir: tempDir() });
    const all = Array.from({ length: 3 }, (_, i) => finding(i));
    store.commit(batch(all));
    const app = buildApi({ store, status: () => ({ nodeName: 'n1' }) as never, ready: () => true });
    const verdict = (f: TrackedFinding, helpful: boolean) =>
      app.inject({ method: 'POST', url: `/v1/findings/${f.id}/feedback`, payload: { helpful } }).then((r) => expect(r.statusCode).toBe(201));
    const exported = async () => {
      const r = await app.inject('/v1/export/feedback.jsonl');
      expect(r.headers['content-type']).toMatch(/application\/x-ndjson/);
      expect(r.headers['content-disposition']).toMatch(/nodesage-feedback\.jsonl/);
      return r.body.trim().split('\n').map((l) => JSON.parse(l) as { finding: { id: string }; feedback: { helpful: boolean } });
    };
    await verdict(all[0]!, true);
    await verdict(all[1]!, false);
    const first = await exported();
    expect(first.map((l) => l.finding.id)).toEqual([all[0]!.id, all[1]!.id]);
    expect(await exported()).toEqual(first);
    await verdict(all[2]!, true);
    const after = await exported();
    expect(after.map((l) => [l.finding.id, l.feedback.helpful])).toEqual([
      [all[0]!.id, true],
      [all[1]!.id, false],
      [all[2]!.id, true],
    ]);
    await app.close();
    store.close();
  });

  it('sends a body served again gzip-compressed to clients that accept it, the same JSON once decoded', async () => {
    const store = Store.open({ dir: tempDir() });
    store.commit(batch(Array.from({ length: 60 }, (_, i) => finding(i))));
    const app = buildApi({ store, status: () => ({}) as never, ready: () => true });
    const url = '/v1/findings?limit=50';
    // A body is kept from the second time its page is asked for; its next use makes its compressed form.
    await app.inject(url);
    const plain = await app.inject(url);
    const asGzip = () => app.inject({ url, headers: { 'accept-encoding': 'gzip, deflate, br' } });
    const r = await asGzip();
    expect(r.headers.vary).toMatch(/accept-encoding/i);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.rawPayload.length).toBeLessThan(plain.rawPayload.length / 3);
    expect(Number(r.headers['content-length'])).toBe(r.rawPayload.length);
    expect(gunzipSync(r.rawPayload).toString('utf8')).toBe(plain.body);
    // A page built again after a change, for a key served many times, is compressed from its first response.
    store.commit(batch([{ ...finding(3), count: 99 }]));
    const rebuilt = await asGzip();
    expect(rebuilt.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(rebuilt.rawPayload).toString('utf8')).toContain('"count":99');
    // A client that does not ask for gzip (or refuses it) still gets plain JSON.
    for (const headers of [{}, { 'accept-encoding': 'gzip;q=0, identity' }, { 'accept-encoding': 'br' }]) {
      const p = await app.inject({ url, headers });
      expect(p.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(p.body)).toEqual(JSON.parse(gunzipSync(rebuilt.rawPayload).toString('utf8')));
    }
    await app.close();
    store.close();
  });

  it('reads Accept-Encoding weights as RFC 9110 gives them', () => {
    expect(acceptsGzip('gzip')).toBe(true);
    expect(acceptsGzip('GZIP;q=0.5')).toBe(true);
    expect(acceptsGzip('deflate, *')).toBe(true);
    expect(acceptsGzip('x-gzip')).toBe(true);
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip('identity')).toBe(false);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('gzip;q=0, *')).toBe(false);
    expect(acceptsGzip('*;q=0')).toBe(false);
  });

  it('keeps a body from the second time its key is asked for, at most its entries and bytes, the least recently used going first', () => {
    const cache = new PageCache({ maxEntries: 3, maxBytes: 400 });
    expect(cache.get('s', 1, () => 'ü').body.toString('utf8')).toBe('ü');
    let builds = 0;
    const build = (text: string) => () => {
      builds++;
      return text;
    };
    const body = (k: string, size = 10) => cache.get(k, 1, build(k.repeat(size)));
    const twice = (k: string) => [body(k), body(k)];
    // Asked for once, a body is not kept; asked for again, it is.
    for (const k of ['a', 'b', 'c']) twice(k);
    expect(builds).toBe(6);
    body('a'); // a is now the most recently used
    twice('d'); // evicts b
    expect(builds).toBe(8);
    body('a');
    body('c');
    body('d');
    expect(builds).toBe(8);
    twice('b'); // evicts a
    expect(builds).toBe(10);
    // Pages asked for once each (a cursor of its own every time) never push out the pages read often.
    for (let k = 0; k < 100; k++) body(`once-${k}`);
    expect(builds).toBe(110);
    body('b');
    body('c');
    body('d');
    expect(builds).toBe(110);
    // Another generation is a miss, kept at once (the key was kept); a body over a quarter of the budget is served but never kept.
    cache.get('b', 2, build('x'));
    cache.get('b', 2, build('x'));
    expect(builds).toBe(111);
    for (let k = 0; k < 3; k++) body('big', 200);
    expect(builds).toBe(114);
  });

  it('leaves the full-text index alone when a finding is written again with the same text', async () => {
    const store = Store.open({ dir: tempDir() });
    const all = Array.from({ length: 50 }, (_, i) => finding(i));
    store.commit(batch(all));
    expect(store.refreshSearchIndex()).toBe(50);
    const before = await store.searchAsync('line one of 7');
    store.commit(batch(all.map((f) => ({ ...f, count: f.count + 1, lastSeen: iso(T0 + 1000) }))));
    expect(store.refreshSearchIndex()).toBe(0);
    // The ranking is reused, the finding is read as it is now.
    const after = await store.searchAsync('line one of 7');
    expect(after.findings.map((h) => h.finding.id)).toEqual(before.findings.map((h) => h.finding.id));
    expect(after.findings[0]!.finding.count).toBe(before.findings[0]!.finding.count + 1);
    // New evidence does reach the index.
    store.commit(batch([{ ...all[7]!, evidence: [...all[7]!.evidence, { source: 'podLog', at: iso(T0 + 2000), text: 'a third line' }] }]));
    expect(store.refreshSearchIndex()).toBe(1);
    store.close();
  });
});

describe('search off the event loop', () => {
  it('answers like the synchronous search, and follows changes to the history', async () => {
    const store = Store.open({ dir: tempDir() });
    store.commit(batch(Array.from({ length: 300 }, (_, i) => finding(i))));
    const ids = (r: { findings: { finding: { id: string } }[] }) => r.findings.map((h) => h.finding.id);
    const sync = store.search('line one of 42');
    const off = await store.searchAsync('line one of 42');
    expect(ids(off)).toEqual(ids(sync));
    expect(off.findings[0]!.finding.evidence).toEqual(sync.findings[0]!.finding.evidence);
    expect(off.findings[0]!.finding.title).toBe('finding 42');
    // A rewritten finding is found by its new words at once, and not by its old ones.
    const f42 = finding(42);
    store.commit(batch([{ ...f42, evidence: [{ source: 'podLog', at: f42.lastSeen, text: 'certificate signed by unknown authority' }] }]));
    expect(ids(await store.searchAsync('unknown authority'))).toEqual([f42.id]);
    // The question asked before the change is not answered from before the change.
    const again = (await store.searchAsync('line one of 42')).findings.find((h) => h.finding.id === f42.id);
    expect(again?.finding.evidence.map((e) => e.text)).toEqual(['certificate signed by unknown authority']);
    // Deleted by retention: gone from the answers too.
    await store.prune(T0 + 400 * 86_400_000);
    expect((await store.searchAsync('unknown authority')).findings).toEqual([]);
    store.close();
  });
});

describe('upgrade from the previous schema', () => {
  it('migrates a database made by the migrations before this one in place, keeping every finding, its evidence and search', async () => {
    const dir = tempDir();
    const previous = MIGRATIONS.length - 1;
    const db = new Database(join(dir, DB_FILE));
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    for (let v = 0; v < previous; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${previous}`);
    db.close();
    // Filled through the previous schema's own columns (this Store would migrate first).
    const old = new Database(join(dir, DB_FILE));
    const insert = old.prepare(`INSERT INTO findings (id, category, severity, subject, title, message, detail, detector, lifecycle,
      first_seen, last_seen, count, status, resolved_at, causes, root_cause, facts, diagnosis, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, '[]', 1, NULL, NULL, ?)`);
    const ev = old.prepare('INSERT INTO evidence (finding_id, seq, source, at, text) VALUES (?, ?, ?, ?, ?)');
    const all = Array.from({ length: 1200 }, (_, i) => finding(i));
    old.transaction(() => {
      for (const f of all) {
        insert.run(f.id, f.category, f.severity, JSON.stringify(f.subject), f.title, f.message, f.detector, f.lifecycle, f.firstSeen, f.lastSeen, f.count, f.status, f.resolvedAt, f.lastSeen);
        for (const [seq, e] of f.evidence.entries()) ev.run(f.id, seq, e.source, e.at, e.text);
      }
    })();
    const indexesBefore = (old.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'findings' AND sql IS NOT NULL").all() as { name: string }[]).map((r) => r.name);
    expect(indexesBefore.sort()).toEqual(['findings_category', 'findings_status_seen']);
    old.close();

    const store = Store.open({ dir });
    // The counters start from what the old database held.
    expect(store.openCounts().reduce((n, r) => n + r.n, 0)).toBe(all.filter((f) => f.status === 'open').length);
    const cursor = store.listFindings({ limit: 50 }).nextCursor!;
    for (const q of listingShapes(cursor)) for (const line of store.queryPlans(q).listing) expect(bad(line), `${JSON.stringify(q)}: ${line}`).toBe(false);
    const got: string[] = [];
    let next: string | null = null;
    do {
      const page = store.listFindings({ limit: 500, ...(next ? { cursor: next } : {}) });
      got.push(...page.items.map((f) => f.id));
      next = page.nextCursor;
    } while (next);
    expect(got.sort()).toEqual(all.map((f) => f.id).sort());
    const f = store.getFinding(all[42]!.id)!;
    expect(f.evidence.map((e) => e.text)).toEqual(['line one of 42', 'line two of 42']);
    // The previous schema noted every row for the search index; maintenance indexes them in slices.
    expect(await store.maintainSearchIndex()).toBe(1200);
    expect(store.search('finding 42').findings.map((h) => h.finding.id)).toContain(all[42]!.id);
    store.close();
    // Reopening does not migrate again.
    const again = new Database(join(dir, DB_FILE));
    expect(again.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    again.close();
  });
});
