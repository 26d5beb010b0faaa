/**
 * History at scale: every read route of the daemon with 100,000 findings in
 * its store, at a fixed request rate.
 *
 *   npm run bench:history [-- --baseline DIR] [--seconds 10] [--rate 500] [--findings 100000] [--write]
 *
 * For each build (the one in DIR first when `--baseline` names another
 * checkout with its own dist/, then this one):
 * 1. Seeds a temporary data dir through that build's own `Store.commit`
 *    (batches of 1,000): findings over 7 categories, 3,000 pods in 40
 *    namespaces, two evidence lines each, a diagnosis on every tenth, two log
 *    templates per pod, the full-text index brought up to date. Times the
 *    commits (bulk, and detection-cycle-sized batches of 20 on the full store).
 * 2. Starts `node dist/daemon/cli.js daemon` on that data dir: host mode,
 *    rules-only, only the host source (a few /proc reads), detection every
 *    second, with the image's NODE_OPTIONS. test/bench/history-probe.ts is loaded into it to read the
 *    event-loop delay and memory over IPC, the same way for every build.
 * 3. Waits until the first cycles have resolved the seeded findings past
 *    their quiet period. Drives each route with loadtest (in a process of
 *    its own, test/bench/history-load.ts) at a fixed rate for `--seconds`,
 *    /healthz first as the baseline route; the listing with a different
 *    `since` on every request (as a relative since makes it), and with a
 *    different cursor on every request, so no stored body can answer it;
 *    the timeline, the metrics history (a day of seeded samples) and the
 *    feedback export (50 seeded verdicts). Records p50/p99 latency,
 *    served req/s, non-2xx answers, event-loop delay during the route, RSS.
 * 4. After the last route, waits 5 s and reads RSS again; counts the
 *    detection cycles completed during the load against the schedule.
 *
 * Prints a markdown section on stdout (the "History at scale" section of
 * RESULTS.md); `--write` also puts it into test/bench/RESULTS.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeImageRuntime, imageRuntime } from './image-runtime.ts';
import { writeResultsSection } from './results-section.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
/** How the image runs Node (Dockerfile's ENV and ENTRYPOINT flags), so memory is measured as deployed. */
const IMAGE = imageRuntime(ROOT);
const IMAGE_DESCRIPTION = describeImageRuntime(IMAGE);

const CATEGORIES = ['CrashLoop', 'OOMKilled', 'ImagePull', 'DNSFailure', 'ProbeFailure', 'LogErrorSpike', 'ContainerFailed'] as const;
const SEVERITIES = ['info', 'warning', 'critical'] as const;
const NAMESPACES = 40;
const PODS = 3000;
const DAY = 86_400_000;
/** Findings are spread over this many days before the run, inside the 30-day retention. */
const SPREAD_DAYS = 20;

function log(msg: string): void {
  process.stderr.write(`[history] ${msg}\n`);
}

/** The part of a build's Store the bench uses (old and new builds alike). */
interface BenchStore {
  commit(b: unknown): void;
  setDiagnosis(id: string, d: unknown): void;
  refreshSearchIndex(): number;
  close(): void;
  /** Builds that have the metrics-history and feedback routes have these. */
  addSamples?(atMs: number, samples: { name: string; labels?: string; value: number }[]): void;
  addFeedback?(f: { findingId: string; at: string; helpful: boolean; note: string | null; finding: unknown }): number;
}

/** Feedback rows seeded (each export streams all of them). */
const FEEDBACK_ROWS = 50;

