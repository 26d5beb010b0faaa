/**
 * Renders the results of test/bench/llm.ts as the LLM part of RESULTS.md.
 * Every number comes from the run; the interpretation lines are conditional
 * on what was measured.
 */
import type { CallStats, LlmResults } from './llm.ts';

type Call = Omit<CallStats, 'text'>;

interface PairOut {
  engine: Call;
  plain: Call;
  cachedSystem: boolean;
  sameText: boolean;
}

interface Throughput {
  threads: number;
  engineThreads: number;
  plainThreads: number;
  backend: string;
  llamaCpp?: { repo?: string; release?: string; buildType?: string; cpuMathCores?: number; systemInfo?: string };
  engineLoadMs: number;
  plainLoadMs: number;
  grammarCreateMs: number;
  chatWrapperResolveMs?: number;
  systemTokens: number;
  systemChars: number;
  promptPairs: PairOut[];
  genPairs: PairOut[];
  grammarPairs: { free: Call; grammar: Call }[];
  grammarSample: string;
  threadRounds?: { one: Call; two: Call }[];
  prefix: { uncached: Call; cached: Call };
  plainPrefix: { uncached: Call; cached: Call };
}

interface Attempt {
  cutFields: string[];
  tokens: { prompt: number; cachedPrompt: number; forced: number; completion: number };
  timings: { queuedMs: number; loadMs: number; promptMs: number; generationMs: number };
  latencyMs: number;
  error?: string;
}

interface DiagnosisRun {
  label: string;
  wallMs: number;
  stored: boolean;
  diagnoser: string | null;
  fallback: string | null;
  fallbackDetail: string | null;
  summary: string | null;
  attempts: Attempt[];
  /** Answer fields that ran to their token cap. */
  cutFields: number;
}

interface PromptInfo {
  finding: string;
  evidenceLines: number;
  userTokens: number;
  userChars: number;
  evidenceItems: number;
  droppedEvidence: number;
  overBudget: boolean;
  charsPerToken: number;
  allEvidenceUserTokens: number;
  allEvidenceItems: number;
}

interface Scenario {
  name: string;
  env: Record<string, string>;
  config: { contextSize: number; promptTokens: number; timeoutSeconds: number; gpu: string; threads: number; memoryBudgetMB: number };
  engine: { threads: number; threadBasis: string; backend: string; contextSize: number; loadMs: number | null; parameters: number };
  cold: DiagnosisRun;
  warm: DiagnosisRun;
  againMs: number;
  queue: Record<string, number>;
}

interface Pipeline {
  scenarios: Scenario[];
  /** Token caps of the fields the model writes. */
  answerTokens: Record<string, number>;
  systemTokens: number;
  systemChars: number;
  prompts: PromptInfo[];
}

interface Proc {
  VmRSS: number;
  VmHWM: number;
  RssAnon: number;
  RssFile: number;
  RssShmem: number;
}

interface Memory {
  variant: string;
  useMmap: boolean;
  loadMs: number;
  estimatedBytes: number | null;
  beforeLoad: Proc;
  afterLoad: Proc;
  peakDuringGeneration: number;
  peakDuringLoad: number;
  peakResetWorked: boolean;
  afterGeneration: Proc;
  afterUnload: Proc;
}

type Settings = LlmResults['settings'];

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const s1 = (msv: number) => `${(msv / 1000).toFixed(1)} s`;
const mb = (b: number | undefined | null) => (b == null ? 'n/a' : `${f0(b / 2 ** 20)} MiB`);
const pct = (x: number) => `${f0(x * 100)}%`;
const isError = (x: unknown): x is { error: string } => typeof x === 'object' && x !== null && 'error' in x;

