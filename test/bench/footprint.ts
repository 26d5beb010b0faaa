/**
 * Footprint: the built daemon's resident memory and CPU, idle and under log
 * load, against bare Node importing the same packages, measured in one run.
 *
 *   npm run bench:footprint [-- --idle 60] [--settle 10] [--steady 30] [--flood 20] [--after 60] [--rate 2000] [--flood-rate 50000] [--write]
 *
 * 1. Finds which packages the daemon's own modules import in each mode: a
 *    short start with test/bench/footprint-imports.ts preloaded.
 * 2. Starts four processes at once, all with the image's NODE_OPTIONS,
 *    malloc settings and node flags (read from the Dockerfile), and
 *    lets them settle for `--settle` s, then samples every second for `--idle` s
 *    VmRSS (/proc/<pid>/status) and utime+stime (/proc/<pid>/stat):
 *    - `node dist/daemon/cli.js daemon` in host mode, rules-only (no model),
 *      its host root a temporary folder with /proc and /sys linked in and an
 *      empty var/log/pods;
 *    - the same daemon in kubeconfig mode against the loopback fake API server
 *      and fake kubelet of test/harness (TokenReview auth, conditions and
 *      events exporters on);
 *    - one bare Node per mode that imports the packages of step 1 and idles
 *      (the Kubernetes client's files through the daemon's own loader,
 *      collectors/kube/client.ts, which leaves out what the daemon never uses).
 * 3. Feeds the host-mode daemon CRI lines through a pod log file: `--rate`
 *    lines/s for `--steady` s, then as fast as it takes them up to
 *    `--flood-rate` lines/s for `--flood` s, then nothing for `--after` s;
 *    RSS is sampled throughout and the pod-logs source's signal count is read
 *    from /v1/status to show the lines were read.
 *
 * Prints a markdown section on stdout (the "Footprint" section of RESULTS.md);
 * `--write` also puts it into test/bench/RESULTS.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeImageRuntime, imageRuntime } from './image-runtime.ts';
import { writeResultsSection } from './results-section.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const CLI = join(ROOT, 'dist/daemon/cli.js');
const IMAGE = imageRuntime(ROOT);
const IMAGE_DESCRIPTION = describeImageRuntime(IMAGE);
const MIB = 2 ** 20;
/** Containers the steady load is spread over: 500 lines/s each at 2,000 lines/s, under the collector's per-container limit. */
const STEADY_CONTAINERS = 4;
/** Containers the flood is spread over: at 50,000 lines/s, 1,000 lines/s each, the per-container limit. */
const FLOOD_CONTAINERS = 50;
/** USER_HZ: /proc/<pid>/stat counts CPU time in these ticks on Linux. */
const CLOCK_TICKS = 100;

// The harness is TypeScript imported with .js suffixes (as vitest resolves it); plain Node needs the .ts file.
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (err) {
      if (specifier.startsWith('.') && specifier.endsWith('.js')) return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      throw err;
    }
  },
});
const { FakeApiServer } = await import('../harness/fake-apiserver.ts');
const { FakeKubelet } = await import('../harness/fake-kubelet.ts');
const { ACCESS_ROLES } = await import('../../dist/daemon/api/auth/policy.js');

function log(msg: string): void {
  process.stderr.write(`[footprint] ${msg}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample of a process: resident set (bytes) and CPU ticks used so far. */
interface Sample {
  at: number;
  rss: number;
  ticks: number;
}

function sample(pid: number): Sample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { at: performance.now(), rss, ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** A measured child process. */
interface Proc {
  name: string;
  child: ChildProcess;
  url?: string;
  samples: Sample[];
  tail: () => string;
}

function launch(name: string, args: string[], env: Record<string, string | undefined>, waitForUrl: boolean): Promise<Proc> {
  const child = spawn(process.execPath, [...IMAGE.flags, ...args], { cwd: ROOT, env: { ...env, ...IMAGE.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4000);
  };
  child.stderr!.on('data', keep);
  const proc: Proc = { name, child, samples: [], tail: () => tail };
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${name} did not start in 60 s:\n${tail}`)), 60_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`${name} exited with ${code}:\n${tail}`));
    });
    child.stdout!.on('data', (c: Buffer) => {
      keep(c);
      const m = /"url":"(http:\/\/[^"]+)"/.exec(tail);
      if (waitForUrl && m && !proc.url) {
        proc.url = m[1]!;
        clearTimeout(t);
        res(proc);
      }
    });
    if (!waitForUrl)
      child.once('spawn', () => {
        clearTimeout(t);
        res(proc);
      });
  });
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  // Its start-up listener would report the kill as a failure.
  p.child.removeAllListeners('exit');
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await gone;
}