function finding(i: number, now: number) {
  const pod = i % PODS;
  const ns = `ns-${pod % NAMESPACES}`;
  const name = `app-${pod}-7d9f8c6b5-x${(pod * 7919).toString(36).slice(-4)}`;
  const category = CATEGORIES[i % CATEGORIES.length]!;
  // Severity varies independently of category, so every (category, severity) pair exists.
  const severity = SEVERITIES[Math.floor(i / CATEGORIES.length) % SEVERITIES.length]!;
  const last = now - Math.floor(((i * 2654435761) % 1_000_003) / 1_000_003 * SPREAD_DAYS * DAY);
  const first = last - ((i % 600) + 1) * 60_000;
  const open = i % 10 === 0;
  const at = new Date(last).toISOString();
  const text: Record<string, [string, string]> = {
    CrashLoop: ['back-off 5m0s restarting failed container', `panic: runtime error: invalid memory address (worker ${i % 97})`],
    OOMKilled: ['Memory cgroup out of memory: Killed process 4242 (java)', 'lastState.terminated.reason=OOMKilled exitCode=137'],
    ImagePull: [`Failed to pull image "registry.local/team/app:${i % 50}": not found`, 'Back-off pulling image'],
    DNSFailure: [`dial tcp: lookup api.${ns}.svc.cluster.local on 10.96.0.10:53: i/o timeout`, 'no such host'],
    ProbeFailure: ['Liveness probe failed: HTTP probe failed with statuscode: 503', 'Readiness probe failed: connection refused'],
    LogErrorSpike: [`ERROR failed to connect to postgres-${i % 13}:5432: connection refused`, 'error rate 40/min, baseline 0.5/min'],
    ContainerFailed: ['terminated exitCode=1 reason=Error', `job migrate-${i % 31} failed`],
  };
  const [e1, e2] = text[category]!;
  return {
    id: (i * 2654435761 + 0x1234567).toString(16).padStart(16, '0').slice(-16),
    category,
    severity,
    subject: { kind: 'Container', namespace: ns, name, container: `c${i % 3}` },
    title: `${category} of ${ns}/${name}`,
    message: `${category} seen ${1 + (i % 40)} times for container c${i % 3}`,
    evidence: [
      { source: 'podLog', at: new Date(last - 30_000).toISOString(), text: e1 },
      { source: 'podStatus', at, text: e2 },
    ],
    firstSeen: new Date(first).toISOString(),
    lastSeen: at,
    count: 1 + (i % 40),
    status: open ? 'open' : 'resolved',
    resolvedAt: open ? null : new Date(last + 60_000).toISOString(),
    causes: [],
    rootCause: true,
    diagnosis: null,
    detector: 'bench',
    lifecycle: 'event',
  };
}

function diagnosis(i: number) {
  return {
    summary: `The container keeps failing (${i % 17})`,
    probableCause: 'a dependency is unreachable',
    nextSteps: ['check the service', 'read the previous log'],
    commands: ['kubectl logs --previous'],
    confidence: 'medium',
    diagnoser: 'rule-hint',
    tokens: { prompt: 0, completion: 0 },
    latencyMs: 1,
  };
}

interface SeedResult {
  findings: number;
  templates: number;
  bulkCommitsPerSecond: number;
  bulkFindingsPerSecond: number;
  cycleCommitsPerSecond: number;
  ftsSeconds: number;
  seedSeconds: number;
  dbBytes: number;
}