/** Aggregate rates over calls: total tokens / total time. */
function aggPrompt(calls: Call[]): number {
  return calls.reduce((s, c) => s + c.evaluatedTokens, 0) / (calls.reduce((s, c) => s + c.promptMs, 0) / 1000);
}
function aggGen(calls: Call[]): number {
  return calls.reduce((s, c) => s + Math.max(0, c.completionTokens - 1), 0) / (calls.reduce((s, c) => s + c.generationMs, 0) / 1000);
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
function spread(xs: number[]): string {
  return `${f2(Math.min(...xs))}–${f2(Math.max(...xs))}`;
}
const order2 = <T>(i: number, a: T, b: T): T[] => (i % 2 === 0 ? [a, b] : [b, a]);

/** Headline ratios of the engine-vs-plain comparison. */
interface Ratios {
  promptMedian: number;
  promptAgg: number;
  genMedian: number;
  genAgg: number;
  wall: number;
  wallMedian: number;
}

function ratios(t: Throughput): Ratios {
  const all = [...t.promptPairs, ...t.genPairs];
  return {
    promptMedian: median(t.promptPairs.map((x) => x.engine.promptTps / x.plain.promptTps)),
    promptAgg: aggPrompt(t.promptPairs.map((x) => x.engine)) / aggPrompt(t.promptPairs.map((x) => x.plain)),
    genMedian: median(t.genPairs.map((x) => x.engine.genTps / x.plain.genTps)),
    genAgg: aggGen(t.genPairs.map((x) => x.engine)) / aggGen(t.genPairs.map((x) => x.plain)),
    wall: all.reduce((s, x) => s + x.plain.wallMs, 0) / all.reduce((s, x) => s + x.engine.wallMs, 0),
    wallMedian: median(all.map((x) => x.plain.wallMs / x.engine.wallMs)),
  };
}

function renderThroughput(t: Throughput, settings: Settings, out: string[]): Ratios {
  const r = ratios(t);
  const pe = t.promptPairs.map((p) => p.engine);
  const pp = t.promptPairs.map((p) => p.plain);
  const ge = t.genPairs.map((p) => p.engine);
  const gp = t.genPairs.map((p) => p.plain);
  const all = [...t.promptPairs, ...t.genPairs];
  out.push("### 1. Throughput: the daemon's engine vs plain node-llama-cpp");
  out.push('');
  out.push(
    `Same model and settings on both sides: CPU, \`useMmap: false\`, context ${settings.contextSize} tokens, batch ${settings.batchSize}, ` +
      `${t.engineThreads} threads for the engine and ${t.plainThreads} for the plain context, temperature 0, repeat penalty ${settings.repeatPenalty}, no grammar. ` +
      'Engine: `LlmEngine.complete({systemPrompt, userPrompt, maxTokens})` with the real diagnosis prompt (`SYSTEM_PROMPT` + `buildPrompt()` of a CrashLoop finding, counted with the model). ' +
      "Plain: `getLlama({gpu: false, build: 'never'})`, `loadModel({useMmap: false})`, `createContext({contextSize, batchSize, threads})`, " +
      'a new `LlamaChatSession({systemPrompt})` per call, `promptWithMeta(user, {maxTokens, temperature: 0, repeatPenalty, onToken})`. ' +
      'One process, each side on its own context, calls alternating E P, P E, E P…; both sides get the same prompts in the same order, so both reuse the same cached tokens. ' +
      'Ratios are the **median of the per-pair ratios** (robust to a burst of load hitting one call of a pair); the aggregate (total tokens ÷ total time per side) is shown next to it.',
  );
  out.push('');
  out.push(
    `**Prompt evaluation** (${settings.promptMaxTokens} tokens generated per call): pair 0 is a first diagnosis (empty KV cache: the whole prompt is evaluated); ` +
      `pairs 1–${t.promptPairs.length - 1} are the steady state (the fixed system prompt reused from the cache, the next finding's user part evaluated). ` +
      'Prompt tok/s = evaluated prompt tokens ÷ time from the start of evaluation to the first generated token.',
  );
  out.push('');
  out.push('| pair | KV cache | side | prompt tokens evaluated / total | time to first token | prompt tok/s | call wall time |');
  out.push('|---|---|---|---:|---:|---:|---:|');
  t.promptPairs.forEach((pair, i) => {
    for (const who of order2(i, 'engine', 'plain') as ('engine' | 'plain')[]) {
      const c = pair[who];
      out.push(
        `| ${i} | ${pair.cachedSystem ? 'system prompt cached' : 'empty'} | ${who} | ${f0(c.evaluatedTokens)} / ${f0(c.promptTokens)} | ${f0(c.promptMs)} ms | ${f1(c.promptTps)} | ${f0(c.wallMs)} ms |`,
      );
    }
  });
  out.push('');
  out.push(
    `**Generation** (${settings.genPairs} pairs of ${settings.genMaxTokens} tokens per call, engine and plain alternating; ` +
      'the same prompt again, so only its last token is evaluated). Gen tok/s = (generated − 1) ÷ time from the first to the last generated token.',
  );
  out.push('');
  out.push('| pair | engine gen tok/s | plain gen tok/s | engine ÷ plain | first |');
  out.push('|---|---:|---:|---:|---|');
  t.genPairs.forEach((pair, i) => {
    out.push(`| ${i} | ${f1(pair.engine.genTps)} | ${f1(pair.plain.genTps)} | ${f2(pair.engine.genTps / pair.plain.genTps)} | ${i % 2 === 0 ? 'engine' : 'plain'} |`);
  });
  out.push('');
  out.push('| | engine | plain | **engine ÷ plain, median of pairs** | aggregate ratio | per-pair range |');
  out.push('|---|---:|---:|---:|---:|---|');
  out.push(
    `| prompt tok/s | ${f1(aggPrompt(pe))} | ${f1(aggPrompt(pp))} | **${f2(r.promptMedian)}** | ${f2(r.promptAgg)} | ${spread(t.promptPairs.map((x) => x.engine.promptTps / x.plain.promptTps))} |`,
  );
  out.push(`| gen tok/s | ${f1(aggGen(ge))} | ${f1(aggGen(gp))} | **${f2(r.genMedian)}** | ${f2(r.genAgg)} | ${spread(t.genPairs.map((x) => x.engine.genTps / x.plain.genTps))} |`);
  out.push(
    `| whole-call wall time, all calls (ratio = plain ÷ engine) | ${s1(all.reduce((s, x) => s + x.engine.wallMs, 0))} | ${s1(all.reduce((s, x) => s + x.plain.wallMs, 0))} | **${f2(r.wallMedian)}** | ${f2(r.wall)} | ${spread(all.map((x) => x.plain.wallMs / x.engine.wallMs))} |`,
  );
  out.push('');
  const same = all.every((x) => x.sameText);
  const equalTokens = all.every((x) => x.engine.evaluatedTokens === x.plain.evaluatedTokens && x.engine.completionTokens === x.plain.completionTokens);
  out.push(
    `Equal work: ${equalTokens ? 'in every pair both sides evaluated the same number of prompt tokens and generated the same number of tokens' : '**token counts differ between the sides in some pair (see the tables)**'}; ` +
      `generated text ${same ? 'identical on both sides (greedy)' : '**differs** between the sides in some pair'}. ` +
      `Load (absolute): engine ${s1(t.engineLoadMs)}, plain ${s1(t.plainLoadMs)} (model + context).`,
  );
  out.push('');
  const meets = r.promptMedian >= 0.95 && r.genMedian >= 0.95;
  const noisy = t.genPairs.some((x) => x.engine.genTps / x.plain.genTps > 2 || x.engine.genTps / x.plain.genTps < 0.5);
  out.push(
    `**What this means:** ${
      meets
        ? `the engine adds no measurable cost over the library: prompt ${f2(r.promptMedian)}×, generation ${f2(r.genMedian)}× the plain speed (target ≥ 0.95).`
        : `the engine measured below the 0.95 target (prompt ${f2(r.promptMedian)}×, generation ${f2(r.genMedian)}×).`
    } Both sides run the same node-llama-cpp calls on the same native code; the engine's own work per call (queueing, rendering and tokenising the prompt once more to count prompt and cached tokens, a new chat session) happens before evaluation starts and shows only in the whole-call ratio (the plain side's token counting for this report is outside its timed part).${
      r.wallMedian > 1.05
        ? ` Whole calls were faster through the engine (median ${f2(r.wallMedian)}×, most visible on the short generation calls): a \`LlamaChatSession\` created with the default \`chatWrapper: 'auto'\` resolves the wrapper from the model's template every time${t.chatWrapperResolveMs !== undefined ? ` (${f0(t.chatWrapperResolveMs)} ms here, measured alone)` : ''}, which the engine does once at load and passes in.`
        : ''
    }${
      noisy
        ? ' Single pairs range widely (see the per-pair column): other processes took the cores for seconds at a time, which slows whichever call is running by up to 10× with 2 llama.cpp threads on 2 cores (section 5); the median over many short alternating pairs is the figure to trust, and it is still only good to a few percent on this machine.'
        : ''
    }`,
  );
  out.push('');

  // Grammar.
  const free = t.grammarPairs.map((g) => g.free);
  const gram = t.grammarPairs.map((g) => g.grammar);
  const gMedian = median(t.grammarPairs.map((g) => g.grammar.genTps / g.free.genTps));
  out.push("#### The JSON grammar's cost");
  out.push('');
  out.push(
    `Engine only, the same prompt with and without \`jsonSchema: DIAGNOSIS_SCHEMA\`, ${settings.grammarMaxTokens} tokens per call, alternating which goes first; ` +
      'the prompt is reused from the cache, so only generation is compared.',
  );
  out.push('');
  out.push('| pair | gen tok/s without grammar | with grammar | with ÷ without |');
  out.push('|---|---:|---:|---:|');
  t.grammarPairs.forEach((g, i) => {
    out.push(`| ${i} | ${f1(g.free.genTps)} | ${f1(g.grammar.genTps)} | ${f2(g.grammar.genTps / g.free.genTps)} |`);
  });
  out.push('');
  out.push(
    `Generation with the grammar ÷ without: **${f2(gMedian)} (median of pairs)**; aggregate ${f1(aggGen(gram))} vs ${f1(aggGen(free))} tok/s (${f2(aggGen(gram) / aggGen(free))}). ` +
      `Building the grammar from the schema: ${f0(t.grammarCreateMs)} ms, once (the engine caches it per schema). First tokens of a constrained answer: \`${t.grammarSample.slice(0, 120).replace(/`/g, "'").replace(/\|/g, '¦')}\`.`,
  );
  out.push('');
  out.push(
    `**What this means:** ${
      gMedian >= 0.9
        ? 'the grammar costs little per generated token on this model.'
        : `constrained sampling cost about ${pct(1 - gMedian)} of the generation speed in this run (the grammar is checked against candidate tokens at every step); with ${t.grammarPairs.length} pairs on a shared machine, differences of around 10% are close to the noise.`
    } The cost that matters more is length: the grammar makes the answer valid JSON, not short (section 2).`,
  );
  out.push('');
  return r;
}

