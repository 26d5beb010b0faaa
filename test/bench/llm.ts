/**
 * LLM benchmarks on the generated `realistic` model (~0.45B parameters, Q8_0),
 * each in its own child process so memory and native state are clean:
 *
 * - throughput: prompt and generation tokens/s of the daemon's `LlmEngine`
 *   vs plain node-llama-cpp on the same model with the same settings, calls
 *   interleaved (ABBA); the JSON grammar's cost; prefix-cache reuse
 *   (cached vs uncached prompt evaluation of the same text).
 * - pipeline: a CrashLoop finding through Store + DiagnosisQueue +
 *   LlmDiagnoser + LlmEngine wired as daemon/main.ts does, cold then warm.
 * - memory (x3): RSS before load, after load and peak during generation, for
 *   the engine (useMmap false on CPU), plain node-llama-cpp with useMmap
 *   false and plain node-llama-cpp with useMmap true.
 *
 *   npm run build && node test/bench/llm.ts            all of them, JSON on stdout
 *   node test/bench/llm.ts --child throughput --model FILE   one of them
 *
 * Used by test/bench/run.ts (`npm run bench`), which writes RESULTS.md.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ensureBenchModel } from './bench-model.ts';
import { type BenchFinding, checkoutCrashLoop, ingestCrashLoop } from './llm-findings.ts';

const HERE = fileURLToPath(import.meta.url);
const DIST = new URL('../../dist/daemon/', import.meta.url);

/** Settings shared by every benchmark: the daemon's defaults on a 2-core CPU node. */
export const SETTINGS = Object.freeze({
  /** llm.contextSize default. */
  contextSize: 2048,
  /** The engine's default prompt batch. */
  batchSize: 512,
  /** Threads for the engine-vs-plain comparison (the machine has 2 cores). */
  threads: 2,
  /** Generated tokens per call in the prompt comparison (prompt time is what counts there). */
  promptMaxTokens: 4,
  /**
   * Interleaved pairs (engine, plain) in the generation comparison, and tokens
   * per call: at least 128 generated tokens per call, so a tokens/s figure
   * rests on enough tokens to mean something (a handful mostly measures the
   * first token's latency).
   */
  genPairs: 6,
  genMaxTokens: 128,
  /** Interleaved pairs (no grammar, grammar) for the grammar's cost, and tokens per call. */
  grammarPairs: 4,
  grammarMaxTokens: 16,
  /** Rounds of 1 thread vs 2 threads generation (interleaved). */
  threadRounds: 3,
  /** Generated tokens per call in the 1-vs-2-threads comparison. */
  threadMaxTokens: 24,
  /** Generated tokens in the memory children. */
  memoryMaxTokens: 16,
  /** node-llama-cpp's repeat penalty as the engine sets it. */
  repeatPenalty: 1.1,
});

// ---------------------------------------------------------------------------
// Shared helpers (children).

type Json = Record<string, unknown>;

function say(msg: string): void {
  process.stderr.write(`[llm-bench] ${msg}\n`);
}

function logger() {
  return pino({ level: 'warn', base: { bench: 'llm' } }, pino.destination(2));
}

async function dist<T>(path: string): Promise<T> {
  return (await import(new URL(path, DIST).href)) as T;
}

/** /proc/self/status sizes in bytes (VmRSS, VmHWM, RssAnon, RssFile, RssShmem). */
export function procStatus(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]) * 1024;
  }
  return out;
}

/** Resets VmHWM to the current RSS (Linux: `echo 5 > /proc/self/clear_refs`); false when not allowed. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function emit(result: Json): void {
  process.stdout.write(`@@RESULT ${JSON.stringify(result)}\n`);
}

const ms = (t0: number) => performance.now() - t0;
const cpuSince = (c0: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
};

/** A distinct, same-length opening per call so nothing of the previous call's prompt is reused. */
function nonce(i: number): string {
  return `Call ${String(i).padStart(3, '0')}. `;
}

// Engine result types, structurally (the bench imports dist at run time).
interface EngineResult {
  text: string;
  stopReason: string;
  tokens: { prompt: number; completion: number; cachedPrompt: number };
  latencyMs: number;
  timings: { queuedMs: number; loadMs: number; promptMs: number; generationMs: number };
}

