/**
 * Grouping accuracy and throughput of the template miner on Loghub 2k samples.
 *
 *   npm run build && node test/bench/template-mining.ts DIR
 *
 * DIR holds one folder per dataset with `<D>_2k.log_structured.csv`
 * (columns include `Content` and `EventId`). Each dataset's `Content` rows go
 * in file order into a fresh miner. Grouping accuracy (GA): a line is correct
 * when the set of lines in its mined group equals the set of lines sharing its
 * `EventId`. "final" groups lines by the cluster they ended in (merges
 * followed, what `nodesage logs mine` prints for one input); "online" groups
 * them by the id `add()` returned at the time.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { TemplateMiner } from '../../dist/daemon/detectors/templates/miner.js';

/** Parses RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  const n = text.length;
  let i = 0;
  while (i <= n) {
    let field: string;
    if (text[i] === '"') {
      // Quoted field: up to the quote that is not doubled.
      let j = i + 1;
      let parts = '';
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) throw new Error('CSV: unterminated quoted field');
        parts += text.slice(j, q);
        if (text[q + 1] === '"') {
          parts += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      field = parts;
    } else {
      let j = i;
      while (j < n && text[j] !== ',' && text[j] !== '\n' && text[j] !== '\r') j++;
      field = text.slice(i, j);
      i = j;
    }
    row.push(field);
    if (text[i] === ',') {
      i++;
      continue;
    }
    // End of record: "\r\n", "\n" or end of text.
    rows.push(row);
    row = [];
    if (text[i] === '\r' && text[i + 1] === '\n') i += 2;
    else i++;
    if (i >= n) break;
  }
  return rows;
}

/** Grouping accuracy of `predicted` against `truth` (same length). */
function groupingAccuracy(predicted: readonly string[], truth: readonly string[]): number {
  const truthSize = new Map<string, number>();
  for (const t of truth) truthSize.set(t, (truthSize.get(t) ?? 0) + 1);
  const groups = new Map<string, Map<string, number>>();
  for (let i = 0; i < predicted.length; i++) {
    const p = predicted[i] as string;
    const t = truth[i] as string;
    const g = groups.get(p) ?? new Map<string, number>();
    groups.set(p, g);
    g.set(t, (g.get(t) ?? 0) + 1);
  }
  let correct = 0;
  for (const g of groups.values()) {
    if (g.size !== 1) continue;
    const [[t, k]] = [...g.entries()] as [[string, number]];
    if (truthSize.get(t) === k) correct += k;
  }
  return correct / predicted.length;
}

interface Dataset {
  name: string;
  contents: string[];
  eventIds: string[];
}

function loadDataset(dir: string, name: string): Dataset | null {
  const file = join(dir, name, `${name}_2k.log_structured.csv`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const rows = parseCsv(text);
  const header = rows[0] ?? [];
  const ci = header.indexOf('Content');
  const ei = header.indexOf('EventId');
  if (ci < 0 || ei < 0) throw new Error(`${file}: no Content/EventId column`);
  const contents: string[] = [];
  const eventIds: string[] = [];
  for (const r of rows.slice(1)) {
    if (r.length <= Math.max(ci, ei)) continue;
    contents.push(r[ci] as string);
    eventIds.push(r[ei] as string);
  }
  return { name, contents, eventIds };
}

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node test/bench/template-mining.ts DIR\n');
  process.exit(2);
}
const datasets = readdirSync(dir)
  .filter((d) => statSync(join(dir, d)).isDirectory())
  .sort()
  .map((d) => loadDataset(dir, d))
  .filter((d): d is Dataset => d !== null);
if (datasets.length === 0) {
  process.stderr.write(`no <D>/<D>_2k.log_structured.csv under ${dir}\n`);
  process.exit(2);
}