function renderThreads(t: Throughput, settings: Settings, out: string[]): { genRatio: number; promptRatio: number } | null {
  const rounds = t.threadRounds;
  if (!rounds || rounds.length === 0) return null;
  const first = rounds[0] as { one: Call; two: Call };
  const genRatio = median(rounds.map((r) => r.one.genTps / r.two.genTps));
  const promptRatio = first.one.promptTps / first.two.promptTps;
  out.push('### 5. One thread vs two, with the machine shared');
  out.push('');
  out.push(
    'A second engine with `threads: 1` next to the 2-thread one, the same calls interleaved (2 then 1, 1 then 2, …): round 0 evaluates ' +
      `the ingest-worker finding's user part behind a short system prompt (${f0(first.one.evaluatedTokens)} tokens), every round generates ${settings.threadMaxTokens} tokens.`,
  );
  out.push('');
  out.push('| round | threads | prompt tokens evaluated | prompt tok/s | gen tok/s | CPU time of the call |');
  out.push('|---|---:|---:|---:|---:|---:|');
  rounds.forEach((r, i) => {
    for (const [n, c] of order2(i, [2, r.two], [1, r.one]) as [number, Call][]) {
      out.push(`| ${i} | ${n} | ${f0(c.evaluatedTokens)} | ${c.evaluatedTokens > 1 ? f1(c.promptTps) : '–'} | ${f1(c.genTps)} | ${f0(c.cpuMs)} ms |`);
    }
  });
  out.push('');
  out.push(
    `Generation, 1 thread ÷ 2 threads: **${f2(genRatio)}** (median of rounds; aggregate ${f1(aggGen(rounds.map((r) => r.one)))} vs ${f1(aggGen(rounds.map((r) => r.two)))} tok/s); ` +
      `prompt evaluation in round 0: 1 thread ${f1(first.one.promptTps)} tok/s, 2 threads ${f1(first.two.promptTps)} tok/s (${f2(promptRatio)}).`,
  );
  out.push('');
  out.push(
    `**What this means:** ${
      genRatio > 1
        ? 'with other processes competing for the 2 cores, a second llama.cpp thread made generation slower, not faster: the threads meet at a barrier after every operation and spin there, so when the kernel runs another process on one core the other thread waits out that time slice.'
        : `two threads were ${f2(1 / genRatio)}× as fast as one in this run: the cores were free enough for both threads to run together most of the time.`
    } The engine takes its thread count from the cgroup quota (all cores here); on a node whose cores are busy with workloads, fewer threads than the quota can be faster, which the quota alone does not show. Which way it goes depends on the load of the moment (this section is the least repeatable of the report).`,
  );
  out.push('');
  return { genRatio, promptRatio };
}