/** Environment without anything that would switch the daemon's mode or add a model. */
function cleanEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NODESAGE_') && !k.startsWith('MALLOC_') && !['KUBECONFIG', 'NODE_IP', 'NODE_NAME', 'NODE_OPTIONS'].includes(k)) env[k] = v;
  return { ...env, NODESAGE_LISTEN: '127.0.0.1:0', NODESAGE_LOG_LEVEL: 'info', ...extra };
}

/** A host root: the real /proc and /sys, an empty pod log folder, nothing else. */
function hostRoot(dir: string): string {
  const root = join(dir, 'host');
  mkdirSync(join(root, 'var/log/pods'), { recursive: true });
  symlinkSync('/proc', join(root, 'proc'));
  symlinkSync('/sys', join(root, 'sys'));
  return root;
}

/** Packages the daemon's own modules import when started with `env`. */
async function importsOf(name: string, env: Record<string, string | undefined>, file: string): Promise<string[]> {
  const p = await launch(`${name} (import discovery)`, ['--import', join(HERE, 'footprint-imports.ts'), CLI, 'daemon'], { ...env, FOOTPRINT_IMPORTS_FILE: file }, true);
  // Lazy imports (the Kubernetes client) happen while sources start; give them a moment.
  await sleep(3000);
  await stop(p);
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

function baseline(name: string, packages: string[]): Promise<Proc> {
  // The daemon loads the Kubernetes client's files through its own loader (collectors/kube/client.ts), which
  // leaves out the generated API; the baseline loads them the same way.
  const client = JSON.stringify(pathToFileURL(join(ROOT, 'dist/daemon/collectors/kube/client.js')).href);
  const load = `(p) => p.startsWith('@kubernetes/client-node/') ? import(${client}).then((m) => m.kubeClient()) : import(p)`;
  const code = `const load = ${load}; for (const p of ${JSON.stringify(packages)}) await load(p); setInterval(() => {}, 2 ** 30);`;
  return launch(name, ['--input-type=module', '-e', code], cleanEnv({}), false);
}

/** Summary of samples in a window. */
interface Window {
  medianRss: number;
  maxRss: number;
  lastRss: number;
  millicores: number;
  n: number;
}

function windowOf(s: Sample[]): Window {
  const rss = s.map((x) => x.rss).sort((a, b) => a - b);
  const first = s[0]!;
  const last = s[s.length - 1]!;
  const secs = (last.at - first.at) / 1000;
  return {
    medianRss: rss[Math.floor(rss.length / 2)]!,
    maxRss: rss[rss.length - 1]!,
    lastRss: last.rss,
    millicores: secs > 0 ? ((last.ticks - first.ticks) / CLOCK_TICKS / secs) * 1000 : Number.NaN,
    n: s.length,
  };
}

async function sampleFor(procs: Proc[], seconds: number, each?: (elapsed: number) => void): Promise<Sample[][]> {
  const out: Sample[][] = procs.map(() => []);
  const t0 = performance.now();
  for (let i = 0; i <= seconds; i++) {
    procs.forEach((p, k) => {
      const s = sample(p.child.pid!);
      if (!s) throw new Error(`${p.name} is gone:\n${p.tail()}`);
      out[k]!.push(s);
    });
    each?.((performance.now() - t0) / 1000);
    const next = t0 + (i + 1) * 1000;
    await sleep(Math.max(0, next - performance.now()));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Log load.

const MESSAGES = [
  (i: number) => `level=info msg="GET /api/v1/items/${i % 9973} 200" duration=${(i % 97) + 3}ms request_id=${(i * 2654435761) % 4294967296}`,
  (i: number) => `level=info msg="cache refresh done" entries=${i % 5000} took=${i % 300}ms`,
  (i: number) => `level=warn msg="slow query" table=orders rows=${i % 1000} took=${(i % 900) + 100}ms`,
  (i: number) => `level=error msg="upstream connect error" upstream=payments-${i % 7}.shop.svc:8443 err="connection refused" attempt=${i % 5}`,
  (i: number) => `2025-01-15T08:00:00Z INFO worker ${i % 16} processed job ${i} in ${i % 1000} ms`,
];

/**
 * Appends CRI lines to the live log files of `containers` pods. A load is
 * spread over several containers: the collector admits at most 1,000 lines/s
 * per container (burst 10,000) and counts the rest as dropped.
 */
class PodLogWriter {
  readonly files: string[] = [];
  n = 0;
  constructor(root: string, containers: number) {
    for (let c = 0; c < containers; c++) {
      const uid = `7f3a9c1e-5b2d-4e8f-a6c0-${String(c).padStart(12, '0')}`;
      const dir = join(root, 'var/log/pods', `shop_checkout-${c}_${uid}`, 'checkout');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, '0.log');
      writeFileSync(file, '');
      this.files.push(file);
    }
  }
  /** Writes `count` lines spread over the first `spread` containers. */
  write(count: number, spread: number): void {
    // RFC 3339 with nanoseconds, as containerd writes it.
    const ts = new Date().toISOString().replace('Z', '000000Z');
    for (let c = 0; c < spread; c++) {
      let chunk = '';
      for (let k = 0; k < count / spread; k++) {
        const i = this.n++;
        chunk += `${ts} ${i % 11 === 0 ? 'stderr' : 'stdout'} F ${MESSAGES[i % MESSAGES.length]!(i)}\n`;
      }
      appendFileSync(this.files[c]!, chunk);
    }
  }
}

/** Writes `rate` lines/s in 10 slices a second for `seconds`, sampling the daemon each second. */
async function load(daemon: Proc, writer: PodLogWriter, rate: number, spread: number, seconds: number): Promise<{ samples: Sample[]; written: number; ms: number }> {
  const samples: Sample[] = [];
  const before = writer.n;
  const t0 = performance.now();
  const slices = seconds * 10;
  for (let i = 0; i < slices; i++) {
    writer.write(Math.round(rate / 10), spread);
    if (i % 10 === 0) {
      const s = sample(daemon.child.pid!);
      if (!s) throw new Error(`the daemon is gone:\n${daemon.tail()}`);
      samples.push(s);
    }
    const next = t0 + (i + 1) * 100;
    await sleep(Math.max(0, next - performance.now()));
  }
  samples.push(sample(daemon.child.pid!)!);
  return { samples, written: writer.n - before, ms: performance.now() - t0 };
}

async function podLogSignals(url: string): Promise<number> {
  const body = (await (await fetch(`${url}/v1/status`)).json()) as { sources: { name: string; signals: number }[] };
  return body.sources.find((s) => s.name === 'pod-logs')?.signals ?? Number.NaN;
}

// ---------------------------------------------------------------------------

const { values: o } = parseArgs({
  options: {
    idle: { type: 'string', default: '60' },
    settle: { type: 'string', default: '10' },
    steady: { type: 'string', default: '30' },
    flood: { type: 'string', default: '20' },
    after: { type: 'string', default: '60' },
    rate: { type: 'string', default: '2000' },
    'flood-rate': { type: 'string', default: '50000' },
    write: { type: 'boolean', default: false },
    out: { type: 'string', default: join(HERE, 'RESULTS.md') },
  },
});
const idleS = Number(o.idle);
const settleS = Number(o.settle);
const steadyS = Number(o.steady);
const floodS = Number(o.flood);
const afterS = Number(o.after);
const rate = Number(o.rate);
const floodRate = Number(o['flood-rate']);

const startedAt = new Date().toISOString();
const loads: number[] = [os.loadavg()[0]!];
const loadTimer = setInterval(() => loads.push(os.loadavg()[0]!), 5000);
const work = mkdtempSync(join(tmpdir(), 'nodesage-footprint-'));
// The fixtures' node: its pods, Node object and events are what the cluster-mode daemon watches.
const NODE = 'edge-node-1';
const roles = ACCESS_ROLES.filter((r) => r.name === 'nodesage-reader');
const api = await FakeApiServer.create({
  bundleDir: join(ROOT, 'test/fixtures/kube'),
  users: { 'operator-token': { username: 'operator' } },
  rules: roles.flatMap((r) => r.rules.map((x) => ({ subject: 'operator', verbs: [...x.verbs], nonResourceURLs: [...x.nonResourceURLs] }))),
});
const kubelet = await FakeKubelet.create({ bundleDir: join(ROOT, 'test/fixtures/kube') });
const procs: Proc[] = [];
try {
  const hostDir = join(work, 'host-mode');
  const clusterDir = join(work, 'cluster-mode');
  mkdirSync(hostDir);
  mkdirSync(clusterDir);
  const hostEnv = cleanEnv({ NODESAGE_HOST_ROOT: hostRoot(hostDir), NODESAGE_DATA_DIR: join(hostDir, 'data'), NODE_NAME: NODE });
  writeFileSync(join(clusterDir, 'kubelet-token'), 'fake-kubelet-token\n');
  writeFileSync(join(clusterDir, 'kubelet-ca.crt'), kubelet.ca.certPem);
  const clusterEnv = cleanEnv({
    KUBECONFIG: api.writeKubeconfig(join(clusterDir, 'kubeconfig')),
    NODE_NAME: NODE,
    NODESAGE_KUBELET_URL: kubelet.url,
    NODESAGE_KUBELET_TOKEN_FILE: join(clusterDir, 'kubelet-token'),
    NODESAGE_KUBELET_CA_FILE: join(clusterDir, 'kubelet-ca.crt'),
    NODESAGE_HOST_ROOT: hostRoot(clusterDir),
    NODESAGE_DATA_DIR: join(clusterDir, 'data'),
    NODESAGE_EXPORT_CONDITIONS: 'true',
    NODESAGE_EXPORT_EVENTS: 'true',
  });

  log('finding the packages each mode imports');
  const hostImports = await importsOf('host mode', { ...hostEnv, NODESAGE_DATA_DIR: join(hostDir, 'discovery') }, join(work, 'host-imports'));
  const clusterImports = await importsOf('cluster mode', { ...clusterEnv, NODESAGE_DATA_DIR: join(clusterDir, 'discovery') }, join(work, 'cluster-imports'));
  log(`host mode: ${hostImports.join(', ')}; cluster mode: ${clusterImports.join(', ')}`);

  log(`starting the daemons and baselines; ${settleS} s settle, then ${idleS} s idle`);
  const hostDaemon = await launch('daemon, host mode', [CLI, 'daemon'], hostEnv, true);
  procs.push(hostDaemon);
  const clusterDaemon = await launch('daemon, cluster mode', [CLI, 'daemon'], clusterEnv, true);
  procs.push(clusterDaemon);
  const hostBase = await baseline('bare Node, host-mode imports', hostImports);
  procs.push(hostBase);
  const clusterBase = await baseline('bare Node, cluster-mode imports', clusterImports);
  procs.push(clusterBase);
  await sleep(settleS * 1000);
  const idle = (await sampleFor(procs, idleS)).map(windowOf);
  const idleLoad = os.loadavg();
  await stop(clusterDaemon);
  await stop(hostBase);
  await stop(clusterBase);

  log(`steady load: ${rate} lines/s for ${steadyS} s`);
  const writer = new PodLogWriter(join(hostDir, 'host'), FLOOD_CONTAINERS);
  // Let the collector find the new containers before the clock starts.
  await sleep(3000);
  const signals0 = await podLogSignals(hostDaemon.url!);
  const steady = await load(hostDaemon, writer, rate, STEADY_CONTAINERS, steadyS);
  await sleep(2000);
  const signals1 = await podLogSignals(hostDaemon.url!);
  log(`flood: up to ${floodRate} lines/s for ${floodS} s`);
  const flood = await load(hostDaemon, writer, floodRate, FLOOD_CONTAINERS, floodS);
  log(`${afterS} s after the flood`);
  // What still runs after the flood: the pod-logs source reading the backlog the flood left in the files.
  // Its signal count, every 2 s, shows when that ends.
  const reads: { at: number; signals: number }[] = [];
  const readTimer = setInterval(() => {
    podLogSignals(hostDaemon.url!).then(
      (n) => reads.push({ at: performance.now(), signals: n }),
      () => undefined,
    );
  }, 2000);
  const after = (await sampleFor([hostDaemon], afterS))[0]!;
  clearInterval(readTimer);
  const signals2 = await podLogSignals(hostDaemon.url!);
  const floodEnd = after[0]!.at;
  const caughtUp = reads.find((r) => r.signals === signals2)?.at;
  const quiet = caughtUp === undefined ? [] : after.filter((x) => x.at >= caughtUp);
  clearInterval(loadTimer);
  loads.push(os.loadavg()[0]!);

  // -------------------------------------------------------------------------
  const mib = (b: number) => (b / MIB).toFixed(1);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const [hd, cd, hb, cb] = idle as [Window, Window, Window, Window];
  const st = windowOf(steady.samples);
  const fl = windowOf(flood.samples);
  const af = windowOf(after);
  const met = (ok: boolean) => (ok ? 'met' : '**not met**');
  const steadyGrowth = st.maxRss / hd.medianRss - 1;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '## Footprint (test/bench/footprint.ts)',
    '',
    `\`npm run bench:footprint\` — ${startedAt}; ${os.availableParallelism()} cores, ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}; ` +
      `load average (1 min) mean ${(loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(2)}, min ${Math.min(...loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)} ` +
      `(sampled every 5 s; ${idleLoad.map((x) => x.toFixed(2)).join(', ')} at the end of the idle window).`,
    '',
    `Every process runs as the image runs Node (from the Dockerfile): ${IMAGE_DESCRIPTION}. The four idle processes run at the same time: ${settleS} s to settle, then ` +
      `VmRSS and utime+stime sampled every second for ${idleS} s. The baselines are bare Node importing exactly the packages the daemon's own modules ` +
      "import in that mode (found with a preload in the same run) and doing nothing else; the Kubernetes client's files through the daemon's " +
      'own loader (`daemon/collectors/kube/client.ts`), which leaves out its generated API.',
    '',
    `- host-mode imports: ${hostImports.map((p) => `\`${p}\``).join(', ')}`,
    `- cluster-mode imports: ${clusterImports.map((p) => `\`${p}\``).join(', ')}`,
    '',
    '| idle, rules-only | RSS median (MiB) | RSS max (MiB) | CPU (millicores) | RSS ÷ baseline | target | |',
    '|---|---|---|---|---|---|---|',
    `| daemon, host mode | ${mib(hd.medianRss)} | ${mib(hd.maxRss)} | ${hd.millicores.toFixed(1)} | ${ratio(hd.medianRss, hb.medianRss)} | ≤ 80 MiB, ≤ 2 millicores | ${met(hd.medianRss <= 80 * MIB && hd.maxRss <= 80 * MIB && hd.millicores <= 2)} |`,
    `| bare Node, host-mode imports | ${mib(hb.medianRss)} | ${mib(hb.maxRss)} | ${hb.millicores.toFixed(1)} | 1 | | |`,
    `| daemon, cluster mode (fake API server + kubelet) | ${mib(cd.medianRss)} | ${mib(cd.maxRss)} | ${cd.millicores.toFixed(1)} | ${ratio(cd.medianRss, cb.medianRss)} | ≤ 110 MiB | ${met(cd.maxRss <= 110 * MIB)} |`,
    `| bare Node, cluster-mode imports | ${mib(cb.medianRss)} | ${mib(cb.maxRss)} | ${cb.millicores.toFixed(1)} | 1 | | |`,
    '',
    `Log load on the host-mode daemon: CRI lines appended to pods' \`0.log\` in 10 slices a second, the steady load over ${STEADY_CONTAINERS} containers, ` +
      `the flood over ${FLOOD_CONTAINERS} (the collector admits 1,000 lines/s per container, burst 10,000, and counts the rest as dropped); RSS sampled every second.`,
    '',
    '| phase | lines written | lines/s written | RSS median (MiB) | RSS max (MiB) | RSS at the end (MiB) | CPU (millicores) | max RSS ÷ idle median | target | |',
    '|---|---|---|---|---|---|---|---|---|---|',
    `| steady, ${steadyS} s | ${steady.written} | ${Math.round(steady.written / (steady.ms / 1000))} | ${mib(st.medianRss)} | ${mib(st.maxRss)} | ${mib(st.lastRss)} | ${st.millicores.toFixed(0)} | ${ratio(st.maxRss, hd.medianRss)} | ≤ 1.20 | ${met(steadyGrowth <= 0.2)} |`,
    `| flood, ${floodS} s | ${flood.written} | ${Math.round(flood.written / (flood.ms / 1000))} | ${mib(fl.medianRss)} | ${mib(fl.maxRss)} | ${mib(fl.lastRss)} | ${fl.millicores.toFixed(0)} | ${ratio(fl.maxRss, hd.medianRss)} | | |`,
    `| ${afterS} s after the flood | 0 | 0 | ${mib(af.medianRss)} | ${mib(af.maxRss)} | ${mib(af.lastRss)} | ${af.millicores.toFixed(0)} | ${ratio(af.lastRss, hd.medianRss)} (at the end) | | |`,
    ...(quiet.length >= 5
      ? [
          `| of which after the backlog was read (from ${((caughtUp! - floodEnd) / 1000).toFixed(0)} s on) | 0 | 0 | ${mib(windowOf(quiet).medianRss)} | ${mib(windowOf(quiet).maxRss)} | ${mib(windowOf(quiet).lastRss)} | ${windowOf(quiet).millicores.toFixed(1)} | | | |`,
        ]
      : []),
    '',
    caughtUp === undefined
      ? `After the flood the pod-logs source was still reading the lines the flood left in the files when the run ended (its signal count still rising).`
      : `After the flood the pod-logs source went on reading the lines the flood had left in the files (every line is read and parsed; the rate limit drops it after that) until ${((caughtUp - floodEnd) / 1000).toFixed(0)} s after the flood${quiet.length >= 5 ? '; the last row is the daemon from then on' : ''}.`,
    `The pod-logs source counted ${signals1 - signals0} signals for the ${steady.written} steady lines (2 s after the phase) and ${signals2 - signals1} ` +
      `for the ${flood.written} flood lines by the end of the run (signals include checkpoints; lines over the per-container limit are dropped and counted, not queued).`,
    '',
  ];
  const section = lines.join('\n');
  process.stdout.write(section);
  if (o.write) {
    const path = resolve(o.out);
    writeResultsSection(path, 'footprint', section);
    log(`wrote ${path}`);
  }
} catch (err) {
  // Printed before the clean-up, which waits for the fakes' connections to close.
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  clearInterval(loadTimer);
  for (const p of procs) await stop(p);
  await api.stop();
  await kubelet.stop();
  rmSync(work, { recursive: true, force: true });
}
