/**
 * `/v1/ask` and `nodesage ask` in the real daemon with the generated tiny
 * model: retrieval finds the node's finding and the operator's runbook, the
 * answer streams as server-sent events in order, cites only what it was
 * given, and the CLI prints the same answer as it arrives.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseParser } from '../daemon/api/web/sse.js';
import type { Finding } from '../daemon/core/types.js';
import { type DaemonProcess, getJson, runCli, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { ensureTinyModel } from './helpers/test-model.js';

let daemon: DaemonProcess;
let modelId: string;
let disk: Finding;

beforeAll(async () => {
  const model = await ensureTinyModel();
  modelId = model.split('/').pop()!.replace(/\.gguf$/, '');
  const runbooks = join(tempDir(), 'runbooks');
  mkdirSync(runbooks);
  writeFileSync(join(runbooks, 'disk-full.md'), '# Disk full on edge nodes\n\nWhen a filesystem fills up, prune unused images with crictl.\n');
  daemon = await startDaemon({
    env: {
      NODESAGE_DATA_DIR: tempDir(),
      NODESAGE_MODEL: model,
      NODESAGE_LLM_CONTEXT_SIZE: '4096',
      NODESAGE_LLM_MAX_TOKENS: '48',
      NODESAGE_RUNBOOKS_DIR: runbooks,
      // Every filesystem counts as nearly full: a DiskFull finding to ask about.
      NODESAGE_DISK_WARN_PERCENT: '1',
      // One detection cycle only: the finding (and so the prompt) stays the same between questions.
      NODESAGE_DETECT_INTERVAL_SECONDS: '3600',
    },
  });
  // Wait for every diagnosis too: they change the prompt, and the CLI test compares two greedy answers.
  const all = await waitFor(
    async () => {
      const items = (await getJson<{ items: Finding[] }>(`${daemon.url}/v1/findings`)).body.items;
      return items.some((f) => f.category === 'DiskFull') && items.every((f) => f.diagnosis) ? items : null;
    },
    90_000,
    200,
  );
  disk = all.find((f) => f.category === 'DiskFull')!;
}, 120_000);

afterAll(async () => {
  await daemon?.kill('SIGKILL');
});

async function askJson(question: string) {
  const r = await fetch(`${daemon.url}/v1/ask`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question }) });
  expect(r.status).toBe(200);
  return (await r.json()) as { answer: string; diagnoser: string; citations: { findings: string[]; runbooks: string[] }; tokens: { prompt: number } };
}

describe('ask with the local model', () => {
  it('streams citations, then tokens, then done; the answer cites only what it was given', async () => {
    const r = await fetch(`${daemon.url}/v1/ask`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ question: 'Is the disk full? What does the runbook say?' }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: { event: string; data: Record<string, unknown> }[] = [];
    const push = sseParser((event, data) => events.push({ event, data: JSON.parse(data) as Record<string, unknown> }));
    const decoder = new TextDecoder();
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) push(decoder.decode(chunk, { stream: true }));

    const names = events.map((e) => e.event);
    expect(names[0]).toBe('citations');
    expect(names[names.length - 1]).toBe('done');
    expect(names.slice(1, -1).every((n) => n === 'token')).toBe(true);
    expect(names.length).toBeGreaterThan(2);

    const first = events[0]!.data as { findings: string[]; runbooks: string[]; rulesOnly: boolean };
    expect(first.findings).toContain(disk.id);
    expect(first.runbooks).toEqual(['disk-full']);
    expect(first.rulesOnly).toBe(false);

    const done = events[events.length - 1]!.data as {
      answer: string;
      citations: { findings: string[]; runbooks: string[] };
      diagnoser: string;
      rulesOnly: boolean;
      tokens: { prompt: number; completion: number };
      finishReason: string;
    };
    expect(done.diagnoser).toBe(`llm:${modelId}`);
    expect(done.rulesOnly).toBe(false);
    expect(done.answer).toBe(events.slice(1, -1).map((e) => e.data.text).join(''));
    for (const id of done.citations.findings) expect(first.findings).toContain(id);
    for (const id of done.citations.runbooks) expect(first.runbooks).toContain(id);
    expect(done.tokens.prompt).toBeGreaterThan(100);
    expect(done.tokens.completion).toBeLessThanOrEqual(48);
    expect(['stop', 'length']).toContain(done.finishReason);
  }, 120_000);

  it('nodesage ask prints the streamed answer, then its sources', async () => {
    const question = 'is the disk full?';
    const json = await askJson(question);
    expect(json.diagnoser).toBe(`llm:${modelId}`);
    const cli = await runCli(['ask', question], { env: { NODESAGE_LISTEN: daemon.url.replace(/^http:\/\//, '') }, timeoutMs: 120_000 });
    expect(cli.code, cli.stderr).toBe(0);
    // Greedy decoding of the same prompt: the CLI printed exactly the generated answer.
    expect(cli.stdout.startsWith(json.answer)).toBe(true);
    const tail = cli.stdout.slice(json.answer.length);
    expect(tail).toMatch(/^\n?\n(Cited:|Not cited, but given as context:)\n/);
    expect(tail).toContain(`finding ${disk.id}`);
    expect(tail).toContain('runbook disk-full  Disk full on edge nodes');
    expect(tail).toMatch(new RegExp(`\\(llm:${modelId}, \\d+\\.\\d s\\)\\n$`));

    const asJson = await runCli(['ask', question, '--json'], { env: { NODESAGE_LISTEN: daemon.url.replace(/^http:\/\//, '') }, timeoutMs: 120_000 });
    expect(asJson.code, asJson.stderr).toBe(0);
    expect((JSON.parse(asJson.stdout) as { answer: string }).answer).toBe(json.answer);

    const bad = await runCli(['ask', 'x', '--since', 'yesterday'], { env: { NODESAGE_LISTEN: daemon.url.replace(/^http:\/\//, '') } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('nodesage: --since must be an RFC3339 time (2026-05-04T08:00:00Z) or an age such as 30m, 1h, 2d, not "yesterday"\n');
  }, 240_000);
});