function attemptCells(a: Attempt): string {
  if (a.error) return `| – | – | – | – | – | – | – | error: ${a.error.replace(/\|/g, '¦')} | – |`;
  const evaluated = a.tokens.prompt - a.tokens.cachedPrompt;
  const pTps = evaluated / (a.timings.promptMs / 1000);
  const gTps = a.tokens.completion > 1 ? a.tokens.completion / (a.timings.generationMs / 1000) : 0;
  return (
    `| ${f0(a.tokens.prompt)} | ${f0(a.tokens.cachedPrompt)} | ${f0(evaluated)} | ${f0(a.timings.promptMs)} ms (${f1(pTps)} tok/s) | ${a.tokens.forced} | ${a.tokens.completion} | ` +
    `${f0(a.timings.generationMs)} ms (${f1(gTps)} tok/s) | ${a.cutFields.join(', ') || 'none'} | ${a.timings.loadMs ? `${f0(a.timings.loadMs)} ms` : '–'} |`
  );
}

function scenarioOutcome(d: DiagnosisRun): string {
  if (!d.stored) return 'nothing stored';
  if (!d.fallback) return `model answer (${d.diagnoser})`;
  return `rule hint, fallback \`${d.fallback}\`${d.fallbackDetail ? `: ${d.fallbackDetail.replace(/\|/g, '¦')}` : ''}`;
}

/** How a pipeline setup is named: by its context, and as a second run when it repeats the defaults. */
function label(sc: Scenario, base: Scenario): string {
  if (sc === base) return 'the defaults';
  return sc.config.contextSize === base.config.contextSize ? 'the defaults, second run' : `a ${sc.config.contextSize}-token context`;
}