/** One measured call, engine or plain, in one shape. */
export interface CallStats {
  who: 'engine' | 'plain';
  grammar: boolean;
  promptTokens: number;
  /** Prompt tokens reused from the KV cache (not evaluated). */
  cachedTokens: number;
  /** Prompt tokens evaluated. */
  evaluatedTokens: number;
  completionTokens: number;
  stopReason: string;
  /** Start of evaluation to the first generated token. */
  promptMs: number;
  /** First to last generated token. */
  generationMs: number;
  /** Wall time of the whole call as the caller sees it. */
  wallMs: number;
  /** CPU time of the whole process (all threads) during the call. */
  cpuMs: number;
  promptTps: number;
  genTps: number;
  text: string;
}

function rates(s: Omit<CallStats, 'promptTps' | 'genTps'>): CallStats {
  return {
    ...s,
    promptTps: s.evaluatedTokens / (s.promptMs / 1000),
    // The first token's time is in promptMs; the rest are generation.
    genTps: s.completionTokens > 1 ? (s.completionTokens - 1) / (s.generationMs / 1000) : 0,
  };
}

// ---------------------------------------------------------------------------
// Child: throughput, grammar cost, prefix-cache reuse.

async function childThroughput(modelPath: string): Promise<Json> {
  const { LlmEngine } = await dist<typeof import('../../daemon/diagnoser/engine.ts')>('diagnoser/engine.js');
  const { buildPrompt, SYSTEM_PROMPT, DIAGNOSIS_SCHEMA } = await dist<typeof import('../../daemon/diagnoser/prompt.ts')>('diagnoser/prompt.js');
  const { RuleHintDiagnoser } = await dist<typeof import('../../daemon/diagnoser/rule-hint.ts')>('diagnoser/rule-hint.js');
  const nlc = await import('node-llama-cpp');

  const engine = new LlmEngine({
    modelPath,
    memoryBudgetBytes: 4 * 1024 ** 3,
    contextSize: SETTINGS.contextSize,
    batchSize: SETTINGS.batchSize,
    threads: SETTINGS.threads,
    gpu: false,
    idleUnloadMs: 0,
    logger: logger(),
  });
  let t0 = performance.now();
  await engine.load();
  const engineLoadMs = ms(t0);
  say(`engine loaded in ${engineLoadMs.toFixed(0)} ms (${JSON.stringify({ threads: engine.status().threads, basis: engine.status().threadBasis })})`);

  t0 = performance.now();
  const llama = await nlc.getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: nlc.LlamaLogLevel.warn,
  });
  const model = await llama.loadModel({ modelPath, useMmap: false });
  const context = await model.createContext({ contextSize: SETTINGS.contextSize, batchSize: SETTINGS.batchSize, threads: SETTINGS.threads, sequences: 1 });
  const sequence = context.getSequence();
  // What LlamaChatSession resolves by default ("auto"), for counting prompt tokens.
  const chatWrapper = nlc.resolveChatWrapper(model);
  const plainLoadMs = ms(t0);
  say(`plain node-llama-cpp loaded in ${plainLoadMs.toFixed(0)} ms (context threads ${context.currentThreads})`);

  t0 = performance.now();
  const grammar = await llama.createGrammarForJsonSchema(DIAGNOSIS_SCHEMA as never);
  const grammarCreateMs = ms(t0);
  // What a LlamaChatSession with the default chatWrapper "auto" pays when it is
  // created: resolving the wrapper from the model's template (the engine does it once at load).
  const resolveTimes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r0 = performance.now();
    nlc.resolveChatWrapper(model);
    resolveTimes.push(ms(r0));
  }
  const chatWrapperResolveMs = [...resolveTimes].sort((a, b) => a - b)[1] as number;

  const ruleHint = new RuleHintDiagnoser({ nodeName: 'bench-node' });
  const count = (t: string) => engine.countTokens(t);
  const fa = checkoutCrashLoop();
  const fb = ingestCrashLoop();
  const pa = await buildPrompt(fa as never, { hint: ruleHint.hint(fa as never) }, { countTokens: count });
  const pb = await buildPrompt(fb as never, { hint: ruleHint.hint(fb as never) }, { countTokens: count });

  async function viaEngine(system: string, user: string, maxTokens: number, withGrammar: boolean, eng = engine): Promise<CallStats> {
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const r = (await eng.complete({
      systemPrompt: system,
      userPrompt: user,
      maxTokens,
      ...(withGrammar ? { jsonSchema: DIAGNOSIS_SCHEMA as never } : {}),
    })) as EngineResult;
    return rates({
      who: 'engine',
      grammar: withGrammar,
      promptTokens: r.tokens.prompt,
      cachedTokens: r.tokens.cachedPrompt,
      evaluatedTokens: r.tokens.prompt - r.tokens.cachedPrompt,
      completionTokens: r.tokens.completion,
      stopReason: r.stopReason,
      promptMs: r.timings.promptMs,
      generationMs: r.timings.generationMs,
      wallMs: ms(started),
      cpuMs: cpuSince(cpu0),
      text: r.text,
    });
  }

  async function viaPlain(system: string, user: string, maxTokens: number, withGrammar: boolean): Promise<CallStats> {
    // Counted before the timed part (plain use of the library does not count):
    // the same rendering the engine counts.
    const promptTokens = chatWrapper
      .generateContextState({ chatHistory: [{ type: 'system', text: system }, { type: 'user', text: user }, { type: 'model', response: [] }] })
      .contextText.tokenize(model.tokenizer);
    const cached = Math.min(sequence.compareContextTokens(promptTokens).firstDifferentIndex, promptTokens.length - 1);
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const session = new nlc.LlamaChatSession({ contextSequence: sequence, systemPrompt: system, autoDisposeSequence: false });
    let first: number | null = null;
    let n = 0;
    const evalStarted = performance.now();
    const res = await session.promptWithMeta(user, {
      maxTokens,
      temperature: 0,
      repeatPenalty: { penalty: SETTINGS.repeatPenalty, penalizeNewLine: false },
      ...(withGrammar ? { grammar } : {}),
      onToken: (tokens) => {
        first ??= performance.now();
        n += tokens.length;
      },
    });
    const ended = performance.now();
    session.dispose({ disposeSequence: false });
    const firstAt = first ?? ended;
    return rates({
      who: 'plain',
      grammar: withGrammar,
      promptTokens: promptTokens.length,
      cachedTokens: cached,
      evaluatedTokens: promptTokens.length - cached,
      completionTokens: n,
      stopReason: res.stopReason,
      promptMs: firstAt - evalStarted,
      generationMs: ended - firstAt,
      wallMs: ms(started),
      cpuMs: cpuSince(cpu0),
      text: res.responseText,
    });
  }

  type Pair = { engine: CallStats; plain: CallStats; cachedSystem: boolean };
  async function pair(i: number, user: string, maxTokens: number, cachedSystem: boolean): Promise<Pair> {
    const order: ('engine' | 'plain')[] = i % 2 === 0 ? ['engine', 'plain'] : ['plain', 'engine'];
    const got: Partial<Record<'engine' | 'plain', CallStats>> = {};
    for (const who of order) {
      got[who] = who === 'engine' ? await viaEngine(SYSTEM_PROMPT, user, maxTokens, false) : await viaPlain(SYSTEM_PROMPT, user, maxTokens, false);
    }
    const p = { engine: got.engine as CallStats, plain: got.plain as CallStats, cachedSystem };
    say(
      `pair ${i} (max ${maxTokens}): engine prompt ${p.engine.promptTps.toFixed(1)} tok/s gen ${p.engine.genTps.toFixed(1)} tok/s | ` +
        `plain prompt ${p.plain.promptTps.toFixed(1)} tok/s gen ${p.plain.genTps.toFixed(1)} tok/s ` +
        `(evaluated ${p.engine.evaluatedTokens}/${p.plain.evaluatedTokens}, generated ${p.engine.completionTokens}/${p.plain.completionTokens}, same text: ${p.engine.text === p.plain.text})`,
    );
    return p;
  }

  let call = 0;
  // Warm-up, not measured: a first evaluation of over one batch on each context
  // (first touch of the KV cache and compute buffers, thread start).
  const warmUser = pb.user.slice(0, 1200);
  await viaEngine(nonce(call++), warmUser, 4, false);
  await viaPlain(nonce(call++), warmUser, 4, false);

  // 1. Engine vs plain on the same prompt text, calls interleaved (E P, P E, ...),
  // each side on its own context; both sequences see the same prompts in the
  // same order, so both reuse the same tokens.
  // 1a. Prompt evaluation, a few tokens generated. Pair 0 is a first diagnosis:
  // nothing cached, the whole prompt is evaluated. Pairs 1-5 are the steady
  // state: the fixed system prompt is reused from the KV cache and the next
  // finding's user part is evaluated.
  const users = [pa.user, pb.user, pa.user, pb.user, pa.user, pb.user];
  const promptPairs: Pair[] = [];
  for (let i = 0; i < users.length; i++) {
    promptPairs.push(await pair(i, users[i] as string, SETTINGS.promptMaxTokens, i > 0));
  }
  // 1b. Generation: the same prompt again (all but its last token reused), then
  // a fixed number of tokens.
  const genPairs: Pair[] = [];
  // The last prompt pair's text, so nothing but its last token is evaluated again.
  const genUser = users[users.length - 1] as string;
  for (let i = 0; i < SETTINGS.genPairs; i++) genPairs.push(await pair(i, genUser, SETTINGS.genMaxTokens, true));

  // 2. The grammar's cost, through the engine: the same prompt with and without it,
  // the prompt reused from the cache (generation is what differs).
  const grammarPairs: { free: CallStats; grammar: CallStats }[] = [];
  for (let i = 0; i < SETTINGS.grammarPairs; i++) {
    const user = genUser;
    const order = i % 2 === 0 ? [false, true] : [true, false];
    const got: { free?: CallStats; grammar?: CallStats } = {};
    for (const g of order) {
      const r = await viaEngine(SYSTEM_PROMPT, user, SETTINGS.grammarMaxTokens, g);
      if (g) got.grammar = r;
      else got.free = r;
    }
    grammarPairs.push(got as { free: CallStats; grammar: CallStats });
    say(`grammar pair ${i + 1}: free gen ${got.free?.genTps.toFixed(1)} tok/s, grammar gen ${got.grammar?.genTps.toFixed(1)} tok/s`);
  }

  // 3. Prefix-cache reuse: the same prompt text (system + finding A), uncached in
  // pair 0 and with the system prompt cached in pair 2.
  const prefix = { uncached: promptPairs[0]?.engine as CallStats, cached: promptPairs[2]?.engine as CallStats };
  const plainPrefix = { uncached: promptPairs[0]?.plain as CallStats, cached: promptPairs[2]?.plain as CallStats };
  say(
    `prefix: engine ${prefix.uncached.promptMs} ms uncached vs ${prefix.cached.promptMs} ms with ${prefix.cached.cachedTokens} tokens reused; ` +
      `plain ${plainPrefix.uncached.promptMs.toFixed(0)} vs ${plainPrefix.cached.promptMs.toFixed(0)} ms`,
  );

  // 4. One thread vs two under whatever else runs on the machine: llama.cpp's
  // threads spin at a barrier after every operation, so a thread that another
  // process preempts stalls its partner. A second engine with 1 thread, rounds
  // interleaved; the first round evaluates a prompt (the other finding's user
  // part behind a short system prompt), later rounds only generate.
  const engine1 = new LlmEngine({
    modelPath,
    memoryBudgetBytes: 4 * 1024 ** 3,
    contextSize: SETTINGS.contextSize,
    batchSize: SETTINGS.batchSize,
    threads: 1,
    gpu: false,
    idleUnloadMs: 0,
    logger: logger(),
  });
  await engine1.load();
  const threadRounds: { one: CallStats; two: CallStats }[] = [];
  const shortSystem = `${nonce(call++)}You are nodesage. Answer with one JSON object.`;
  for (let i = 0; i < SETTINGS.threadRounds; i++) {
    const got: { one?: CallStats; two?: CallStats } = {};
    for (const n of i % 2 === 0 ? [2, 1] : [1, 2]) {
      const r = await viaEngine(shortSystem, pb.user, SETTINGS.threadMaxTokens, false, n === 1 ? engine1 : engine);
      if (n === 1) got.one = r;
      else got.two = r;
    }
    threadRounds.push(got as { one: CallStats; two: CallStats });
    say(
      `threads round ${i}: 1 thread prompt ${got.one?.promptTps.toFixed(1)} gen ${got.one?.genTps.toFixed(1)} tok/s | ` +
        `2 threads prompt ${got.two?.promptTps.toFixed(1)} gen ${got.two?.genTps.toFixed(1)} tok/s (load ${loadavg()[0]?.toFixed(2)})`,
    );
  }
  await engine1.dispose();

  const systemTokens = await engine.countTokens(SYSTEM_PROMPT);
  const status = engine.status();
  const plainThreads = context.currentThreads;
  await engine.dispose();
  await context.dispose();
  await model.dispose();
  return {
    threads: SETTINGS.threads,
    engineThreads: status.threads,
    plainThreads,
    backend: status.backend,
    llamaCpp: { ...llama.llamaCppRelease, buildType: llama.buildType, cpuMathCores: llama.cpuMathCores, systemInfo: llama.systemInfo },
    engineLoadMs,
    plainLoadMs,
    grammarCreateMs,
    chatWrapperResolveMs,
    systemTokens,
    systemChars: SYSTEM_PROMPT.length,
    promptPairs: promptPairs.map(pairOut),
    genPairs: genPairs.map(pairOut),
    grammarPairs: grammarPairs.map((p) => ({ free: strip(p.free), grammar: strip(p.grammar) })),
    grammarSample: grammarPairs[0]?.grammar.text.slice(0, 300) ?? '',
    threadRounds: threadRounds.map((r) => ({ one: strip(r.one), two: strip(r.two) })),
    prefix: Object.fromEntries(Object.entries(prefix).map(([k, v]) => [k, strip(v)])),
    plainPrefix: Object.fromEntries(Object.entries(plainPrefix).map(([k, v]) => [k, strip(v)])),
  };
}

