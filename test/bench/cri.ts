/**
 * Throughput of the CRI reading path the pod-log collector uses (positioned
 * reads + CriReader: header parse, partial-line joins, time conversion,
 * LogLine objects) against bare `readline` over the same file that only
 * counts lines, plus the whole PodLogCollector (listing, identity, signals).
 *
 *   npm run build && node test/bench/cri.ts [--lines N] [--dir DIR] [--runs R] [--write]
 *
 * Writes a realistic CRI file (JSON and klog-style lines, Java stack traces,
 * stdout/stderr mix, ~3% of messages split into P…P F partial lines) of N
 * physical lines (default 1,000,000, about 200 MB) under DIR (default a temp dir), warms the
 * page cache, then runs each reader R times (default 3) and keeps the best.
 * `--write` also writes test/bench/RESULTS-cri.md.
 */
import { execSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MemoryCheckpoints } from '../../dist/daemon/collectors/checkpoints.js';
import { CriReader } from '../../dist/daemon/collectors/parse.js';
import { PodLogCollector } from '../../dist/daemon/collectors/pod-logs.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const LINES = Number(arg('lines', '1000000'));
const RUNS = Number(arg('runs', '3'));
const WRITE = process.argv.includes('--write');
const ownDir = !process.argv.includes('--dir');
const baseDir = ownDir ? mkdtempSync(join(os.tmpdir(), 'nodesage-bench-cri-')) : arg('dir', '');
const podDir = join(baseDir, 'var/log/pods/shop_checkout-5c9d7b8f4-kq2xz_6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b/checkout');
mkdirSync(podDir, { recursive: true });
const file = join(podDir, '0.log');

/** Deterministic pseudo-random numbers, so every run writes the same file. */
let seed = 42;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}

const paths = ['/api/v1/orders', '/api/v1/cart', '/healthz', '/api/v1/payments/authorize', '/metrics'];
const users = ['u-10293', 'u-55120', 'u-77341', 'u-90011'];

function message(i: number): string {
  const r = rand();
  if (r < 0.55) {
    return JSON.stringify({
      level: r < 0.05 ? 'error' : 'info',
      ts: 1736928000 + i / 1000,
      caller: 'http/server.go:214',
      msg: 'request completed',
      method: 'GET',
      path: paths[i % paths.length],
      status: r < 0.05 ? 503 : 200,
      duration_ms: Math.round(rand() * 250),
      user: users[i % users.length],
      trace_id: (i * 2654435761).toString(16).padStart(16, '0'),
    });
  }
  if (r < 0.8) return `I0115 08:${String(Math.floor(i / 60000) % 60).padStart(2, '0')}:00.${String(i % 1000000).padStart(6, '0')}       1 controller.go:${100 + (i % 400)}] "Reconciled object" kind="Order" name="order-${i}" duration="${(rand() * 30).toFixed(3)}ms"`;
  if (r < 0.9) return `\tat com.example.shop.checkout.PaymentService.authorize(PaymentService.java:${100 + (i % 50)}) ~[app.jar:1.4.2]`;
  if (r < 0.97) return `2025-01-15 08:00:00.${String(i % 1000).padStart(3, '0')}  WARN 1 --- [nio-8080-exec-${i % 10}] o.h.engine.jdbc.spi.SqlExceptionHelper   : SQL Error: 0, SQLState: 08006 connection to 10.0.3.17:5432 refused — retry ${i % 5}`;
  if (r < 0.99) return `2025-01-15 08:00:00 ERROR [worker-${i % 8}] job ${i} failed: context deadline exceeded (Client.Timeout exceeded while awaiting headers)`;
  return `payload=${'x'.repeat(500 + Math.floor(rand() * 2000))} end=${i}`;
}

async function writeFixture(): Promise<{ physical: number; messages: number; bytes: number }> {
  const out = createWriteStream(file);
  let physical = 0;
  let messages = 0;
  let t = Date.UTC(2025, 0, 15, 8, 0, 0) * 1e6; // nanoseconds
  let chunk = '';
  while (physical < LINES) {
    t += 37_000 + Math.floor(rand() * 900_000);
    const ms = Math.floor(t / 1e6);
    const iso = new Date(ms).toISOString().slice(0, 19);
    const ns = String(t % 1e9).padStart(9, '0');
    const stream = rand() < 0.2 ? 'stderr' : 'stdout';
    const msg = message(messages);
    messages++;
    // containerd splits lines longer than 16 KiB; split ~3% of messages too, as long lines and broken writes do.
    const parts = msg.length > 1000 || rand() < 0.02 ? 2 + Math.floor(rand() * 3) : 1;
    const size = Math.ceil(msg.length / parts);
    for (let p = 0; p < parts && physical < LINES; p++) {
      chunk += `${iso}.${ns}Z ${stream} ${p === parts - 1 ? 'F' : 'P'} ${msg.slice(p * size, (p + 1) * size)}\n`;
      physical++;
    }
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      chunk = '';
    }
  }
  out.write(chunk);
  await new Promise<void>((r) => out.end(r));
  return { physical, messages, bytes: statSync(file).size };
}