function renderPipeline(pl: Pipeline, out: string[]): void {
  const base = pl.scenarios[0] as Scenario;
  const caps = Object.entries(pl.answerTokens)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  out.push("### 2. CrashLoop finding → stored diagnosis (the daemon's pieces)");
  out.push('');
  out.push(
    `\`loadConfig()\` defaults with only the model and a temp data dir set (context ${base.config.contextSize}, prompt budget \`llm.promptTokens\` ${base.config.promptTokens}, timeout ${base.config.timeoutSeconds} s, ` +
      `gpu \`${base.config.gpu}\` → backend ${base.engine.backend}, threads ${base.config.threads === 0 ? 'auto' : base.config.threads} → ${base.engine.threads} (${base.engine.threadBasis})), ` +
      "`Store.open` in a temp dir, `buildDiagnoser()` (LlmEngine + LlmDiagnoser + rule hint) and `DiagnosisQueue` with the store's diagnosis cache, as `daemon/main.ts` wires them. " +
      'Timed from `store.commit()` of the finding and `queue.enqueue()` to `queue.drain()` with the diagnosis in SQLite. ' +
      'Each finding has 15 evidence lines (2 pod-status lines, the back-off event, 12 log lines before the exit). ' +
      `The answer is written field by field (\`LlmEngine.fill\`): the engine writes the JSON keys and brackets (evaluated in batches, at prompt speed), the model each value under its own grammar and token cap (${caps}). ` +
      (pl.scenarios.length < 2
        ? ''
        : pl.scenarios[1]?.config.contextSize === base.config.contextSize
          ? 'Run twice with the same configuration, a new store and engine each time (the model loaded again), to show how much the times move between runs.'
          : `Run twice: with every default, and with \`NODESAGE_LLM_CONTEXT_SIZE=${pl.scenarios[1]?.config.contextSize ?? '?'}\` (the only change).`),
  );
  out.push('');
  out.push('| setup | diagnosis | time to stored diagnosis | model load (inside) | engine calls | fields at their token cap | stored |');
  out.push('|---|---|---:|---:|---:|---:|---|');
  for (const sc of pl.scenarios) {
    for (const d of [sc.cold, sc.warm]) {
      out.push(
        `| ${label(sc, base)} | ${d.label} | **${s1(d.wallMs)}** | ${d === sc.cold && sc.engine.loadMs ? s1(sc.engine.loadMs) : '–'} | ${d.attempts.length} | ${d.cutFields} | ${scenarioOutcome(d)} |`,
      );
    }
    out.push(`| ${label(sc, base)} | the checkout finding again, unchanged | ${f0(sc.againMs)} ms | – | – | – | ${sc.queue.cacheHits ? 'diagnosis-cache hit' : 'no cache hit (fallbacks are not cached): diagnosed again'} |`);
  }
  out.push('');
  out.push('Each engine call of those diagnoses (generation time includes the batches of engine-written tokens between fields):');
  out.push('');
  out.push('| setup | diagnosis | prompt tokens | reused from cache | evaluated | prompt time | written by the engine | generated by the model | generation time | fields at cap | load |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const sc of pl.scenarios) {
    for (const d of [sc.cold, sc.warm]) {
      for (const a of d.attempts) out.push(`| ${label(sc, base)} | ${d === sc.cold ? 'cold' : 'warm'} ${attemptCells(a)}`);
    }
  }
  out.push('');
  out.push(`Prompt size with the model's tokenizer (the user part's budget is \`llm.promptTokens\`, ${base.config.promptTokens}):`);
  out.push('');
  out.push('| part | tokens | chars | chars/token | evidence items kept (of the groups of 15 lines) | over budget? | all evidence, no budget |');
  out.push('|---|---:|---:|---:|---:|---|---:|');
  for (const p of pl.prompts) {
    out.push(
      `| user part, ${p.finding} | **${f0(p.userTokens)}** | ${f0(p.userChars)} | ${f2(p.charsPerToken)} | ${p.evidenceItems} (of ${p.allEvidenceItems} groups) | ${p.overBudget ? 'yes' : 'no'} | ${f0(p.allEvidenceUserTokens)} tokens |`,
    );
  }
  out.push(`| system prompt (fixed, cached) | ${f0(pl.systemTokens)} | ${f0(pl.systemChars)} | ${f2(pl.systemChars / pl.systemTokens)} | | | |`);
  out.push('');

  const lines: string[] = [];
  const answered = pl.scenarios.filter((sc) => !sc.warm.fallback && !sc.cold.fallback);
  for (const sc of answered) {
    lines.push(
      `${label(sc, base)[0]?.toUpperCase()}${label(sc, base).slice(1)}: cold ${s1(sc.cold.wallMs)} (model load ${sc.engine.loadMs ? s1(sc.engine.loadMs) : '?'} and the first evaluation of the ${f0(pl.systemTokens)}-token system prompt inside), ` +
        `warm ${s1(sc.warm.wallMs)} (target ≤ 10 s: ${sc.warm.wallMs <= 10_000 ? 'met' : 'not met'}).`,
    );
  }
  const failed = pl.scenarios.filter((sc) => sc.warm.fallback || sc.cold.fallback);
  for (const sc of failed) lines.push(`${label(sc, base)}: the rule hint was stored instead (${[sc.cold, sc.warm].map((d) => d.fallback ?? 'model').join(' / ')}).`);
  const first = answered[0];
  const wa = first?.warm.attempts.find((a) => !a.error && a.tokens.completion > 1);
  if (first && wa) {
    const evaluated = wa.tokens.prompt - wa.tokens.cachedPrompt;
    lines.push(
      `Of the warm ${s1(first.warm.wallMs)}, ${s1(wa.timings.promptMs)} went to the ${f0(evaluated)} evaluated prompt tokens and ${s1(wa.timings.generationMs)} to the answer: ${wa.tokens.completion} generated tokens and ${wa.tokens.forced} written by the engine. ` +
        (wa.cutFields.length > 0
          ? `Random weights never end a sentence, so ${wa.cutFields.join(', ')} ran to their caps: this is the longest answer the diagnoser allows, and a trained model that ends its sentences sooner takes less. `
          : '') +
        `The remaining ${f0(Math.max(0, first.warm.wallMs - wa.timings.promptMs - wa.timings.generationMs))} ms are the queue, the store and tokenizing the prompt while fitting it to its budget.`,
    );
  }
  if (pl.scenarios.length > 1 && pl.scenarios.every((sc) => sc.config.contextSize === base.config.contextSize) && answered.length > 1) {
    const a = answered[0] as Scenario;
    const b = answered[1] as Scenario;
    lines.push(`The second run of the same setup measured cold ${s1(b.cold.wallMs)} and warm ${s1(b.warm.wallMs)} against ${s1(a.cold.wallMs)} and ${s1(a.warm.wallMs)}: that spread is the machine's, the work was the same token for token.`);
  }
  lines.push(
    `Token counts are a real model's: the benchmark model carries Qwen2.5's tokenizer, ${f2(pl.prompts[0]?.charsPerToken ?? 0)} characters per token on the user part (log lines with ids and paths cost more tokens than English) and ${f2(pl.systemChars / pl.systemTokens)} on the system prompt.`,
  );
  out.push(`**What this means:** ${lines.join(' ')}`);
  out.push('');
}

