/**
 * The CLI as a person meets it, run as the built `nodesage` against a seeded
 * agent and real bundles: the whole story of one finding, tables that fit,
 * diagnoses in text output (rule hints without a model, the tiny model's
 * with one), one-line failures with the right exit code and the allowed
 * values, client commands that show only their own flags, and the daemon's
 * start-up lines. Text output is compared with snapshots in __snapshots__/.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, PROJECT_ROOT, runCli, startDaemon, tempDir } from './helpers/daemon-process.js';
import { IDS, type SurfaceNode, startSurfaceNode } from './helpers/surface-node.js';
import { ensureTinyModel } from './helpers/test-model.js';
import { CATEGORIES } from '../daemon/core/types.js';

const NOW = Date.parse('2026-05-04T08:00:00Z');
const BUNDLE = new URL('./fixtures/bundles/probe-liveness-disk-full', import.meta.url).pathname;
const CRASH_BUNDLE = new URL('./fixtures/bundles/crashloop-oom-memcg', import.meta.url).pathname;

let node: SurfaceNode;
beforeAll(async () => {
  node = await startSurfaceNode('edge-04', { now: NOW });
});
afterAll(async () => node?.close());

const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { env: { NODESAGE_URL: node.url, NO_COLOR: '', ...env } });
const snap = (name: string) => `./__snapshots__/cli-people/${name}`;

describe('findings', () => {
  it('`findings show ID` tells the whole story: evidence, cause, diagnosis with commands and who wrote it', async () => {
    const r = await cli(['findings', 'show', IDS.probe]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('caused by');
    expect(r.stdout).toContain(`${IDS.disk}  critical DiskFull node/edge-04 (open): Filesystem /var/lib/containerd is 97% full`);
    expect(r.stdout).toContain('diagnosis (rule-hint, confidence');
    expect(r.stdout).toContain('$ kubectl -n media describe pod transcoder-69f8b7c6d5-8n4kd');
    await expect(r.stdout).toMatchFileSnapshot(snap('findings-show-probe.txt'));
    const root = await cli(['findings', 'show', IDS.disk]);
    expect(root.stdout).toMatch(/\ncauses\n {2}b40be0220000bb02 {2}warning ProbeFailure/);
    const json = JSON.parse((await cli(['findings', 'show', IDS.disk, '--json'])).stdout) as { finding: { id: string }; consequences: { id: string }[] };
    expect(json.finding.id).toBe(IDS.disk);
    expect(json.consequences.map((c) => c.id)).toEqual([IDS.probe]);
  });

  it('the table fits the width, keeps LAST SEEN apart from TITLE, and shows each diagnosis summary', async () => {
    const r = await cli(['findings']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(120);
    const header = lines[0]!;
    const titleAt = header.indexOf('TITLE');
    for (const row of lines.filter((l) => /^(critical|warning|info) /.test(l))) {
      expect(row.slice(header.indexOf('LAST SEEN'), titleAt)).toMatch(/^2026-05-04 0\d:\d\d:\d\dZ +$/);
    }
    expect(r.stdout).toContain(`${IDS.disk}  Filesystem /var/lib/containerd on node edge-04 is 97.1% full. (rule-hint, high)`);
    await expect(r.stdout).toMatchFileSnapshot(snap('findings-table.txt'));
    // No colour codes off a TTY.
    expect(r.stdout.includes('\u001b[')).toBe(false);
  });
});

describe('analyze --format text', () => {
  it('without a model gives every finding its rule-hint diagnosis, as the daemon does', async () => {
    const r = await runCli(['analyze', '--bundle', BUNDLE, '--format', 'text']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('diagnosis (rule-hint, confidence');
    expect(r.stdout).toContain('read-only commands:');
    await expect(r.stdout).toMatchFileSnapshot(snap('analyze-probe-disk-rules.txt'));
    const json = JSON.parse((await runCli(['analyze', '--bundle', BUNDLE])).stdout) as { diagnosis: { diagnoser: string } | null }[];
    expect(json.every((f) => f.diagnosis?.diagnoser === 'rule-hint')).toBe(true);
  });

  it('with the tiny model prints the model\'s diagnosis and no progress off a TTY; a bad model is refused with exit 2', async () => {
    const model = await ensureTinyModel();
    const r = await runCli(['analyze', '--bundle', CRASH_BUNDLE, '--format', 'text', '--model', model], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = model.split('/').at(-1)!.replace(/\.gguf$/, '');
    expect(r.stdout).toContain(`diagnosis (llm:${id}, confidence`);
    await expect(r.stdout.replaceAll(id, 'tiny')).toMatchFileSnapshot(snap('analyze-crashloop-tiny-model.txt'));

    const missing = await runCli(['analyze', '--bundle', CRASH_BUNDLE, '--model', '/nonexistent/model.gguf']);
    expect(missing).toMatchObject({ code: 2, stdout: '', stderr: 'nodesage: model file not found: /nonexistent/model.gguf\n' });
    const notGguf = join(tempDir(), 'model.gguf');
    writeFileSync(notGguf, 'this is not a model');
    const bad = await runCli(['analyze', '--bundle', CRASH_BUNDLE, '--model', notGguf]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(`nodesage: ${notGguf} is not a usable GGUF file: bad magic "this" (expected "GGUF")\n`);
    // A LoRA adapter the model cannot take is the same kind of mistake: the user's file, exit 2.
    const config = join(tempDir(), 'nodesage.yaml');
    writeFileSync(config, 'llm:\n  loras:\n    - path: /nonexistent/adapter.gguf\n');
    const adapter = await runCli(['analyze', '--bundle', CRASH_BUNDLE, '--model', model], { env: { NODESAGE_CONFIG: config } });
    expect(adapter).toMatchObject({ code: 2, stdout: '' });
    expect(adapter.stderr).toMatch(/^nodesage: LoRA adapter \/nonexistent\/adapter\.gguf cannot be used: .*not found.*\n$/);
  });
});

describe('failures are one plain line', () => {
  it('names the allowed values, the accepted since forms and the way to point at the daemon', async () => {
    const cases: [string[], number, RegExp][] = [
      [['findings', '--category', 'Crashloop'], 2, new RegExp(`^nodesage: option '--category <category>' argument 'Crashloop' is invalid\\. Allowed choices are ${CATEGORIES.join(', ')}\\.$`)],
      [['findings', '--since', 'yesterday'], 2, /^nodesage: --since must be an RFC3339 time \(2026-05-04T08:00:00Z\) or an age such as 30m, 1h, 2d, not "yesterday"$/],
      [['findings', 'show', 'abc'], 2, /^nodesage: a finding id is 16 hex characters/],
      [['findings', 'show', '0000000000000000'], 1, /^nodesage: no finding with id 0000000000000000 \(see `nodesage findings --status all`\)$/],
      [['status', '--url', 'http://127.0.0.1:1'], 1, /^nodesage: cannot reach the nodesage daemon at 127\.0\.0\.1:1 \(ECONNREFUSED\); is it running\? \(set --url or NODESAGE_URL\)$/],
      [['status', '--url', 'ftp://x'], 2, /^nodesage: invalid configuration --url="ftp:\/\/x": http:\/\/host:port/],
      [['findings', '--bogus'], 2, /^nodesage: unknown option '--bogus'$/],
    ];
    for (const [args, code, line] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stdout, args.join(' ')).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0], args.join(' ')).toMatch(line);
    }
    // since in relative form works end to end.
    const recent = await cli(['findings', '--since', '2d', '--json']);
    expect(recent.code).toBe(0);
  });

  it('client commands list only their own flags', async () => {
    for (const cmd of ['status', 'findings', 'ask', 'mcp']) {
      const r = await cli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout, cmd).toContain('--url <url>');
      for (const daemonFlag of ['--kubelet-url', '--host-root', '--listen', '--data-dir', '--standalone']) expect(r.stdout, `${cmd} ${daemonFlag}`).not.toContain(daemonFlag);
    }
  });
});

describe('daemon start-up', () => {
  it('off a TTY logs JSON with the URL in its own field; a port in use is one plain line and exit 1', async () => {
    const d = await startDaemon({ env: { NODESAGE_DATA_DIR: tempDir(), NODESAGE_STANDALONE: 'true' } });
    try {
      const line = d.stdout().split('\n').find((l) => l.includes('"url"'))!;
      expect(JSON.parse(line)).toMatchObject({ url: d.url, msg: `nodesage serving on ${d.url}` });
    } finally {
      await d.kill();
    }
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runCli(['daemon', '--listen', `127.0.0.1:${port}`], { env: { NODESAGE_DATA_DIR: tempDir(), NODESAGE_LOG_LEVEL: 'info' } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`nodesage: cannot listen on 127.0.0.1:${port}: the address is already in use (is another nodesage running? set --listen or NODESAGE_LISTEN)\n`);
      expect(r.stdout).not.toMatch(/"stack"|at .*\.js:\d+/);
    } finally {
      busy.close();
    }
  });
});

describe('doctor', () => {
  it('prints one check per line with a fix for each that is not ok, and JSON with --json', async () => {
    const dataDir = tempDir();
    const r = await runCli(['doctor', '--json', '--data-dir', dataDir, '--model', '/nonexistent/model.gguf']);
    const { checks } = JSON.parse(r.stdout) as { checks: { id: string; status: string; detail: string; fix: string | null }[] };
    expect(checks.map((c) => c.id)).toEqual(expect.arrayContaining(['host-path', 'kubelet', 'apiserver', 'journald', 'model', 'disk', 'clock']));
    const model = checks.find((c) => c.id === 'model')!;
    expect(model).toMatchObject({ status: 'fail', detail: 'model file not found: /nonexistent/model.gguf' });
    expect(model.fix).toMatch(/memoryBudgetMB/);
    expect(checks.find((c) => c.id === 'disk')!.status).toBe('ok');
    for (const c of checks) if (c.status === 'fail' || c.status === 'warn') expect(c.fix, c.id).toBeTruthy();
    expect(r.code).toBe(1);
    const text = await runCli(['doctor', '--data-dir', dataDir, '--model', '/nonexistent/model.gguf']);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => /^(ok|warn|FAIL|skip) /.test(l))).toHaveLength(checks.length);
    expect(text.stdout).toMatch(/^FAIL model +model file not found: \/nonexistent\/model\.gguf {2}→ stage a model/m);
  });
});

/** Runs a command on a pseudo-terminal (util-linux `script`), as a person at a terminal would; returns what the terminal showed. */
function onTty(command: string, env: Record<string, string>): Promise<string> {
  const log = join(tempDir(), 'tty.log');
  return new Promise((resolve, reject) => {
    execFile('script', ['-qfec', command, log], { cwd: PROJECT_ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 120_000 }, (err) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      resolve(readFileSync(log, 'utf8'));
    });
  });
}

describe('on a terminal', () => {
  it('the daemon logs readable lines and puts its URL on a line of its own', async () => {
    const out = await onTty(`timeout -s INT 8 ${process.execPath} ${CLI} daemon --listen 127.0.0.1:0`, { NODESAGE_DATA_DIR: tempDir(), NODESAGE_STANDALONE: 'true' });
    expect(out).toMatch(/^\d\d:\d\d:\d\d INFO {2}nodesage serving on http:\/\/127\.0\.0\.1:\d+/m);
    expect(out).toMatch(/^ {2}http:\/\/127\.0\.0\.1:\d+\/\r?$/m);
    expect(out).not.toContain('{"level"');
  });

  it('analyze --model shows its progress on stderr while the model loads, then clears it', async () => {
    const model = await ensureTinyModel();
    const out = await onTty(`${process.execPath} ${CLI} analyze --bundle ${CRASH_BUNDLE} --format text --model ${model}`, {});
    expect(out).toMatch(/checking model tiny-/);
    expect(out).toMatch(/loading model tiny-\S+ \(\d+ MiB\)/);
    expect(out).toMatch(/diagnosing finding 1 of 2/);
    expect(out).toContain('2 findings: 2 critical');
  });
});
