/**
 * The redaction corpus through the real pipeline, checked at every sink.
 *
 * The corpus lines are written as CRI container logs of crash-looping pods
 * (10 lines each, so every line is CrashLoop evidence), as real journal files
 * (kubelet and containerd lines that the log rules turn into exported Events),
 * as a Kubernetes Event message, a termination message and pod env values on
 * the loopback fake API server. The built daemon (`node dist/daemon/cli.js
 * daemon`) reads them with its real collectors, with the Events exporter on.
 * Then every place a secret could end up is read back: findings served by
 * the API, log templates and their samples and full-text index (SQLite),
 * `/v1/ask` answers (rules-only), the diagnosis prompt of every finding (the
 * real prompt builder), a `capture` bundle, `analyze --format json` of that
 * bundle, the Events sent to the API server, and the raw bytes of the SQLite
 * files. No secret may appear anywhere; every look-alike must come out whole.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Finding } from '../daemon/core/types.js';
import { clip } from '../daemon/detectors/pod-status.js';
import { buildPrompt } from '../daemon/diagnoser/prompt.js';
import { ruleHint } from '../daemon/diagnoser/rule-hint.js';
import { createRedactor } from '../daemon/redact.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { FakeKubelet } from './harness/fake-kubelet.js';
import { daemonRequest, fakeNodeEnv, operatorAccess, runCli, Started, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { appendJournal, criLine, journalRemoteBinary, makeHostRoot } from './helpers/host-root.js';
import { loadLookAlikes, loadPositives } from './helpers/redaction-corpus.js';

const BUNDLE = join(import.meta.dirname, 'fixtures/kube');
const NODE = 'edge-node-1';
const NS = 'redaction';
const LINES_PER_POD = 10;

const positives = loadPositives();
const lookAlikes = loadLookAlikes();
const redact = createRedactor();

const started = new Started();
afterAll(() => started.stop());

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** A crash-looping pod whose last run wrote `lines`, as the API server and the CRI log directory show it. */
function crashLoopPod(host: string, name: string, lines: string[], start: number, extra: { env?: { name: string; value: string }[]; termination?: string } = {}) {
  const uid = randomUUID();
  const dir = join(host, 'var/log/pods', `${NS}_${name}_${uid}`, 'app');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, '0.log'), lines.map((l, i) => criLine(new Date(start + i * 10), i % 2 ? 'stderr' : 'stdout', 'F', l)).join(''));
  const container = { name: 'app', image: 'registry.internal/redaction/app:1.0', ...(extra.env ? { env: extra.env } : {}) };
  const annotations = extra.env ? { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ kind: 'Pod', spec: { containers: [container] } }) } : {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, uid, creationTimestamp: new Date(start - 600_000).toISOString(), annotations },
    spec: { nodeName: NODE, restartPolicy: 'Always', containers: [container] },
    status: {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'app',
          ready: false,
          restartCount: 5,
          image: container.image,
          state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 5m0s restarting failed container=app' } },
          lastState: {
            terminated: {
              exitCode: 1,
              reason: 'Error',
              startedAt: new Date(start - 1000).toISOString(),
              finishedAt: new Date(start + lines.length * 10 + 1000).toISOString(),
              ...(extra.termination ? { message: extra.termination } : {}),
            },
          },
        },
      ],
    },
  };
}

/** Every file of a folder, as text. */
function readTree(dir: string): { path: string; text: string }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((p) => join(dir, p))
    .filter((p) => statSync(p).isFile())
    .map((path) => ({ path, text: readFileSync(path, 'latin1') }));
}

/** What one sink holds, split into the part about positives and the part about look-alikes (when it can be told). */
interface Sink {
  name: string;
  /** Everything the sink holds (checked for every secret). */
  all: string;
  /** Look-alike lines that must appear in it whole, and the texts that belong to look-alikes only. */
  mustHold: string[];
  lookAlikeTexts: string[];
}

function leaksIn(s: Sink): string[] {
  return positives.flatMap((p) => p.secrets.filter((secret) => s.all.includes(secret)).map((secret) => `${p.kind}: ${secret}`));
}

function damagedIn(s: Sink): string[] {
  const missing = s.mustHold.filter((l) => !s.all.includes(l)).map((l) => `missing: ${l}`);
  const marked = s.lookAlikeTexts.filter((t) => t.includes('[REDACTED:')).map((t) => `redacted: ${t}`);
  return [...missing, ...marked];
}