function renderPrefix(t: Throughput, pl: Pipeline | null, out: string[]): void {
  const u = t.prefix.uncached;
  const c = t.prefix.cached;
  const pu = t.plainPrefix.uncached;
  const pc = t.plainPrefix.cached;
  out.push('### 3. Prefix-cache reuse');
  out.push('');
  out.push(
    "The same prompt text (system prompt + the checkout finding's user part) evaluated twice in section 1: in prompt pair 0 with an empty cache, " +
      "in prompt pair 2 right after the other finding's prompt, so the system prompt (and the shared start of the user part) is in the KV cache. " +
      'Reused tokens are what the engine reports (`tokens.cachedPrompt`: the common prefix with what the sequence holds, minus the last prompt token, which is always evaluated again); the plain side\'s are counted the same way.',
  );
  out.push('');
  out.push('| side | prompt tokens | cache empty: evaluated, time | cache warm: reused | evaluated | time | saved |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  out.push(
    `| engine | ${f0(c.promptTokens)} | ${f0(u.evaluatedTokens)}, ${f0(u.promptMs)} ms | **${f0(c.cachedTokens)}** | ${f0(c.evaluatedTokens)} | ${f0(c.promptMs)} ms | **${f0(u.promptMs - c.promptMs)} ms (${pct(1 - c.promptMs / u.promptMs)})** |`,
  );
  out.push(
    `| plain | ${f0(pc.promptTokens)} | ${f0(pu.evaluatedTokens)}, ${f0(pu.promptMs)} ms | ${f0(pc.cachedTokens)} | ${f0(pc.evaluatedTokens)} | ${f0(pc.promptMs)} ms | ${f0(pu.promptMs - pc.promptMs)} ms (${pct(1 - pc.promptMs / pu.promptMs)}) |`,
  );
  out.push('');
  const sc = pl?.scenarios.find((x) => x.warm.attempts.some((a) => !a.error));
  if (sc) {
    const w = sc.warm.attempts.filter((a) => !a.error);
    out.push(
      `In the pipeline's warm diagnosis (section 2, context ${sc.config.contextSize}): ${w.map((a, i) => `call ${i + 1} reused ${f0(a.tokens.cachedPrompt)} of ${f0(a.tokens.prompt)} prompt tokens`).join(', ')}.`,
    );
    out.push('');
  }
  const steady = aggPrompt(t.promptPairs.filter((x) => x.cachedSystem).flatMap((x) => [x.engine, x.plain]));
  out.push(
    `**What this means:** keeping one sequence alive makes every diagnosis after the first skip the ${f0(t.systemTokens)}-token system prompt: ` +
      `${pct(c.cachedTokens / c.promptTokens)} of the prompt's tokens. In time, ${f0(u.promptMs - c.promptMs)} ms (engine) and ${f0(pu.promptMs - pc.promptMs)} ms (plain) were saved in these two single measurements (absolute, machine shared); ` +
      `at the steady-state prompt rate of this run (${f1(steady)} tok/s, both sides) the ${f0(c.cachedTokens)} reused tokens are worth ${s1((c.cachedTokens / steady) * 1000)} per diagnosis. ` +
      "The evaluated part is then the user part alone (finding, rule hint, evidence), which the prompt budget (`llm.promptTokens`) bounds. The reuse is the library's own (the plain side reuses the same tokens); the engine's part is keeping the system prompt byte-identical and the sequence alive between calls.",
  );
  out.push('');
}