async function bareReadline(): Promise<number> {
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const _ of rl) n++;
  return n;
}

/** The collector's read loop (readTracked in collectors/pod-logs/files.ts): positioned reads of 256 KiB into CriReader. */
async function criPath(): Promise<{ physical: number; messages: number; sample: string }> {
  const fh = await open(file, 'r');
  const reader = new CriReader({ namespace: 'shop', pod: 'checkout-5c9d7b8f4-kq2xz', uid: '6f1c2b9e', container: 'checkout', restart: 0 });
  const buf = Buffer.allocUnsafe(256 * 1024);
  const out: import('../../dist/daemon/core/types.js').LogLine[] = [];
  let messages = 0;
  let physical = 0;
  let sample = '';
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, reader.offset);
      if (bytesRead === 0) break;
      const before = reader.offset;
      const n = reader.consume(buf, 0, bytesRead, out);
      // Physical lines = newlines consumed (counted outside the timed parser work would hide nothing: it is the same scan readline does).
      for (let i = 0; i < n; i++) if (buf[i] === 10) physical++;
      messages += out.length;
      if (!sample && out.length > 0) sample = JSON.stringify(out[0]);
      out.length = 0;
      if (reader.offset === before) break;
    }
    reader.flush(out);
    messages += out.length;
  } finally {
    await fh.close();
  }
  return { physical, messages, sample };
}

/** CriReader alone (no newline recount), for the number the collector really pays per line. */
async function criPathNoCount(): Promise<number> {
  const fh = await open(file, 'r');
  const reader = new CriReader({ namespace: 'shop', pod: 'p', uid: 'u', container: 'c' });
  const buf = Buffer.allocUnsafe(256 * 1024);
  const out: import('../../dist/daemon/core/types.js').LogLine[] = [];
  let messages = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, reader.offset);
      if (bytesRead === 0) break;
      reader.consume(buf, 0, bytesRead, out);
      messages += out.length;
      out.length = 0;
    }
  } finally {
    await fh.close();
  }
  return messages;
}

/** The whole collector: listing, identity, reads, rate limit off, signals to a counting sink. */
async function fullCollector(): Promise<number> {
  const store = new MemoryCheckpoints();
  // A known node (some checkpoint stored) reads a new container from its start.
  store.commit([{ type: 'checkpoint', source: 'pod-logs', key: 'other_pod_uid/c', value: '{"v":1,"files":[]}' }]);
  let lines = 0;
  const c = new PodLogCollector({
    hostRoot: baseDir,
    checkpoints: store,
    pollIntervalMs: 3_600_000,
    watch: false,
    rateLimit: null,
  });
  await c.start((signals) => {
    for (const s of signals) if (s.type === 'log') lines++;
  });
  let last = -1;
  while (lines !== last) {
    last = lines;
    await c.pollNow();
  }
  await c.stop();
  return lines;
}