function pairOut(p: { engine: CallStats; plain: CallStats; cachedSystem: boolean }): Json {
  return { engine: strip(p.engine), plain: strip(p.plain), cachedSystem: p.cachedSystem, sameText: p.engine.text === p.plain.text };
}

function strip(s: CallStats): Omit<CallStats, 'text'> {
  const { text: _text, ...rest } = s;
  return rest;
}

// ---------------------------------------------------------------------------
// Child: finding → stored diagnosis through the daemon's pieces.

interface Attempt {
  finding: string;
  /** Answer fields the model filled up to their token cap. */
  cutFields: string[];
  tokens: { prompt: number; cachedPrompt: number; forced: number; completion: number };
  timings: EngineResult['timings'];
  latencyMs: number;
  /** Set when the engine call threw (no generation). */
  error?: string;
}

/** Context size of the second pipeline run when the default context is smaller. */
export const PIPELINE_LARGE_CONTEXT = 4096;

async function childPipeline(modelPath: string): Promise<Json> {
  const { loadConfig } = await dist<typeof import('../../daemon/config.ts')>('config.js');
  const { Store } = await dist<typeof import('../../daemon/store/store.ts')>('store/store.js');
  const { buildDiagnoser } = await dist<typeof import('../../daemon/diagnoser/build.ts')>('diagnoser/build.js');
  const { DiagnosisQueue } = await dist<typeof import('../../daemon/diagnoser/queue.ts')>('diagnoser/queue.js');
  const { ANSWER_TOKENS, buildPrompt, SYSTEM_PROMPT } = await dist<typeof import('../../daemon/diagnoser/prompt.ts')>(
    'diagnoser/prompt.js',
  );
  const fa = checkoutCrashLoop();
  const fb = ingestCrashLoop();

  /** One daemon-shaped setup, a cold then a warm diagnosis, then a cache hit. */
  async function scenario(name: string, env: Record<string, string>, analysePrompts: boolean): Promise<Json> {
    const dataDir = mkdtempSync(join(tmpdir(), 'nodesage-bench-pipeline-'));
    // Warnings go to stderr and are kept: the diagnoser says there why it fell back.
    const warnings: { msg: string; detail?: string; reason?: string }[] = [];
    const log = pino(
      { level: 'warn', base: { bench: 'llm' } },
      {
        write(line: string) {
          const o = JSON.parse(line) as { msg: string; detail?: string; reason?: string };
          warnings.push({ msg: o.msg, ...(o.detail ? { detail: o.detail } : {}), ...(o.reason ? { reason: o.reason } : {}) });
          process.stderr.write(line);
        },
      },
    );
    try {
      // The daemon's configuration with every default, only the model, the data folder and `env` set.
      const config = loadConfig({
        env: { NODESAGE_NODE_NAME: 'bench-node', NODESAGE_MODEL: modelPath, NODESAGE_DATA_DIR: dataDir, NODESAGE_STANDALONE: 'true', ...env },
        cwd: dataDir,
        serviceAccountDir: join(dataDir, 'no-service-account'),
      });
      // As daemon/main.ts wires them.
      const store = Store.open({ dir: config.dataDir, logger: log, maxAgeDays: config.retention.maxAgeDays, maxSizeMB: config.retention.maxSizeMB });
      const diagnosis = buildDiagnoser({
        config,
        logger: log,
        context: (f) => ({
          causes: (f.causes ?? [])
            .map((id) => store.getFinding(id))
            .filter((c) => c !== undefined)
            .map((c) => ({ category: c.category, title: c.title })),
        }),
      });
      const queue = new DiagnosisQueue({
        diagnoser: diagnosis.diagnoser,
        logger: log,
        getFinding: (id) => store.getFinding(id),
        saveDiagnosis: (id, d) => store.setDiagnosis(id, d),
        cache: { get: (k) => store.cacheGet(k), put: (k, d) => store.cachePut(k, d) },
      });
      const engine = diagnosis.engine;
      if (!engine) throw new Error('no engine: the model was not configured');

      // Observe each generation (the diagnoser holds this same object as its backend).
      const attempts: Attempt[] = [];
      let current = '';
      const fill = engine.fill.bind(engine);
      engine.fill = async (req) => {
        try {
          const r = await fill(req);
          const cutFields = Object.entries(r.fields)
            .filter(([, f]) => f.cut)
            .map(([name]) => name);
          attempts.push({ finding: current, cutFields, tokens: r.tokens, timings: r.timings, latencyMs: r.latencyMs });
          return r;
        } catch (err) {
          const zero = { queuedMs: 0, loadMs: 0, promptMs: 0, generationMs: 0 };
          attempts.push({ finding: current, cutFields: [], tokens: { prompt: 0, cachedPrompt: 0, forced: 0, completion: 0 }, timings: zero, latencyMs: 0, error: (err as Error).message });
          throw err;
        }
      };

      async function diagnoseOne(label: string, f: BenchFinding): Promise<Json> {
        current = label;
        const before = attempts.length;
        const w0 = warnings.length;
        const t0 = performance.now();
        store.commit({ at: new Date().toISOString(), findings: [f as never], checkpoints: [], gaps: [], lineCounts: new Map() });
        const enq = queue.enqueue(f.id, f.severity);
        await queue.drain();
        const wallMs = ms(t0);
        const stored = store.getFinding(f.id)?.diagnosis as (Record<string, unknown> & { fallback?: string }) | null | undefined;
        const mine = attempts.slice(before);
        const fellBack = warnings.slice(w0).find((w) => w.msg === 'falling back to the rule hint');
        say(
          `${name} ${label}: stored in ${(wallMs / 1000).toFixed(1)} s, ${mine.length} call(s): ${mine.map((a) => (a.error ? `error (${a.error})` : `${a.tokens.prompt - a.tokens.cachedPrompt} prompt + ${a.tokens.forced} forced + ${a.tokens.completion} generated tok, at cap: ${a.cutFields.join(' ') || 'none'}`)).join(', ')}`,
        );
        return {
          label,
          enqueue: enq,
          wallMs,
          stored: stored != null,
          diagnoser: stored?.diagnoser ?? null,
          fallback: stored?.fallback ?? null,
          fallbackDetail: fellBack?.detail ?? null,
          tokens: stored?.tokens ?? null,
          latencyMs: stored?.latencyMs ?? null,
          summary: typeof stored?.summary === 'string' ? stored.summary.slice(0, 160) : null,
          attempts: mine,
          cutFields: mine.reduce((n, a) => n + a.cutFields.length, 0),
          rssAfter: procStatus().VmRSS,
        };
      }

      const cold = await diagnoseOne('cold (checkout, model not loaded)', fa);
      const loadMs = engine.status().loadMs;
      const warm = await diagnoseOne('warm (ingest-worker, a different finding)', fb);
      // The first finding again, unchanged: a diagnosis-cache hit when the model's answer was kept.
      const t0 = performance.now();
      store.commit({ at: new Date().toISOString(), findings: [fa as never], checkpoints: [], gaps: [], lineCounts: new Map() });
      queue.enqueue(fa.id, fa.severity);
      await queue.drain();
      const againMs = ms(t0);
      const qstats = queue.stats();

      // Prompt sizes as the diagnoser builds them (first attempt, the configured budget), with the
      // model's tokenizer, and what all the evidence would take without a budget.
      const prompts: Json[] = [];
      let systemTokens = 0;
      if (analysePrompts) {
        const count = (t: string) => engine.countTokens(t);
        for (const f of [fa, fb]) {
          const hint = diagnosis.ruleHint.hint(f as never);
          const real = await buildPrompt(f as never, { hint }, { countTokens: count, maxUserTokens: config.llm.promptTokens });
          const fullEvidence = await buildPrompt(f as never, { hint }, { countTokens: count, maxUserTokens: 100_000, maxEvidence: 100 });
          prompts.push({
            finding: f.subject.name,
            evidenceLines: f.evidence.length,
            userTokens: real.userTokens,
            userChars: real.user.length,
            evidenceItems: real.evidenceIndex.length,
            droppedEvidence: real.droppedEvidence,
            overBudget: real.overBudget,
            charsPerToken: real.user.length / real.userTokens,
            allEvidenceUserTokens: fullEvidence.userTokens,
            allEvidenceItems: fullEvidence.evidenceIndex.length,
          });
        }
        systemTokens = await count(SYSTEM_PROMPT);
      }
      const status = engine.status();
      const stats = (diagnosis.diagnoser as { stats?: () => unknown }).stats?.() ?? null;
      await queue.stop();
      await diagnosis.dispose();
      store.close();
      return {
        name,
        env,
        config: {
          contextSize: config.llm.contextSize,
          promptTokens: config.llm.promptTokens,
          timeoutSeconds: config.llm.timeoutSeconds,
          gpu: config.llm.gpu,
          threads: config.llm.threads,
          memoryBudgetMB: config.llm.memoryBudgetMB,
        },
        engine: { threads: status.threads, threadBasis: status.threadBasis, backend: status.backend, contextSize: status.contextSize, loadMs, parameters: status.parameters },
        cold,
        warm,
        againMs,
        queue: qstats,
        diagnoserStats: stats,
        ...(analysePrompts ? { systemTokens, systemChars: SYSTEM_PROMPT.length, prompts } : {}),
      };
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  // The defaults, then a second setup: a larger context when the default one is
  // smaller (this model's prompts need more room than a trained model's), else
  // the defaults again, which shows how much the times move between runs.
  const defaults = await scenario('defaults', {}, false);
  const defaultContext = (defaults.config as { contextSize: number }).contextSize;
  const second =
    defaultContext < PIPELINE_LARGE_CONTEXT
      ? await scenario(`context ${PIPELINE_LARGE_CONTEXT}`, { NODESAGE_LLM_CONTEXT_SIZE: String(PIPELINE_LARGE_CONTEXT) }, true)
      : await scenario('defaults, second run', {}, true);
  return { scenarios: [defaults, second], answerTokens: ANSWER_TOKENS, systemTokens: second.systemTokens, systemChars: second.systemChars, prompts: second.prompts };
}

// ---------------------------------------------------------------------------
// Child: memory.

type MemoryVariant = 'engine' | 'plain' | 'plain-mmap';

/**
 * The memory children evaluate the start of a diagnosis prompt's user part
 * (over 512 tokens: one full batch, so the compute buffers reach their size)
 * behind a short system prompt: the KV cache is allocated whole at context
 * creation, so a longer prompt would cost time without changing the peak.
 */
const MEMORY_SYSTEM = 'You are nodesage. Answer with one JSON object.';
/** The start of the user part: about 550 tokens with this model's vocabulary. */
const MEMORY_USER_CHARS = 1200;

async function childMemory(modelPath: string, variant: MemoryVariant): Promise<Json> {
  const { buildPrompt } = await dist<typeof import('../../daemon/diagnoser/prompt.ts')>('diagnoser/prompt.js');
  const { RuleHintDiagnoser } = await dist<typeof import('../../daemon/diagnoser/rule-hint.ts')>('diagnoser/rule-hint.js');
  const { LlmEngine } = await dist<typeof import('../../daemon/diagnoser/engine.ts')>('diagnoser/engine.js');
  const nlc = await import('node-llama-cpp');
  const f = checkoutCrashLoop();
  const hint = new RuleHintDiagnoser({ nodeName: 'bench-node' }).hint(f as never);
  const peakReset: boolean[] = [];

  const beforeLoad = procStatus();
  let afterLoad: Record<string, number>;
  let duringGen: Record<string, number>;
  let afterGen: Record<string, number>;
  let gen: Json;
  let loadMs: number;
  let estimatedBytes: number | null = null;
  const t0 = performance.now();
  if (variant === 'engine') {
    const engine = new LlmEngine({
      modelPath,
      memoryBudgetBytes: 4 * 1024 ** 3,
      contextSize: SETTINGS.contextSize,
      threads: SETTINGS.threads,
      gpu: false,
      idleUnloadMs: 0,
      logger: logger(),
    });
    await engine.load();
    loadMs = ms(t0);
    afterLoad = procStatus();
    estimatedBytes = engine.status().memory.estimatedBytes;
    const p = await buildPrompt(f as never, { hint }, { countTokens: (t) => engine.countTokens(t) });
    peakReset.push(resetPeakRss());
    const r = (await engine.complete({ systemPrompt: MEMORY_SYSTEM, userPrompt: p.user.slice(0, MEMORY_USER_CHARS), maxTokens: SETTINGS.memoryMaxTokens })) as EngineResult;
    duringGen = procStatus();
    gen = { promptTokens: r.tokens.prompt, completionTokens: r.tokens.completion };
    await engine.unload();
    afterGen = procStatus();
    await engine.dispose();
  } else {
    const llama = await nlc.getLlama({ gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.warn });
    const model = await llama.loadModel({ modelPath, useMmap: variant === 'plain-mmap' });
    const context = await model.createContext({ contextSize: SETTINGS.contextSize, batchSize: SETTINGS.batchSize, threads: SETTINGS.threads, sequences: 1 });
    loadMs = ms(t0);
    afterLoad = procStatus();
    const p = await buildPrompt(f as never, { hint }, { countTokens: (t) => model.tokenize(t, false).length });
    const session = new nlc.LlamaChatSession({ contextSequence: context.getSequence(), systemPrompt: MEMORY_SYSTEM });
    peakReset.push(resetPeakRss());
    let n = 0;
    await session.prompt(p.user.slice(0, MEMORY_USER_CHARS), { maxTokens: SETTINGS.memoryMaxTokens, temperature: 0, onToken: (t) => {
        n += t.length;
      },
    });
    duringGen = procStatus();
    gen = { completionTokens: n };
    session.dispose();
    await context.dispose();
    await model.dispose();
    afterGen = procStatus();
    await llama.dispose();
  }
  return {
    variant,
    useMmap: variant === 'plain-mmap',
    loadMs,
    estimatedBytes,
    beforeLoad,
    afterLoad,
    // VmHWM after the reset before generating: the peak during prompt evaluation and generation.
    peakDuringGeneration: duringGen.VmHWM,
    peakDuringLoad: afterLoad.VmHWM,
    peakResetWorked: peakReset.every(Boolean),
    afterGeneration: duringGen,
    afterUnload: afterGen,
    gen,
  };
}

// ---------------------------------------------------------------------------
// Parent: runs each child in turn.

/** Everything the LLM benchmarks measured. */
export interface LlmResults {
  model: { path: string; bytes: number; parameters: number; shape: unknown; generatedMs: number | null };
  settings: typeof SETTINGS;
  throughput: Json | { error: string };
  pipeline: Json | { error: string };
  memory: (Json | { error: string })[];
  /** Wall time of each child, ms. */
  childMs: Record<string, number>;
  /** 1-minute load average before each child and at the end. */
  load: { at: string; load1: number }[];
}

function runChild(args: string[], timeoutMs: number): Promise<Json> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [HERE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')}: timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      if (code === 0 && line) resolvePromise(JSON.parse(line.slice('@@RESULT '.length)) as Json);
      else reject(new Error(`${args.join(' ')}: exited with ${code ?? sig}${line ? '' : ', no result'}`));
    });
  });
}