function renderMemory(mem: Memory[], out: string[]): void {
  out.push('### 4. Memory (RSS of a fresh process per variant)');
  out.push('');
  out.push(
    'Each variant in its own child process: RSS from `/proc/self/status` after importing node-llama-cpp and the daemon modules ("before load"), ' +
      'after the model and a 2048-token context are loaded, and the peak (VmHWM, reset through `/proc/self/clear_refs` just before the call) while evaluating ' +
      'a ~550-token prompt (over one 512-token batch) and generating 16 tokens. RssAnon is private memory; RssFile is pages of mapped files (the model file when mmap is on).',
  );
  out.push('');
  out.push("| variant | useMmap | before load | after load (anon + file) | peak during load | peak during generation | after unload | load time | engine's estimate |");
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of mem) {
    const name = m.variant === 'engine' ? 'LlmEngine (daemon)' : 'plain node-llama-cpp';
    out.push(
      `| ${name} | ${m.useMmap ? 'true' : 'false'} | ${mb(m.beforeLoad.VmRSS)} | **${mb(m.afterLoad.VmRSS)}** (${mb(m.afterLoad.RssAnon)} + ${mb(m.afterLoad.RssFile)}) | ${mb(m.peakDuringLoad)} | **${mb(m.peakDuringGeneration)}**${m.peakResetWorked ? '' : ' (peak not reset: whole-process peak)'} | ${mb(m.afterUnload.VmRSS)} | ${s1(m.loadMs)} | ${m.estimatedBytes ? mb(m.estimatedBytes) : '–'} |`,
    );
  }
  out.push('');
  const eng = mem.find((m) => m.variant === 'engine');
  const on = mem.find((m) => m.variant === 'plain-mmap');
  const off = mem.find((m) => m.variant === 'plain');
  if (eng && on && off) {
    const cost = (x: Memory) => x.peakDuringGeneration - x.beforeLoad.VmRSS;
    const doubled = on.afterLoad.VmRSS > 1.3 * off.afterLoad.VmRSS;
    out.push(
      `**What this means:** the model costs the daemon ${mb(cost(eng))} at its peak (${mb(eng.peakDuringGeneration)} process RSS) with mmap off; with mmap on ${mb(cost(on))} (${f2(cost(on) / cost(eng))}×). ${
        doubled
          ? `With mmap the file's pages stay resident (${mb(on.afterLoad.RssFile)} file-backed) next to llama.cpp's repacked copy in private memory (${mb(on.afterLoad.RssAnon)}): the model is paid twice, which is why the engine turns mmap off on CPU.`
          : `With mmap the weights are used in place from the mapped file (${mb(on.afterLoad.RssFile)} file-backed, private memory only ${mb(on.afterLoad.RssAnon)}): llama.cpp did not repack this Q8_0 model on this CPU, so nothing is paid twice and the total is the same. ` +
            "The doubling the engine's comment describes comes from weight types that llama.cpp's CPU backend repacks at load (for example Q4_0 on AVX2 CPUs), which this generator cannot write; " +
            'for Q8_0 on x86 mmap off costs nothing extra, and what differs is the kind of memory: private with mmap off, reclaimable page cache with mmap on (both count in the container\'s memory cgroup).'
      } The engine's memory estimate (${mb(eng.estimatedBytes)}) is ${eng.estimatedBytes && eng.estimatedBytes >= cost(eng) ? 'above' : 'below'} the measured cost.`,
    );
    out.push('');
  }
}

