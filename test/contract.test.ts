/**
 * The public contract (daemon/core/contract.ts) against what users get: the
 * bodies a real daemon serves, the response schemas its routes declare (and
 * its OpenAPI document shows), `analyze --format json`, and the README.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { analyzeBundle } from '../daemon/analyze.js';
import {
  ApiErrorSchema,
  DiagnosisInputSchema,
  FindingPageSchema,
  FindingSchema,
  MetricsHistorySchema,
  StatusSchema,
  TimelineSchema,
  responseSchema,
} from '../daemon/core/contract.js';
import { CATEGORIES } from '../daemon/core/types.js';
import { type DaemonProcess, getJson, PROJECT_ROOT, runCli, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';

let running: DaemonProcess | undefined;
afterEach(async () => {
  if (running) await running.kill('SIGKILL');
  running = undefined;
});

/** The response schema a route declares, as the OpenAPI document shows it. */
function declared(doc: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> }, method: string, path: string, code: string): unknown {
  return doc.paths[path]?.[method]?.responses[code]?.content?.['application/json']?.schema;
}

describe('the contract', () => {
  it("a real daemon's status and findings are the contract's shapes, and its routes declare the derived schemas", async () => {
    const dataDir = tempDir();
    // A 1% threshold makes every real filesystem of this machine a DiskFull finding.
    running = await startDaemon({
      env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_DISK_WARN_PERCENT: '1', NODESAGE_DISK_CRITICAL_PERCENT: '100', NODESAGE_HOST_INTERVAL_SECONDS: '0.2', NODESAGE_DETECT_INTERVAL_SECONDS: '0.2' },
    });
    const url = running.url;
    await waitFor(async () => (await getJson(`${url}/readyz`)).status === 200);

    const status = await getJson<unknown>(`${url}/v1/status`);
    expect(status.status).toBe(200);
    // parse() drops undeclared fields: equal means the body is exactly the contract's shape.
    expect(StatusSchema.parse(status.body)).toEqual(status.body);
    expect(StatusSchema.parse(status.body).sources.find((s) => s.name === 'host')?.state).toBe('healthy');

    const page = await waitFor(async () => {
      const r = await getJson<unknown>(`${url}/v1/findings?category=DiskFull`);
      return r.status === 200 && (r.body as { items: unknown[] }).items.length > 0 ? r.body : null;
    });
    const parsed = FindingPageSchema.parse(page);
    expect(parsed).toEqual(page);
    const first = parsed.items[0]!;
    expect(first.category).toBe('DiskFull');
    expect(first.diagnosis?.diagnoser).toBe('rule-hint');

    const one = await getJson<unknown>(`${url}/v1/findings/${first.id}`);
    expect(one.status).toBe(200);
    expect(FindingSchema.parse(one.body)).toEqual(one.body);

    const missing = await getJson<unknown>(`${url}/v1/findings/0000000000000000`);
    expect(missing.status).toBe(404);
    expect(ApiErrorSchema.parse(missing.body).error.code).toBe('FINDING_NOT_FOUND');

    const timeline = await getJson<unknown>(`${url}/v1/timeline?since=1h`);
    expect(TimelineSchema.parse(timeline.body)).toEqual(timeline.body);
    const history = await getJson<unknown>(`${url}/v1/metrics/history?series=disk&since=1h`);
    expect(MetricsHistorySchema.parse(history.body)).toEqual(history.body);

    const doc = (await getJson<Parameters<typeof declared>[0]>(`${url}/v1/openapi.json`)).body;
    expect(declared(doc, 'get', '/v1/status', '200')).toEqual(responseSchema(StatusSchema));
    expect(declared(doc, 'get', '/v1/findings', '200')).toEqual(responseSchema(FindingPageSchema));
    expect(declared(doc, 'get', '/v1/findings/{id}', '200')).toEqual(responseSchema(FindingSchema));
    expect(declared(doc, 'get', '/v1/findings/{id}', '404')).toEqual(responseSchema(ApiErrorSchema));
    expect(declared(doc, 'get', '/v1/timeline', '200')).toEqual(responseSchema(TimelineSchema));
    // The enums reach clients: a category outside the catalog is not a valid finding.
    expect(JSON.stringify(declared(doc, 'get', '/v1/findings/{id}', '200'))).toContain('"DiskFailure"');
  }, 60_000);

  it('analyze --format json prints findings of the contract shape, without detector facts', async () => {
    const crash = join(PROJECT_ROOT, 'test/fixtures/bundles/crashloop-oom-memcg');
    const r = await runCli(['analyze', '--bundle', crash, '--format', 'json']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as unknown[];
    const findings = z.array(FindingSchema).parse(printed);
    expect(findings).toEqual(printed);
    expect(findings.map((f) => f.category)).toContain('CrashLoop');
    expect(printed.some((f) => Object.hasOwn(f as object, 'facts'))).toBe(false);
  }, 60_000);

  it('what every fixture bundle gives the diagnoser is a DiagnosisInput: the finding with its detector facts', async () => {
    const dir = join(PROJECT_ROOT, 'test/fixtures/bundles');
    let withFacts = 0;
    for (const name of readdirSync(dir)) {
      const { findings } = await analyzeBundle(join(dir, name));
      for (const f of findings) {
        expect(DiagnosisInputSchema.parse(f), `${name}: ${f.category}`).toEqual(f);
        if (f.facts && Object.keys(f.facts).length > 0) withFacts++;
      }
    }
    expect(withFacts).toBeGreaterThan(10);
    const crash = (await analyzeBundle(join(dir, 'crashloop-oom-memcg'))).findings.find((f) => f.category === 'CrashLoop');
    expect(typeof crash?.facts?.exitCode).toBe('number');
  }, 60_000);

  it("keeps the README's finding example and category list in step with the schema", () => {
    const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    const example = /A finding:\n\n```json\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const finding = JSON.parse(example!) as unknown;
    expect(FindingSchema.parse(finding)).toEqual(finding);

    const list = /`category` is one of: ([\s\S]*?)\. One problem/.exec(readme)?.[1];
    expect(list?.split(/,\s*/)).toEqual([...CATEGORIES]);
  });
});