describe('redaction at every sink', () => {
  it('leaks no corpus secret and damages no look-alike anywhere: API, templates, search, ask, prompts, capture, analyze, Events, SQLite', async () => {
    const remote = journalRemoteBinary();
    if (!remote) throw new Error('systemd-journal-remote is needed to write real journal files (Debian package systemd-journal-remote)');
    const kinds = new Set(positives.map((p) => p.kind));
    console.log(`redaction corpus: ${kinds.size} kinds, ${positives.length} positives, ${lookAlikes.length} look-alikes`);

    const api = await FakeApiServer.create({ bundleDir: BUNDLE, ...operatorAccess() });
    const kubelet = await FakeKubelet.create({ bundleDir: BUNDLE });
    started.servers.push(api, kubelet);
    const dir = tempDir();
    const host = makeHostRoot().root;
    const start = Date.now() - 120_000;

    // Pod logs: positives and look-alikes in separate pods, so each finding is about one or the other.
    const podPositives = positives.filter((p) => p.source === 'pod');
    const podLookAlikes = lookAlikes.filter((l) => l.source === 'pod');
    const posPods = chunks(podPositives, LINES_PER_POD);
    const lookPods = chunks(podLookAlikes, LINES_PER_POD);
    const termination = positives.find((p) => p.source === 'termination')!;
    const env = positives.filter((p) => p.source === 'podenv').map((p) => ({ name: p.line.split('=')[0]!, value: p.line.slice(p.line.indexOf('=') + 1) }));
    for (const [i, c] of posPods.entries()) {
      api.addPod(crashLoopPod(host, `redact-pos-${i}`, c.map((p) => p.line), start + i * 1000, i === 0 ? { env, termination: termination.line } : {}));
    }
    for (const [i, c] of lookPods.entries()) api.addPod(crashLoopPod(host, `redact-look-${i}`, c.map((l) => l.line), start + 60_000 + i * 1000));
    // An image that cannot be pulled, with the registry's answer (holding a credential) in the Event.
    const eventPositive = positives.find((p) => p.source === 'event')!;
    const pull = crashLoopPod(host, 'redact-pull', [], start);
    pull.status.containerStatuses[0]!.state = { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "registry.internal/shop/pay:1.4"' } };
    api.addPod(pull);
    api.addEvent({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'redact-pull.1', namespace: NS, uid: randomUUID() },
      involvedObject: { kind: 'Pod', name: 'redact-pull', namespace: NS, uid: pull.metadata.uid, fieldPath: 'spec.containers{app}' },
      reason: 'Failed',
      message: eventPositive.line,
      type: 'Warning',
      count: 3,
      firstTimestamp: new Date(start).toISOString(),
      lastTimestamp: new Date(Date.now() - 5000).toISOString(),
      source: { component: 'kubelet', host: NODE },
    });

    // journald: real journal files.
    const journal = [...positives, ...lookAlikes].filter((x) => x.source.startsWith('journald:'));
    appendJournal(
      remote,
      join(host, 'var/log/journal/0123456789abcdef0123456789abcdef'),
      journal.map((x, i) => {
        const unit = x.source.slice('journald:'.length);
        return {
          realtimeUsec: (Date.now() - 30_000 + i * 10) * 1000,
          fields: { MESSAGE: x.line, _SYSTEMD_UNIT: unit, SYSLOG_IDENTIFIER: unit.replace('.service', ''), PRIORITY: '3', _TRANSPORT: 'stdout' },
        };
      }),
    );
    mkdirSync(join(host, 'dev'), { recursive: true });
    appendFileSync(join(host, 'dev/kmsg'), '');

    const envVars = {
      ...fakeNodeEnv(dir, { api, kubelet }, { nodeName: NODE, hostRoot: host }),
      NODESAGE_DETECT_INTERVAL_SECONDS: '0.5',
      NODESAGE_EXPORT_EVENTS: 'true',
    };
    const dataDir = join(dir, 'data');
    const daemon = await startDaemon({ env: envVars });
    started.daemon = daemon;
    const url = daemon.url;
    const getFindings = async () => {
      const res = await daemonRequest(url, '/v1/findings?limit=500');
      return ((await res.json()) as { items: Finding[] }).items;
    };
    let progress = '';
    const eventPosts = () => api.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/events') && r.body !== undefined);
    const findings = await waitFor(
      async () => {
        const all = await getFindings();
        const crash = all.filter((f) => f.category === 'CrashLoop' && f.subject.namespace === NS);
        const complete = crash.length === posPods.length + lookPods.length && crash.every((f) => f.evidence.filter((e) => e.source === 'podLog').length >= 1);
        const pulled = all.some((f) => f.category === 'ImagePull' && f.subject.name === 'redact-pull');
        // The sandbox failures of the journal, about pod shop/pay-7d9f (positives) and shop/web-55c6 (a look-alike).
        const exported = ['pay-7d9f', 'web-55c6'].every((pod) => eventPosts().some((r) => r.body!.includes(`"name":"${pod}"`)));
        progress = `${crash.length} of ${posPods.length + lookPods.length} crash loops, image pull ${pulled}, ${eventPosts().length} Events exported`;
        return complete && pulled && exported ? all : null;
      },
      60_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${progress}\nstdout:\n${daemon.stdout().slice(-4000)}`);
    });

    const isLook = (f: Finding) => f.subject.name.startsWith('redact-look-') || f.subject.name === 'web-55c6';
    const allLookPod = podLookAlikes.map((l) => l.line);
    const sinks: Sink[] = [];

    // 1. Findings as the API serves them (evidence, titles, messages, diagnoses).
    const findingsText = JSON.stringify(findings);
    const evidenceTexts = findings.flatMap((f) => f.evidence.map((e) => e.text));
    sinks.push({
      name: 'API findings (evidence)',
      all: `${findingsText}\n${evidenceTexts.join('\n')}`,
      mustHold: allLookPod,
      lookAlikeTexts: findings.filter(isLook).map((f) => JSON.stringify(f)),
    });
    // Every positive reached a finding, redacted (so "no leak" is not "never arrived").
    const notReached = positives
      .filter((p) => p.source === 'pod' || p.source === 'event' || p.source === 'termination')
      .filter((p) => !evidenceTexts.some((t) => t.includes(clip(redact(p.line)))))
      .map((p) => p.line);
    expect(notReached).toEqual([]);

    // 2. /v1/ask, rules-only: findings and the log templates the full-text search finds.
    const asks: string[] = [];
    for (const question of [
      'password token secret key credentials',
      'why is the redaction pod crash-looping?',
      'stripe key auth bearer basic cookie',
      'mysql postgres dsn jdbc connection',
      'keyspace token bucket password policy pam_unix chauthtok',
      'sandbox registry authorization',
    ]) {
      const res = await daemonRequest(url, '/v1/ask', { question });
      expect(res.status).toBe(200);
      asks.push(await res.text());
    }
    const askText = asks.join('\n');
    sinks.push({
      name: '/v1/ask answers',
      all: askText,
      mustHold: [],
      lookAlikeTexts: asks.flatMap((a) => (JSON.parse(a) as { answer: string }).answer.split('\n')).filter((l) => l.includes(`${NS}/redact-look-`)),
    });
    expect(askText).toContain(`podLog:${NS}/redact-look-`);

    // 3. Log templates, their samples, and the full-text index (the asks above brought it up to date).
    const db = new Database(join(dataDir, 'nodesage.db'), { readonly: true, fileMustExist: true });
    const templates = db.prepare('SELECT stream, template, example FROM log_templates').all() as { stream: string; template: string; example: string }[];
    const lookStreams = templates.filter((t) => t.stream.startsWith(`podLog:${NS}/redact-look-`));
    sinks.push({
      name: 'log templates + samples',
      all: templates.map((t) => `${t.template}\n${t.example}`).join('\n'),
      mustHold: [],
      lookAlikeTexts: lookStreams.flatMap((t) => [t.template, t.example]),
    });
    expect(templates.filter((t) => t.stream.startsWith(`podLog:${NS}/redact-pos-`)).length).toBeGreaterThan(posPods.length);
    // Full-text index: no secret's words are searchable; the look-alikes' own words are.
    const ftsHits = (table: string, text: string): number => {
      const words = text.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
      if (words.length === 0) return 0;
      return (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${table} MATCH ?`).get(`"${words.join(' ')}"`) as { n: number }).n;
    };
    const ftsLeaks = positives.flatMap((p) =>
      p.secrets.filter((s) => s.length >= 8 && ftsHits('templates_fts', s) + ftsHits('findings_fts', s) > 0).map((s) => `${p.kind}: ${s}`),
    );
    expect(ftsHits('templates_fts', 'chauthtok')).toBeGreaterThan(0);
    expect(ftsHits('findings_fts', 'chauthtok')).toBeGreaterThan(0);
    // All text of every table (findings, templates, diagnoses, FTS shadow tables), read through SQLite.
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
    const rowsText = tables
      .flatMap((t) => {
        try {
          return (db.prepare(`SELECT * FROM "${t}"`).raw().all() as unknown[][]).map((r) => r.map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v))).join('\t'));
        } catch {
          // Virtual tables without content cannot be selected; their shadow tables are.
          return [];
        }
      })
      .join('\n');
    db.close();
    sinks.push({ name: 'SQLite rows (all tables)', all: rowsText, mustHold: [], lookAlikeTexts: [] });

    // 4. The diagnosis prompt of every finding, built by the real prompt builder with room for all evidence.
    const prompts = await Promise.all(
      findings.map(async (f) => {
        const p = await buildPrompt(f, { hint: ruleHint(f, { nodeName: NODE }) }, { maxUserTokens: 100_000, maxEvidence: 50, maxLineChars: 1000 });
        return { look: isLook(f), text: `${p.system}\n${p.user}` };
      }),
    );
    sinks.push({
      name: 'diagnosis prompts',
      all: prompts.map((p) => p.text).join('\n'),
      mustHold: [],
      lookAlikeTexts: prompts.filter((p) => p.look).map((p) => p.text),
    });

    // 5. Events sent to the API server.
    const events = eventPosts().map((r) => r.body!);
    const lookCause = 'Authorization header missing for registry.internal (token bucket empty)';
    sinks.push({ name: 'exported Events', all: events.join('\n'), mustHold: [lookCause], lookAlikeTexts: events.filter((e) => e.includes('web-55c6')) });
    expect(events.some((e) => e.includes('[REDACTED:'))).toBe(true);

    // 6. A capture bundle of the same node, and `analyze --format json` of it.
    const bundle = join(dir, 'bundle');
    const cap = await runCli(['capture', '--out', bundle, '--seconds', '4'], { env: { ...envVars, NODESAGE_DATA_DIR: join(dir, 'capture-data') }, timeoutMs: 90_000 });
    expect(cap.code, cap.stderr).toBe(0);
    const files = readTree(bundle);
    const bundleText = files.map((f) => f.text).join('\n');
    const journalLooks = lookAlikes.filter((l) => l.source.startsWith('journald:')).map((l) => JSON.stringify(l.line).slice(1, -1));
    sinks.push({
      name: 'capture bundle',
      all: bundleText,
      mustHold: [...allLookPod, ...journalLooks],
      lookAlikeTexts: files.filter((f) => f.path.includes('redact-look-')).map((f) => f.text),
    });
    expect(files.some((f) => f.path.endsWith('pods.json') && f.text.includes('STRIPE_SECRET_KEY'))).toBe(true);
    const analyzed = await runCli(['analyze', '--bundle', bundle, '--format', 'json'], { timeoutMs: 90_000 });
    expect(analyzed.code, analyzed.stderr).toBe(0);
    const analyzedFindings = JSON.parse(analyzed.stdout) as Finding[];
    expect(analyzedFindings.filter((f) => f.category === 'CrashLoop' && f.subject.namespace === NS).length).toBe(posPods.length + lookPods.length);
    sinks.push({
      name: 'analyze --format json',
      all: `${analyzed.stdout}\n${analyzedFindings.flatMap((f) => f.evidence.map((e) => e.text)).join('\n')}`,
      mustHold: allLookPod,
      lookAlikeTexts: analyzedFindings.filter(isLook).map((f) => JSON.stringify(f)),
    });

    // 7. The SQLite files' bytes on disk while running (db + WAL), and again after a clean stop.
    const dbBytes = () =>
      readdirSync(dataDir)
        .filter((f) => f.startsWith('nodesage.db'))
        .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
        .join('\n');
    const running = dbBytes();
    const stopped = await daemon.kill('SIGTERM');
    expect(stopped.code).toBe(0);
    sinks.push({ name: 'SQLite files (db + wal), raw bytes', all: `${running}\n${dbBytes()}`, mustHold: [], lookAlikeTexts: [] });

    const report = sinks.map((s) => ({ sink: s.name, leaks: leaksIn(s), damaged: damagedIn(s) }));
    console.log(
      ['sink | leaks | damaged look-alikes', ...report.map((r) => `${r.sink} | ${r.leaks.length} | ${r.damaged.length}`), `full-text index | ${ftsLeaks.length} | -`].join('\n'),
    );
    expect(report.filter((r) => r.leaks.length > 0 || r.damaged.length > 0)).toEqual([]);
    expect(ftsLeaks).toEqual([]);
  }, 240_000);
});