async function seedStore(root: string, dir: string, n: number): Promise<SeedResult> {
  const mod = (await import(pathToFileURL(join(root, 'dist/daemon/store/store.js')).href)) as {
    Store: { open(o: { dir: string; maxAgeDays: number; maxSizeMB: number }): BenchStore };
  };
  const store = mod.Store.open({ dir, maxAgeDays: 30, maxSizeMB: 100_000 });
  const now = Date.now();
  const t0 = performance.now();
  let commitMs = 0;
  let commits = 0;
  const batch = 1000;
  const templatesPerBatch = Math.ceil((PODS * 2) / Math.ceil(n / batch));
  let templates = 0;
  for (let start = 0; start < n; start += batch) {
    const findings = [];
    for (let i = start; i < Math.min(n, start + batch); i++) findings.push(finding(i, now));
    const rows = [];
    for (let k = 0; k < templatesPerBatch && templates < PODS * 2; k++, templates++) {
      const pod = Math.floor(templates / 2);
      const at = new Date(now - (templates % 1000) * 60_000).toISOString();
      rows.push({
        stream: `podLog:ns-${pod % NAMESPACES}/app-${pod}/c0`,
        templateId: `t${templates % 2}`,
        template: templates % 2 ? 'ERROR failed to connect to <*>:<NUM>: connection refused' : 'GET /healthz <NUM> <DURATION>',
        isError: templates % 2 === 1,
        firstSeen: at,
        lastSeen: at,
        count: 10 + (templates % 100),
        example: templates % 2 ? `ERROR failed to connect to postgres-${pod % 13}:5432: connection refused` : 'GET /healthz 200 3ms',
      });
    }
    const b = { at: new Date(now).toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map(), templates: rows };
    const c0 = performance.now();
    store.commit(b);
    commitMs += performance.now() - c0;
    commits++;
  }
  for (let i = 0; i < n; i += 10) store.setDiagnosis(finding(i, now).id, diagnosis(i));
  // A day of host samples, one a minute (what the dashboard's charts read), and people's verdicts.
  for (let m = 0; m < 1440 && store.addSamples; m++) {
    const at = now - (1440 - m) * 60_000;
    store.addSamples(at, [
      { name: 'cpu_percent', value: 20 + (m % 50) },
      { name: 'memory_available_percent', value: 60 - (m % 30) },
      ...['/', '/var/lib/kubelet', '/data'].map((mount, k) => ({ name: 'fs_used_percent', labels: mount, value: 40 + k * 10 + (m % 7) })),
    ]);
  }
  for (let k = 0; k < FEEDBACK_ROWS && store.addFeedback; k++) {
    const f = finding(k * 10, now);
    const { detector: _d, lifecycle: _l, ...pub } = f;
    store.addFeedback({ findingId: f.id, at: new Date(now).toISOString(), helpful: k % 3 !== 0, note: k % 2 ? 'the cause was right' : null, finding: { ...pub, diagnosis: diagnosis(k * 10), facts: null } });
  }
  const f0 = performance.now();
  while (store.refreshSearchIndex() > 0) {
    // A build that indexes in slices returns each slice's size: repeat until current.
  }
  const ftsSeconds = (performance.now() - f0) / 1000;
  // Detection-cycle-sized commits (20 changed findings, new evidence) on the full store.
  const cycles = 200;
  let cycleMs = 0;
  for (let c = 0; c < cycles; c++) {
    const findings = [];
    for (let k = 0; k < 20; k++) {
      const f = finding((c * 20 + k) * 37, now);
      f.lastSeen = new Date(now + c * 1000).toISOString();
      f.count += 1;
      findings.push(f);
    }
    const c0 = performance.now();
    store.commit({ at: new Date(now + c * 1000).toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map() });
    cycleMs += performance.now() - c0;
  }
  while (store.refreshSearchIndex() > 0) {
    // As above.
  }
  store.close();
  let dbBytes = 0;
  for (const f of ['nodesage.db', 'nodesage.db-wal']) if (existsSync(join(dir, f))) dbBytes += readFileSync(join(dir, f)).length;
  return {
    findings: n,
    templates,
    bulkCommitsPerSecond: commits / (commitMs / 1000),
    bulkFindingsPerSecond: n / (commitMs / 1000),
    cycleCommitsPerSecond: cycles / (cycleMs / 1000),
    ftsSeconds,
    seedSeconds: (performance.now() - t0) / 1000,
    dbBytes,
  };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

interface Probe {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Request read → response handed to the kernel, inside the daemon (NaN when no request was served). */
  serverP50Ms: number;
  serverP99Ms: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  oldSpaceBytes: number;
  v8MallocedBytes: number;
  v8PeakMallocedBytes: number;
  anonBytes: number;
  fileBytes: number;
  shmemBytes: number;
  brkBytes: number;
  anonMmapBytes: number;
  cpuMicros: number;
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);
/** Where resident memory is, as one line: V8's heap, memory outside it, and RSS by kind. */
function memoryParts(p: Probe): string {
  return (
    `RSS ${mib(p.rssBytes)} MiB (anonymous ${mib(p.anonBytes)}, file ${mib(p.fileBytes)}, shared ${mib(p.shmemBytes)}); ` +
    `V8 heap ${mib(p.heapUsedBytes)} used of ${mib(p.heapTotalBytes)} (old space ${mib(p.oldSpaceBytes)}); external ${mib(p.externalBytes)} (array buffers ${mib(p.arrayBuffersBytes)}); ` +
    `V8's own malloc ${mib(p.v8MallocedBytes)} (peak ${mib(p.v8PeakMallocedBytes)}); ` +
    `anonymous outside the V8 heap ${mib(p.anonBytes - p.heapTotalBytes - p.arrayBuffersBytes)} (SQLite, malloc, stacks, code); ` +
    `anonymous by mapping: brk heap (glibc's main arena) ${mib(p.brkBytes)}, other anonymous mappings (V8 pages, thread arenas, large blocks) ${mib(p.anonMmapBytes)}`
  );
}

class DaemonUnderTest {
  private pending: ((m: unknown) => void)[] = [];
  out = '';
  readonly proc: ChildProcess;
  readonly url: string;
  constructor(proc: ChildProcess, url: string) {
    this.proc = proc;
    this.url = url;
    proc.on('message', (m) => this.pending.shift()?.(m));
  }

  static async start(root: string, dataDir: string): Promise<DaemonUnderTest> {
    const port = await freePort();
    const config = join(dataDir, 'bench-config.json');
    writeFileSync(
      config,
      JSON.stringify({
        listen: `127.0.0.1:${port}`,
        dataDir,
        hostRoot: '/',
        detectIntervalSeconds: 1,
        hostIntervalSeconds: 5,
        logLevel: 'warn',
        retention: { maxAgeDays: 30, maxSizeMB: 100_000 },
        sources: { host: true, podLogs: false, journald: false, kmsg: false, kubelet: false, kubeApi: false },
        // One client sends all the load: the per-caller rate limit (where the build has one) would answer 429 to most of it.
        ...(readFileSync(join(root, 'dist/daemon/config.js'), 'utf8').includes('limits.requestsPerSecond')
          ? { limits: { requestsPerSecond: 1_000_000, burst: 1_000_000 } }
          : {}),
      }),
    );
    const proc = spawn(process.execPath, [...IMAGE.flags, '--import', pathToFileURL(join(HERE, 'history-probe.ts')).href, join(root, 'dist/daemon/cli.js'), 'daemon', '--config', config], {
      cwd: root,
      // Node as the image runs the daemon (this checkout's Dockerfile, for every build measured).
      env: { ...process.env, NODESAGE_LOG_LEVEL: 'warn', ...IMAGE.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const d = new DaemonUnderTest(proc, `http://127.0.0.1:${port}`);
    proc.stdout!.on('data', (c: Buffer) => (d.out += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (d.out += c.toString()));
    const t0 = Date.now();
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`daemon exited ${proc.exitCode}:\n${d.out}`);
      if (Date.now() - t0 > 120_000) throw new Error(`daemon not ready in 120 s:\n${d.out}`);
      try {
        if ((await fetch(`${d.url}/readyz`)).status === 200) return d;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private ask<T>(cmd: string): Promise<T> {
    return new Promise((res) => {
      this.pending.push(res as (m: unknown) => void);
      this.proc.send({ cmd });
    });
  }

  reset(): Promise<unknown> {
    return this.ask('reset');
  }

  gc(): Promise<unknown> {
    return this.ask('gc');
  }

  read(): Promise<Probe> {
    return this.ask('read');
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20_000);
    await done;
    clearTimeout(t);
  }
}

interface RouteResult {
  name: string;
  p50: number;
  p99: number;
  max: number;
  served: number;
  non2xx: number;
  errors: number;
  eventLoopP99: number;
  eventLoopMax: number;
  rssAfterMiB: number;
  /** Daemon CPU time per request served (all its threads), in ms. */
  cpuMsPerRequest: number;
  /** KiB received per response, headers included (compressed where the route compresses). */
  kbPerResponse: number;
  /** p99 of the time inside the daemon, request read to response written. */
  serverP99: number;
  /** Target p99 in ms. */
  target: number;
}

interface Route {
  name: string;
  method?: 'GET' | 'POST';
  paths: string[];
  body?: (i: number) => string;
  /** Target p99 in ms. */
  target: number;
}

async function drive(d: DaemonUnderTest, route: Route, seconds: number, rate: number): Promise<RouteResult> {
  let before: Probe | undefined;
  const r = await runLoad(
    {
      url: d.url,
      method: route.method ?? 'GET',
      paths: route.paths,
      ...(route.body ? { bodies: Array.from({ length: 60 }, (_, k) => route.body!(k)) } : {}),
      rate,
      seconds,
      warmUpSeconds: WARM_UP_SECONDS,
    },
    // The daemon's figures start with the measured run, after the load tool's warm-up.
    async () => {
      await d.reset();
      before = await d.read();
    },
  );
  if (!before) throw new Error('the load run never reported its warm-up done');
  const p = await d.read();
  return {
    name: route.name,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    served: r['2xx'] / seconds,
    kbPerResponse: r.bytes / Math.max(1, r.requests) / 1024,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    eventLoopP99: p.p99Ms,
    serverP99: p.serverP99Ms,
    eventLoopMax: p.maxMs,
    rssAfterMiB: p.rssBytes / 2 ** 20,
    cpuMsPerRequest: (p.cpuMicros - before.cpuMicros) / 1000 / Math.max(1, r['2xx']),
    target: route.target,
  };
}

/** The load tool's figures of one run (test/bench/history-load.ts). */
interface LoadResult {
  latency: { p50: number; p99: number; max: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Body bytes received (as sent: compressed where they were) and responses. */
  bytes: number;
  requests: number;
}

/** Seconds each load run drives its route before the measured run (the load tool's own warm-up). */
const WARM_UP_SECONDS = 2;

/** The core the load tool is pinned to (the last one), or null on a one-core machine. */
const LOAD_CPU = os.availableParallelism() >= 2 ? os.availableParallelism() - 1 : null;

/** Runs test/bench/history-load.ts: the client's own garbage collection must not count as the daemon's latency. */
function runLoad(o: { url: string; method: string; paths: string[]; bodies?: string[]; rate: number; seconds: number; warmUpSeconds: number }, warm: () => Promise<void>): Promise<LoadResult> {
  return new Promise((res, rej) => {
    const file = join(mkdtempSync(join(tmpdir(), 'nodesage-load-')), 'load.json');
    writeFileSync(file, JSON.stringify(o));
    // On a machine of two cores or more the load tool keeps to the last one, as a client on another machine would:
    // competing with the daemon for every core, its own work showed up as the daemon's latency.
    const [cmd, args] = LOAD_CPU === null ? [process.execPath, []] : ['taskset', ['-c', String(LOAD_CPU), process.execPath]];
    const child = spawn(cmd, [...args, join(HERE, 'history-load.ts'), file], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      // "warm": the warm-up is over; the measured run starts when told "go".
      if (out === 'warm\n') {
        out = '';
        void warm().then(() => child.stdin.write('go\n'), rej);
      }
    });
    child.on('error', rej);
    child.on('close', (code) => {
      rmSync(dirname(file), { recursive: true, force: true });
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) rej(new Error(`load run exited ${code}: ${out}`));
      else res(JSON.parse(line) as LoadResult);
    });
  });
}

/** Waits until the open-findings count in /metrics has not moved for 5 s (at most 300 s). */
async function waitForStartupWork(d: DaemonUnderTest, label: string): Promise<void> {
  const t0 = Date.now();
  let last = Number.NaN;
  let stableSince = Date.now();
  while (Date.now() - t0 < 300_000) {
    await new Promise((r) => setTimeout(r, 1000));
    const text = await (await fetch(`${d.url}/metrics`)).text();
    const open = [...text.matchAll(/^nodesage_findings_open\{[^}]*\} ([0-9.e+-]+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    if (open !== last) {
      last = open;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 5000) break;
  }
  log(`${label}: start-up work done after ${((Date.now() - t0) / 1000).toFixed(0)} s (${last} open findings)`);
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Everything measured for one build. */
interface BuildResult {
  label: string;
  root: string;
  seed: SeedResult;
  idleRssMiB: number;
  afterRssMiB: number;
  /** Memory by part at idle and 30 s after the load. */
  idleParts: string;
  afterParts: string;
  /** RSS after a forced full garbage collection at the end (diagnostic: the daemon never forces one). */
  afterGcRssMiB: number;
  routes: RouteResult[];
  cycles: { expected: number; completed: number; meanMs: number };
  loadavg: number[];
}

async function measureBuild(
  label: string,
  root: string,
  o: { n: number; seconds: number; rate: number; settleSeconds: number; seedOnly?: string; only?: string[] },
): Promise<BuildResult> {
  if (!existsSync(join(root, 'dist/daemon/cli.js'))) throw new Error(`${root}: no dist/daemon/cli.js (run npm run build there)`);
  const dir = o.seedOnly ?? mkdtempSync(join(tmpdir(), 'nodesage-history-'));
  try {
    log(`${label}: seeding ${o.n} findings into ${dir}`);
    const seed = await seedStore(root, dir, o.n);
    if (o.seedOnly) {
      log(`seeded ${dir}: ${JSON.stringify(seed)}`);
      process.exit(0);
    }
    log(`${label}: seeded in ${seed.seedSeconds.toFixed(1)} s (FTS ${seed.ftsSeconds.toFixed(1)} s), ${(seed.dbBytes / 2 ** 20).toFixed(0)} MiB`);
    const d = await DaemonUnderTest.start(root, dir);
    try {
      // Let start-up work finish before measuring idle: the first prune, and the first cycles resolving the
      // seeded open findings that are past their quiet period (a bounded number per cycle).
      await waitForStartupWork(d, label);
      const idle = await d.read();
      const idleRssMiB = idle.rssBytes / 2 ** 20;
      log(`${label}: idle ${memoryParts(idle)}`);
      const since = new Date(Date.now() - 3 * DAY).toISOString();
      const page1 = await getJson<{ items: { id: string }[]; nextCursor: string }>(`${d.url}/v1/findings?limit=50`);
      let cursor = page1.nextCursor;
      for (let k = 0; k < 20; k++) cursor = (await getJson<{ nextCursor: string }>(`${d.url}/v1/findings?limit=50&cursor=${cursor}`)).nextCursor;
      const ids: string[] = [];
      for (let k = 0; k < 500; k++) ids.push(finding((k * 197) % o.n, 0).id);
      const questions = [
        'why is dns failing in ns-3',
        'postgres connection refused',
        'which pods were OOMKilled',
        'liveness probe failed 503',
        'image not found registry.local',
        'panic invalid memory address',
      ];
      // Paths enough that no request of a run repeats one.
      const distinct = o.rate * (o.seconds + WARM_UP_SECONDS) + 100;
      const routes: Route[] = [
        { name: 'GET /healthz (baseline route)', paths: ['/healthz'], target: 10 },
        { name: 'GET /v1/findings?limit=50', paths: ['/v1/findings?limit=50'], target: 10 },
        { name: 'GET /v1/findings?limit=50&category=DNSFailure&severity=critical', paths: ['/v1/findings?limit=50&category=DNSFailure&severity=critical'], target: 10 },
        { name: 'GET /v1/findings?limit=50&status=open', paths: ['/v1/findings?limit=50&status=open'], target: 10 },
        { name: 'GET /v1/findings?limit=50&since=(3 days ago)', paths: [`/v1/findings?limit=50&since=${since}`], target: 10 },
        { name: 'GET /v1/findings?limit=50&cursor=(page 22)', paths: [`/v1/findings?limit=50&cursor=${cursor}`], target: 10 },
        {
          // A relative since (`1h`) is another time on every request: the page is cut from the one without since.
          name: 'GET /v1/findings?limit=50&since=(a different time each request)',
          paths: Array.from({ length: distinct }, (_, k) => `/v1/findings?limit=50&since=${new Date(Date.parse(since) - k).toISOString()}`),
          target: 10,
        },
        {
          // Every request a page of its own (a cursor to another place in the history): what a page costs when no
          // earlier answer can be reused.
          name: 'GET /v1/findings?limit=50&cursor=(a different place each request, uncached)',
          paths: Array.from({ length: distinct }, (_, k) => `/v1/findings?limit=50&cursor=${Buffer.from(JSON.stringify([new Date(Date.parse(since) - k * 1000).toISOString(), 'ffffffffffffffff'])).toString('base64url')}`),
          target: 10,
        },
        { name: 'GET /v1/findings/:id (500 ids)', paths: ids.map((id) => `/v1/findings/${id}`), target: 10 },
        { name: 'GET /v1/status', paths: ['/v1/status'], target: 10 },
        { name: 'GET /v1/timeline (last 24 h, 200 events)', paths: ['/v1/timeline?since=24h'], target: 10 },
        { name: 'GET /v1/metrics/history (cpu, disk: 24 h of 1-minute points)', paths: ['/v1/metrics/history?series=cpu', '/v1/metrics/history?series=disk'], target: 10 },
        { name: `GET /v1/export/feedback.jsonl (${FEEDBACK_ROWS} verdicts)`, paths: ['/v1/export/feedback.jsonl'], target: 10 },
        { name: 'GET /metrics', paths: ['/metrics'], target: 10 },
        {
          name: 'POST /v1/ask (rules-only, 6 questions)',
          method: 'POST',
          paths: ['/v1/ask'],
          body: (k) => JSON.stringify({ question: questions[k % questions.length] }),
          target: 200,
        },
      ];
      const m0 = await (await fetch(`${d.url}/metrics`)).text();
      const t0 = Date.now();
      const results: RouteResult[] = [];
      for (const route of routes.filter((r, k) => k === 0 || !o.only || o.only.some((x) => r.name.includes(x)))) {
        log(`${label}: ${route.name}`);
        const r = await drive(d, route, o.seconds, o.rate);
        log(
          `  p50 ${r.p50} ms, p99 ${r.p99} ms, served ${r.served.toFixed(0)}/s, non-2xx ${r.non2xx}, event loop p99 ${r.eventLoopP99.toFixed(1)} ms, ` +
            `CPU ${r.cpuMsPerRequest.toFixed(2)} ms/req, RSS ${r.rssAfterMiB.toFixed(0)} MiB`,
        );
        results.push(r);
      }
      const elapsed = (Date.now() - t0) / 1000;
      const m1 = await (await fetch(`${d.url}/metrics`)).text();
      const count = (t: string) => metricValue(t, 'nodesage_detection_cycle_duration_seconds_count');
      const sum = (t: string) => metricValue(t, 'nodesage_detection_cycle_duration_seconds_sum');
      const completed = count(m1) - count(m0);
      // V8 gives memory back once allocation has been low for a while: sample until the settle time is up.
      const settle: number[] = [];
      let last = idle;
      for (let t = 0; t < o.settleSeconds; t += 5) {
        await new Promise((r) => setTimeout(r, 5000));
        last = await d.read();
        settle.push(Math.round(last.rssBytes / 2 ** 20));
      }
      log(`${label}: RSS every 5 s after the load: ${settle.join(', ')} MiB (idle ${idleRssMiB.toFixed(0)})`);
      log(`${label}: after the load ${memoryParts(last)}`);
      const afterRssMiB = settle[settle.length - 1] ?? Number.NaN;
      await d.gc();
      const gced = await d.read();
      log(`${label}: after a forced full GC ${memoryParts(gced)}`);
      return {
        label,
        root,
        seed,
        idleRssMiB,
        afterRssMiB,
        idleParts: memoryParts(idle),
        afterParts: memoryParts(last),
        afterGcRssMiB: gced.rssBytes / 2 ** 20,
        routes: results,
        cycles: { expected: Math.floor(elapsed / 1), completed, meanMs: ((sum(m1) - sum(m0)) / completed) * 1000 },
        loadavg: os.loadavg(),
      };
    } finally {
      await d.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const cpu = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(2));
const met = (ok: boolean) => (ok ? 'met' : '**not met**');

function render(builds: BuildResult[], o: { n: number; seconds: number; rate: number; settleSeconds: number }, startedAt: string, loadStart: number[]): string {
  const cur = builds[builds.length - 1]!;
  const base = builds.length > 1 ? builds[0] : undefined;
  const machine = `${os.availableParallelism()} cores, ${(os.cpus()[0]?.model ?? 'unknown').trim()}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}`;
  const out: string[] = [];
  out.push('## History at scale (test/bench/history.ts)\n');
  out.push(
    `\`npm run bench:history${base ? ' -- --baseline DIR' : ''}\` — ${startedAt}; ${machine}; load average ${loadStart.map((x) => x.toFixed(2)).join(', ')} at the start, ` +
      `${cur.loadavg.map((x) => x.toFixed(2)).join(', ')} at the end (the machine is shared).\n`,
  );
  out.push(
    `${o.n.toLocaleString('en')} findings (${CATEGORIES.length} categories, ${PODS.toLocaleString('en')} pods in ${NAMESPACES} namespaces, two evidence lines each, ` +
      `a diagnosis on every tenth, 10% open, last seen over ${SPREAD_DAYS} days), ${cur.seed.templates.toLocaleString('en')} log templates, the full-text index current; ` +
      `the daemon in host mode, rules-only, only the host source, detection every second, ${IMAGE_DESCRIPTION} as in the image, the per-caller rate limit lifted. Each route: loadtest (npm) in its requests-per-second mode${LOAD_CPU === null ? '' : ` (pinned to core ${LOAD_CPU} with taskset; the daemon may use every core)`}: one request every ${(1000 / o.rate).toFixed(1)} ms whatever the answers, on keep-alive connections, for ${o.seconds} s after ${WARM_UP_SECONDS} s of the same load to warm the load tool up (not counted), every request with \`accept-encoding: gzip, deflate, br\` as browsers and Node's fetch send it (bodies served more than once go out gzip-compressed; KiB per response is the body as sent). Latency: from a request's creation to its last byte. ` +
      'Event-loop delay: `perf_hooks.monitorEventLoopDelay` (1 ms sampling) inside the daemon, over that route\'s run only.\n',
  );
  const head = base
    ? '| route | p50 ms | p99 ms (before → after) | p99 before ÷ after | served req/s | daemon CPU ms per request | CPU before ÷ after | event-loop delay p99 ms | non-2xx after | target p99 | |\n|---|---|---|---|---|---|---|---|---|---|---|'
    : '| route | p50 ms | p99 ms | p99 ÷ /healthz p99 | max ms | served req/s | KiB per response | daemon CPU ms per request | p99 ms inside the daemon | event-loop delay p99 ms | non-2xx | target p99 | |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  out.push(head);
  for (const [k, r] of cur.routes.entries()) {
    const b = base?.routes[k];
    const target = r.target;
    const ok = r.p99 <= target && r.non2xx === 0 && r.errors === 0;
    out.push(
      b
        ? `| ${r.name} | ${ms(b.p50)} → ${ms(r.p50)} | ${ms(b.p99)} → ${ms(r.p99)} | ${(b.p99 / Math.max(r.p99, 1)).toFixed(1)}× | ${b.served.toFixed(0)} → ${r.served.toFixed(0)} | ${cpu(b.cpuMsPerRequest)} → ${cpu(r.cpuMsPerRequest)} | ${(b.cpuMsPerRequest / r.cpuMsPerRequest).toFixed(1)}× | ${ms(b.eventLoopP99)} → ${ms(r.eventLoopP99)} | ${r.non2xx + r.errors} | ≤ ${target} | ${met(ok)} |`
        : `| ${r.name} | ${ms(r.p50)} | ${ms(r.p99)} | ${(r.p99 / Math.max(cur.routes[0]!.p99, 1)).toFixed(2)} | ${ms(r.max)} | ${r.served.toFixed(0)} | ${r.kbPerResponse.toFixed(1)} | ${cpu(r.cpuMsPerRequest)} | ${r.serverP99.toFixed(2)} | ${ms(r.eventLoopP99)} | ${r.non2xx + r.errors} | ≤ ${target} | ${met(ok)} |`,
    );
  }
  const elMax = Math.max(...cur.routes.map((r) => r.eventLoopP99));
  const rssDelta = cur.afterRssMiB - cur.idleRssMiB;
  out.push('');
  out.push('| measure | ' + (base ? 'before | after | target | |\n|---|---|---|---|---|' : 'value | target | |\n|---|---|---|---|'));
  const row = (name: string, f: (b: BuildResult) => string, target: string, ok: boolean | null) =>
    out.push(`| ${name} | ${base ? `${f(base)} | ` : ''}${f(cur)} | ${target} | ${ok === null ? '' : met(ok)} |`);
  row('event-loop delay p99, worst route', (b) => `${ms(Math.max(...b.routes.map((r) => r.eventLoopP99)))} ms`, '≤ 20 ms', elMax <= 20);
  row('event-loop delay max, worst route', (b) => `${ms(Math.max(...b.routes.map((r) => r.eventLoopMax)))} ms`, '', null);
  row('RSS idle (after start, before load)', (b) => `${b.idleRssMiB.toFixed(0)} MiB`, '', null);
  row(`RSS ${o.settleSeconds} s after the last route`, (b) => `${b.afterRssMiB.toFixed(0)} MiB (${b.afterRssMiB - b.idleRssMiB >= 0 ? '+' : ''}${(b.afterRssMiB - b.idleRssMiB).toFixed(0)})`, '≤ idle + 30 MiB', rssDelta <= 30);
  row('RSS after a forced full garbage collection, at the end (diagnostic)', (b) => `${b.afterGcRssMiB.toFixed(0)} MiB (${b.afterGcRssMiB - b.idleRssMiB >= 0 ? '+' : ''}${(b.afterGcRssMiB - b.idleRssMiB).toFixed(0)})`, '', null);
  row('RSS peak after a route', (b) => `${Math.max(...b.routes.map((r) => r.rssAfterMiB)).toFixed(0)} MiB`, '', null);
  row(
    'detection cycles completed during the load (1 s schedule)',
    (b) => `${b.cycles.completed} of ${b.cycles.expected}, mean ${b.cycles.meanMs.toFixed(1)} ms`,
    'on schedule',
    cur.cycles.completed >= cur.cycles.expected * 0.95,
  );
  row('Store.commit, bulk (1,000 findings per commit)', (b) => `${b.seed.bulkCommitsPerSecond.toFixed(1)} commits/s = ${Math.round(b.seed.bulkFindingsPerSecond).toLocaleString('en')} findings/s`, '', null);
  row('Store.commit, cycle-sized (20 changed findings) on the full store', (b) => `${b.seed.cycleCommitsPerSecond.toFixed(0)} commits/s`, '', null);
  row('full-text index of the whole history, from nothing', (b) => `${b.seed.ftsSeconds.toFixed(1)} s`, '', null);
  row('database size (main file + WAL)', (b) => `${(b.seed.dbBytes / 2 ** 20).toFixed(0)} MiB`, '', null);
  out.push('');
  out.push(`Memory by part, idle: ${cur.idleParts}.\n`);
  out.push(`Memory by part, ${o.settleSeconds} s after the last route: ${cur.afterParts}.\n`);
  if (base) {
    out.push(
      `"Before" is the same benchmark against the build in \`--baseline\` (${base.label}), in the same run on the same machine; ` +
        '"after" is this checkout. A p99 ratio above 1 means this checkout is faster.\n',
    );
  }
  out.push(
    '**How to read it:** latencies and event-loop delay are wall clock, so they include time the daemon waited for a CPU; ' +
      'the `/healthz` row (no work at all) is the floor the machine set during the run. The daemon\'s CPU time per request ' +
      'does not depend on what else runs, and is the figure to compare between machines and runs. "Inside the daemon" is measured ' +
      "by a preload from the HTTP server's `request` event to the response's `finish` (its last bytes handed to the kernel): what " +
      'the p99 holds beyond it was spent before the daemon read the request (a busy event loop) or between the kernel and the load tool.\n',
  );
  return `${out.join('\n')}\n`;
}

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    'baseline-label': { type: 'string', default: 'main before this change' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    findings: { type: 'string', default: '100000' },
    /** Only seed this (empty) folder and keep it: for profiling a route by hand. */
    'seed-only': { type: 'string' },
    /** Only the routes whose name contains one of these comma-separated strings (and /healthz). */
    only: { type: 'string' },
    /** Seconds after the last route before RSS is read again. */
    settle: { type: 'string', default: '30' },
    write: { type: 'boolean', default: false },
    out: { type: 'string', default: join(HERE, 'RESULTS.md') },
  },
});
const o = {
  n: Number(values.findings),
  seconds: Number(values.seconds),
  rate: Number(values.rate),
  settleSeconds: Math.max(5, Number(values.settle)),
  ...(values['seed-only'] ? { seedOnly: resolve(values['seed-only']) } : {}),
  ...(values.only ? { only: values.only.split(',') } : {}),
};
const startedAt = new Date().toISOString();
const loadStart = os.loadavg();
const builds: BuildResult[] = [];
if (values.baseline) builds.push(await measureBuild(values['baseline-label'], resolve(values.baseline), o));
builds.push(await measureBuild('this checkout', ROOT, o));
const section = render(builds, o, startedAt, loadStart);
process.stdout.write(section);
if (values.write) {
  const path = resolve(values.out);
  writeResultsSection(path, 'history', section);
  log(`wrote ${path}`);
}