/** Runs every LLM benchmark, each in a fresh child process, in sequence. */
export async function runLlmBenchmarks(opts: { timeoutMs?: number } = {}): Promise<LlmResults> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const { loadavg } = await import('node:os');
  const m = ensureBenchModel();
  say(`model ${m.path} (${(m.bytes / 1e6).toFixed(0)} MB, ${m.generatedMs === null ? 'cached' : `generated in ${(m.generatedMs / 1000).toFixed(1)} s`})`);
  const load: LlmResults['load'] = [];
  const childMs: Record<string, number> = {};
  const run = async (name: string, args: string[]): Promise<Json | { error: string }> => {
    load.push({ at: name, load1: loadavg()[0] ?? 0 });
    say(`--- ${name} (load average ${(loadavg()[0] ?? 0).toFixed(2)})`);
    const t0 = performance.now();
    try {
      return await runChild([...args, '--model', m.path], timeoutMs);
    } catch (err) {
      say(`${name} failed: ${(err as Error).message}`);
      return { error: (err as Error).message };
    } finally {
      childMs[name] = Math.round(ms(t0));
    }
  };
  const memory = [];
  for (const v of ['engine', 'plain', 'plain-mmap'] as const) memory.push(await run(`memory ${v}`, ['--child', 'memory', '--variant', v]));
  const throughput = await run('throughput', ['--child', 'throughput']);
  const pipeline = await run('pipeline', ['--child', 'pipeline']);
  load.push({ at: 'end', load1: loadavg()[0] ?? 0 });
  return { model: m, settings: SETTINGS, throughput, pipeline, memory, childMs, load };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { child: { type: 'string' }, model: { type: 'string' }, variant: { type: 'string' }, out: { type: 'string' } },
  });
  if (values.child) {
    const model = values.model;
    if (!model) throw new Error('--model is required with --child');
    let result: Json;
    if (values.child === 'throughput') result = await childThroughput(model);
    else if (values.child === 'pipeline') result = await childPipeline(model);
    else if (values.child === 'memory') result = await childMemory(model, (values.variant ?? 'engine') as MemoryVariant);
    else throw new Error(`unknown child ${values.child}`);
    emit(result);
    // Native threads of node-llama-cpp may keep the loop alive after dispose.
    process.exit(0);
  }
  const results = await runLlmBenchmarks();
  const text = JSON.stringify(results, null, 2);
  if (values.out) writeFileSync(values.out, text);
  else process.stdout.write(`${text}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