/** Renders the LLM section. Returns the markdown and the headline rows for the summary table. */
export function renderLlm(r: LlmResults): { markdown: string; summary: string[] } {
  const out: string[] = [];
  const summary: string[] = [];
  const sh = r.model.shape as Record<string, unknown>;
  out.push(
    `Model: \`scripts/make-test-model.ts --preset realistic\` — the shape of Qwen2.5-0.5B-Instruct: ${sh.architecture} architecture, ${sh.blocks} blocks, embedding ${sh.embedding}, feed-forward ${sh.feedForward}, ` +
      `${sh.heads} heads / ${sh.headsKv} KV heads, vocabulary ${f0(Number(sh.vocab))} with ${sh.tokenizer === 'qwen2.5' ? "Qwen2.5's trained BPE tokenizer (so token counts are a real model's)" : 'a synthetic tokenizer'}, ${String(sh.weightType).toUpperCase()}, separate output matrix, Qwen chat template; ` +
      `**${f1(r.model.parameters / 1e6)}M parameters, ${f1(r.model.bytes / 1e6)} MB**; random weights (seed 1). ` +
      `Cached in \`node_modules/.cache/nodesage-bench-models/\` (${r.model.generatedMs === null ? 'taken from the cache in this run' : `generated in this run in ${s1(r.model.generatedMs)}`}). ` +
      'Random weights give real speed and memory but meaningless text: the quality of diagnoses is not measured here, and answer lengths are whatever chance and the grammar give.',
  );
  out.push('');
  const t = isError(r.throughput) ? null : (r.throughput as unknown as Throughput);
  const pl = isError(r.pipeline) ? null : (r.pipeline as unknown as Pipeline);
  if (t?.llamaCpp) {
    out.push(`llama.cpp ${t.llamaCpp.release ?? '?'} (${t.llamaCpp.buildType ?? '?'} binary shipped with node-llama-cpp).`);
    out.push('');
  }
  if (t) {
    const q = renderThroughput(t, r.settings, out);
    const pe = t.promptPairs.map((p) => p.engine);
    const pp = t.promptPairs.map((x) => x.plain);
    const ge = t.genPairs.map((p) => p.engine);
    const gp = t.genPairs.map((x) => x.plain);
    summary.push(
      `| Engine ÷ plain node-llama-cpp, prompt tok/s (2 threads) | ${f1(aggPrompt(pe))} vs ${f1(aggPrompt(pp))} tok/s | **${f2(q.promptMedian)}** (aggregate ${f2(q.promptAgg)}) | ≥ 0.95 | ${q.promptMedian >= 0.95 ? 'met' : 'not met'} |`,
    );
    summary.push(
      `| Engine ÷ plain node-llama-cpp, gen tok/s (2 threads) | ${f1(aggGen(ge))} vs ${f1(aggGen(gp))} tok/s | **${f2(q.genMedian)}** (aggregate ${f2(q.genAgg)}) | ≥ 0.95 | ${q.genMedian >= 0.95 ? 'met' : 'not met'} |`,
    );
    summary.push(`| Engine ÷ plain, whole-call speed (plain wall time ÷ engine wall time) | | ${f2(q.wallMedian)} (aggregate ${f2(q.wall)}) | | |`);
    const gm = median(t.grammarPairs.map((g) => g.grammar.genTps / g.free.genTps));
    summary.push(`| JSON grammar on ÷ off, gen tok/s (engine) | ${f1(aggGen(t.grammarPairs.map((g) => g.grammar)))} vs ${f1(aggGen(t.grammarPairs.map((g) => g.free)))} tok/s | ${f2(gm)} | | |`);
  } else {
    out.push(`### 1. Throughput\n\nFailed: ${(r.throughput as { error: string }).error}\n`);
  }
  if (pl) {
    renderPipeline(pl, out);
    const maxUser = Math.max(...pl.prompts.map((x) => x.userTokens));
    summary.push(
      `| User part of the diagnosis prompt (system prompt ${f0(pl.systemTokens)}, cached; budget \`llm.promptTokens\` ${pl.scenarios[0]?.config.promptTokens ?? '?'}) | ${pl.prompts.map((x) => `${f0(x.userTokens)} tokens, ${x.evidenceItems} evidence items`).join('; ')} | | ≤ 600 | ${maxUser <= 600 ? 'met' : 'not met'} |`,
    );
    const base = pl.scenarios[0] as Scenario;
    for (const sc of pl.scenarios) {
      summary.push(
        `| CrashLoop → stored diagnosis, ${label(sc, base)} (context ${sc.config.contextSize}): cold (load ${sc.engine.loadMs ? s1(sc.engine.loadMs) : '?'} inside) / warm | ${s1(sc.cold.wallMs)} / **${s1(sc.warm.wallMs)}**; warm stored: ${sc.warm.fallback ? `rule hint (fallback \`${sc.warm.fallback}\`)` : "the model's answer"}, ${sc.warm.cutFields} field(s) at their token cap | | warm ≤ 10 s | ${sc.warm.wallMs <= 10_000 && !sc.warm.fallback ? 'met' : 'not met'} |`,
      );
    }
  } else {
    out.push(`### 2. CrashLoop finding → stored diagnosis\n\nFailed: ${(r.pipeline as { error: string }).error}\n`);
  }
  if (t) {
    renderPrefix(t, pl, out);
    const u = t.prefix.uncached;
    const c = t.prefix.cached;
    summary.push(`| Prefix cache on the next diagnosis | ${f0(c.cachedTokens)} of ${f0(c.promptTokens)} prompt tokens reused, ${f0(u.promptMs - c.promptMs)} ms saved | ${pct(1 - c.promptMs / u.promptMs)} of prompt time | | |`);
  }
  const mem = r.memory.filter((m) => !isError(m)) as unknown as Memory[];
  if (mem.length > 0) {
    renderMemory(mem, out);
    const eng = mem.find((m) => m.variant === 'engine');
    const on = mem.find((m) => m.variant === 'plain-mmap');
    if (eng) summary.push(`| RSS before load → after load → peak in generation (engine, mmap off) | ${mb(eng.beforeLoad.VmRSS)} → ${mb(eng.afterLoad.VmRSS)} → ${mb(eng.peakDuringGeneration)} | | | |`);
    if (on) summary.push(`| Same with mmap on (plain node-llama-cpp, own process) | ${mb(on.beforeLoad.VmRSS)} → ${mb(on.afterLoad.VmRSS)} → ${mb(on.peakDuringGeneration)} (${mb(on.afterLoad.RssFile)} of it file-backed) | | | |`);
  }
  for (const m of r.memory) if (isError(m)) out.push(`Memory child failed: ${m.error}\n`);
  if (t) {
    const th = renderThreads(t, r.settings, out);
    if (th) summary.push(`| Generation, 1 thread ÷ 2 threads (machine shared) | | ${f2(th.genRatio)} | | |`);
  }
  out.push(
    `Time of each child process (absolute): ${Object.entries(r.childMs)
      .map(([k, v]) => `${k} ${s1(v)}`)
      .join(', ')}. 1-minute load average when each started: ${r.load.map((l) => `${l.at} ${f2(l.load1)}`).join(', ')}.`,
  );
  out.push('');
  return { markdown: out.join('\n'), summary };
}