/** Wall time and CPU time (user + system, all threads of this process: GC included). */
async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; cpuMs: number; value: T }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, value };
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const tw = await time(writeFixture);
  const fx = tw.value;
  console.log(`fixture: ${fmt(fx.physical)} physical lines, ${fmt(fx.messages)} messages, ${(fx.bytes / 1e6).toFixed(1)} MB, written in ${(tw.ms / 1000).toFixed(1)} s → ${file}`);
  await bareReadline(); // page cache warm-up

  const inf = Number.POSITIVE_INFINITY;
  const best = { readline: inf, criNoCount: inf, collector: inf };
  const bestCpu = { readline: inf, criNoCount: inf, collector: inf };
  let rlLines = 0;
  // Counts once, outside the timed runs: physical lines and messages as the reader sees them.
  const cri = await criPath();
  let collectorLines = 0;
  for (let r = 0; r < RUNS; r++) {
    const a = await time(bareReadline);
    best.readline = Math.min(best.readline, a.ms);
    bestCpu.readline = Math.min(bestCpu.readline, a.cpuMs);
    rlLines = a.value;
    const b2 = await time(criPathNoCount);
    best.criNoCount = Math.min(best.criNoCount, b2.ms);
    bestCpu.criNoCount = Math.min(bestCpu.criNoCount, b2.cpuMs);
    const c = await time(fullCollector);
    best.collector = Math.min(best.collector, c.ms);
    bestCpu.collector = Math.min(bestCpu.collector, c.cpuMs);
    collectorLines = c.value;
    console.log(
      `run ${r + 1} (wall/cpu ms): readline ${a.ms.toFixed(0)}/${a.cpuMs.toFixed(0)}, CriReader ${b2.ms.toFixed(0)}/${b2.cpuMs.toFixed(0)}, collector ${c.ms.toFixed(0)}/${c.cpuMs.toFixed(0)}`,
    );
  }
  if (rlLines !== fx.physical || cri.physical !== fx.physical || cri.messages !== fx.messages || collectorLines !== fx.messages) {
    throw new Error(`line counts disagree: readline ${rlLines}, cri ${cri.physical}/${cri.messages}, collector ${collectorLines}, fixture ${fx.physical}/${fx.messages}`);
  }
  const rate = (ms: number) => (fx.physical / ms) * 1000;
  const rows = [
    ['bare readline (count lines)', best.readline, bestCpu.readline],
    ['CriReader (parse + join + LogLine)', best.criNoCount, bestCpu.criNoCount],
    ['PodLogCollector (whole poll path)', best.collector, bestCpu.collector],
  ] as const;
  const ratio = rate(best.criNoCount) / rate(best.readline);
  const ratioCollector = rate(best.collector) / rate(best.readline);
  const ratioCpu = bestCpu.readline / bestCpu.criNoCount;
  const ratioCollectorCpu = bestCpu.readline / bestCpu.collector;
  const table = [
    `| reader | wall (best of ${RUNS}) | lines/s (wall) | MB/s | ratio (wall) | CPU (best) | lines per CPU-s | ratio (CPU) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      ([name, ms, cpu]) =>
        `| ${name} | ${(ms / 1000).toFixed(2)} s | ${fmt(rate(ms))} | ${((fx.bytes / 1e6 / ms) * 1000).toFixed(0)} | ${(best.readline / ms).toFixed(2)} | ${(cpu / 1000).toFixed(2)} s | ${fmt(rate(cpu))} | ${(bestCpu.readline / cpu).toFixed(2)} |`,
    ),
  ].join('\n');
  console.log(`\n${table}\n`);
  console.log(
    `ratio CriReader/readline = ${ratio.toFixed(2)} wall, ${ratioCpu.toFixed(2)} CPU (target >= 0.5); collector/readline = ${ratioCollector.toFixed(2)} wall, ${ratioCollectorCpu.toFixed(2)} CPU`,
  );
  console.log(`sample LogLine: ${cri.sample.slice(0, 200)}`);

  if (WRITE) {
    const date = execSync('date -u', { encoding: 'utf8' }).trim();
    const md = `# CRI reading benchmark

\`npm run build && node test/bench/cri.ts --write\` — ${date}

Machine: ${os.cpus().length} cores (${cpuModel()}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}.

Fixture (generated by the script, deterministic): ${fmt(fx.physical)} physical CRI lines = ${fmt(fx.messages)} messages,
${(fx.bytes / 1e6).toFixed(1)} MB; JSON and klog lines, Java stack frames, Spring warnings, ~3% of messages split
into P…P F partial lines (all lines over 1000 bytes are split); 20% stderr. File in the page cache; best of ${RUNS} runs.

${table}

- **bare readline**: \`readline\` over \`fs.createReadStream\`, only counting lines (decodes UTF-8 and splits, nothing else).
- **CriReader**: the collector's read loop — positioned 256 KiB reads, byte-level header parse
  (time, stream, P/F tag), partial-line joins, RFC3339Nano → ISO time, one \`LogLine\` per message with its
  \`ContainerRef\`; only the message bytes are decoded.
- **PodLogCollector**: \`pollNow()\` over the same file as a new container (directory listing, file identity,
  reads, \`log\` signal objects, checkpoint), rate limit off.

Ratio CriReader / readline = **${ratio.toFixed(2)}** by wall time, **${ratioCpu.toFixed(2)}** by CPU time (target ≥ 0.5);
whole collector / readline = ${ratioCollector.toFixed(2)} wall, ${ratioCollectorCpu.toFixed(2)} CPU.
Load average while it ran: ${os.loadavg().map((l) => l.toFixed(1)).join(', ')} (other work on the machine makes wall times noisy;
CPU time counts only this process, all its threads, garbage collection included).
All three count the same lines (checked by the script: ${fmt(fx.physical)} physical, ${fmt(fx.messages)} messages).
`;
    writeFileSync(new URL('./RESULTS-cri.md', import.meta.url), md);
    console.log('wrote test/bench/RESULTS-cri.md');
  }
  if (ownDir) rmSync(baseDir, { recursive: true, force: true });
}

await main();