const rows: { name: string; lines: number; truth: number; mined: number; gaFinal: number; gaOnline: number }[] = [];
for (const d of datasets) {
  const miner = new TemplateMiner();
  const online: string[] = [];
  const clusters = d.contents.map((line) => {
    const c = miner.addCluster(line);
    online.push(c.id);
    return c;
  });
  const final = clusters.map((c) => miner.resolveId(c.id));
  rows.push({
    name: d.name,
    lines: d.contents.length,
    truth: new Set(d.eventIds).size,
    mined: new Set(final).size,
    gaFinal: groupingAccuracy(final, d.eventIds),
    gaOnline: groupingAccuracy(online, d.eventIds),
  });
  if (process.env.LOGHUB_DEBUG === d.name) dumpErrors(d, final);
}

function dumpErrors(d: Dataset, predicted: string[]): void {
  const byTruth = new Map<string, Set<string>>();
  const byPred = new Map<string, Set<string>>();
  d.eventIds.forEach((t, i) => {
    const p = predicted[i] as string;
    if (!byTruth.has(t)) byTruth.set(t, new Set());
    byTruth.get(t)?.add(p);
    if (!byPred.has(p)) byPred.set(p, new Set());
    byPred.get(p)?.add(t);
  });
  const shown = new Set<string>();
  d.eventIds.forEach((t, i) => {
    const p = predicted[i] as string;
    if (shown.has(t)) return;
    const split = (byTruth.get(t)?.size ?? 0) > 1;
    const mixed = (byPred.get(p)?.size ?? 0) > 1;
    if (!split && !mixed) return;
    shown.add(t);
    process.stdout.write(`${t} ${split ? 'SPLIT' : ''}${mixed ? ' MIXED' : ''}: ${d.contents[i]}\n`);
    if (split)
      for (const q of byTruth.get(t) ?? []) {
        const j = predicted.indexOf(q);
        process.stdout.write(`    -> ${d.contents[j]}\n`);
      }
    if (mixed)
      for (const u of byPred.get(p) ?? []) {
        if (u === t) continue;
        const j = d.eventIds.indexOf(u);
        process.stdout.write(`    mixed with ${u}: ${d.contents[j]}\n`);
      }
  });
}

const pad = (s: string | number, w: number) => String(s).padEnd(w);
process.stdout.write(`${pad('dataset', 12)}${pad('lines', 7)}${pad('truth', 7)}${pad('mined', 7)}${pad('GA', 8)}GA online\n`);
for (const r of rows)
  process.stdout.write(
    `${pad(r.name, 12)}${pad(r.lines, 7)}${pad(r.truth, 7)}${pad(r.mined, 7)}${pad(r.gaFinal.toFixed(4), 8)}${r.gaOnline.toFixed(4)}\n`,
  );
const avg = (f: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
process.stdout.write(`${pad('average', 33)}${pad(avg((r) => r.gaFinal).toFixed(4), 8)}${avg((r) => r.gaOnline).toFixed(4)}\n`);

// Throughput: every dataset's lines in one stream, a fresh miner per pass, until >= 1 s.
const all = datasets.flatMap((d) => d.contents);
const warm = new TemplateMiner();
for (const l of all) warm.add(l);
let lines = 0;
const passMs: number[] = [];
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let elapsed = 0;
while (elapsed < 1.5 || passMs.length < 5) {
  const p0 = process.hrtime.bigint();
  const m = new TemplateMiner();
  for (const l of all) m.add(l);
  passMs.push(Number(process.hrtime.bigint() - p0) / 1e6);
  lines += all.length;
  elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
}
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const sorted = [...passMs].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)] as number;
const model = os.cpus()[0]?.model ?? 'unknown cpu';
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
process.stdout.write(
  `\nthroughput: ${fmt(lines / elapsed)} lines/s (${lines} lines in ${elapsed.toFixed(2)} s, ${passMs.length} passes of ${all.length} lines, a fresh miner per pass); ` +
    `median pass ${fmt(all.length / (median / 1000))} lines/s, best pass ${fmt(all.length / ((sorted[0] as number) / 1000))} lines/s, ` +
    `${fmt(lines / cpuSeconds)} lines per CPU-second of the process\n` +
    `machine: node ${process.version}, ${os.cpus().length} × ${model}, load average ${os.loadavg()[0]?.toFixed(2)} during the run\n`,
);
