/**
 * The diagnosis queue: findings wait here for the (slow, optional) diagnoser
 * so that detection never waits for it.
 *
 * - `enqueue` is synchronous and amortised O(1): one FIFO lane per severity
 *   with lazy deletion, plus an index by finding id. Work starts on a later
 *   tick, never in the caller's stack.
 * - Critical findings go first, then warnings; info findings are not
 *   diagnosed unless configured. Same severity: first come, first served.
 * - Re-enqueueing a queued id updates it in place (new severity moves it to
 *   that lane) instead of adding a second entry.
 * - Bounded: when full, the oldest item of the lowest severity present is
 *   dropped (possibly the new one) and counted.
 * - A diagnosis already made for the same model, prompt version and evidence
 *   templates is taken from the cache instead of costing another generation.
 *   Fallback results (the rule hint standing in for the model) are saved but
 *   never cached, so a transient model failure is not remembered.
 * - Errors are logged and counted, never thrown out of the queue.
 */
import type { Logger } from 'pino';
import type { Diagnosis, DiagnosisInput, Diagnoser, Severity } from '../core/types.js';
import { severityRank } from '../core/types.js';
import { diagnosisCacheKey } from './prompt.js';
import { CodedError } from '../errors.js';

/** Where diagnoses are cached by key (the store implements it). */
export interface DiagnosisCache {
  /** The cached diagnosis for `key`, or undefined. */
  get(key: string): Diagnosis | undefined | Promise<Diagnosis | undefined>;
  /** Caches `diagnosis` under `key`. */
  put(key: string, diagnosis: Diagnosis): void | Promise<void>;
}

/** Options of {@link DiagnosisQueue}. */
export interface DiagnosisQueueOptions {
  /** Who diagnoses (the LLM diagnoser, or the rule hint in rules-only mode). */
  diagnoser: Diagnoser;
  /** Loads a finding by id (from the store); undefined when it no longer exists. */
  getFinding: (id: string) => DiagnosisInput | undefined | Promise<DiagnosisInput | undefined>;
  /** Writes a diagnosis onto its finding (in the store). */
  saveDiagnosis: (id: string, diagnosis: Diagnosis) => void | Promise<void>;
  logger: Logger;
  /** Diagnosis cache. Defaults to none. */
  cache?: DiagnosisCache;
  /** Cache key of a finding; null skips the cache. Defaults to {@link diagnosisCacheKey} with the diagnoser's id. */
  cacheKey?: (finding: DiagnosisInput) => string | null;
  /** Diagnoses run at the same time. Defaults to 1 (one model, one sequence). */
  concurrency?: number;
  /** Items waiting at most. Defaults to 256. */
  maxSize?: number;
  /** Also diagnose `info` findings. Defaults to false. */
  diagnoseInfo?: boolean;
}

/** What `enqueue` did. */
export type EnqueueResult = 'queued' | 'updated' | 'skipped' | 'dropped' | 'stopped';

/** Counters and gauges for /metrics and /v1/status. */
export interface DiagnosisQueueStats {
  /** Items waiting. */
  depth: number;
  /** Diagnoses in progress. */
  running: number;
  /** Accepted by `enqueue` (new items). */
  enqueued: number;
  /** Re-enqueues merged into a waiting item. */
  updated: number;
  /** Info findings not diagnosed (diagnoseInfo off). */
  skipped: number;
  /** Items dropped because the queue was full. */
  dropped: number;
  /** Diagnoses saved, cache hits included. */
  diagnosed: number;
  /** Saved diagnoses that came from the cache. */
  cacheHits: number;
  /** Saved diagnoses where the rule hint stood in for the diagnoser. */
  fallbacks: number;
  /** Findings gone before their turn. */
  missing: number;
  /** Failures (load, diagnose, cache, save). */
  errors: number;
  /** Diagnoses aborted by `stop()`. */
  aborted: number;
}

interface Item {
  id: string;
  severity: Severity;
  /** False once removed; its slot in the lane is skipped and reclaimed later. */
  live: boolean;
}

/**
 * FIFO of items with O(1) removal anywhere (the item is marked dead) and
 * amortised O(1) access to the oldest live item. A Map used as a FIFO is not:
 * V8 skips deleted entries on every iteration from the front until it rehashes.
 */
class Lane {
  #items: Item[] = [];
  #head = 0;

  push(item: Item): void {
    this.#items.push(item);
  }

  /** Oldest live item. */
  first(): Item | undefined {
    this.#skipDead();
    return this.#items[this.#head];
  }

  /** Live items, oldest first. */
  *live(): Generator<Item> {
    this.#skipDead();
    for (let i = this.#head; i < this.#items.length; i++) {
      const it = this.#items[i] as Item;
      if (it.live) yield it;
    }
  }

  #skipDead(): void {
    while (this.#head < this.#items.length && !(this.#items[this.#head] as Item).live) this.#head++;
    // Reclaim the dead prefix once it is most of the array.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Drops dead items in the middle too, when they pile up (frequent severity changes). */
  compact(liveCount: number): void {
    if (this.#items.length - this.#head > 2 * liveCount + 1024) {
      this.#items = this.#items.slice(this.#head).filter((i) => i.live);
      this.#head = 0;
    }
  }
}

const LANES: readonly Severity[] = ['critical', 'warning', 'info'];

/** Priority queue in front of a diagnoser. */
export class DiagnosisQueue {
  readonly #o: Required<Omit<DiagnosisQueueOptions, 'cache'>> & Pick<DiagnosisQueueOptions, 'cache'>;
  readonly #log: Logger;
  readonly #lanes: Record<Severity, Lane> = { critical: new Lane(), warning: new Lane(), info: new Lane() };
  readonly #queued = new Map<string, Item>();
  readonly #running = new Map<string, AbortController>();
  readonly #settled = new Set<() => void>();
  readonly #counters = { enqueued: 0, updated: 0, skipped: 0, dropped: 0, diagnosed: 0, cacheHits: 0, fallbacks: 0, missing: 0, errors: 0, aborted: 0 };
  #scheduled = false;
  #stopped = false;

  constructor(options: DiagnosisQueueOptions) {
    const concurrency = options.concurrency ?? 1;
    const maxSize = options.maxSize ?? 256;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError('DiagnosisQueue: concurrency must be a positive integer');
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new TypeError('DiagnosisQueue: maxSize must be a positive integer');
    const diagnoserId = options.diagnoser.id;
    this.#o = Object.freeze({
      ...options,
      concurrency,
      maxSize,
      diagnoseInfo: options.diagnoseInfo ?? false,
      cacheKey: options.cacheKey ?? ((f: DiagnosisInput) => diagnosisCacheKey(diagnoserId, f)),
    });
    this.#log = options.logger.child({ component: 'diagnosis-queue', diagnoser: diagnoserId });
  }

  /**
   * Asks for a diagnosis of finding `id`. Synchronous and O(1); the diagnosis
   * happens later. A finding being diagnosed right now is queued again, so
   * evidence that arrived meanwhile is looked at.
   */
  enqueue(id: string, severity: Severity): EnqueueResult {
    if (this.#stopped) return 'stopped';
    const existing = this.#queued.get(id);
    if (severity === 'info' && !this.#o.diagnoseInfo) {
      // A finding that dropped to info no longer deserves its place.
      if (existing) this.#remove(existing);
      this.#counters.skipped++;
      return 'skipped';
    }
    if (existing) {
      if (existing.severity !== severity) {
        this.#remove(existing);
        this.#add({ id, severity, live: true });
      }
      this.#counters.updated++;
      return 'updated';
    }
    if (this.#queued.size >= this.#o.maxSize) {
      const victim = this.#oldestLowest();
      if (!victim || severityRank(victim.severity) > severityRank(severity)) {
        this.#noteDrop(id, severity);
        return 'dropped';
      }
      this.#remove(victim);
      this.#noteDrop(victim.id, victim.severity);
    }
    this.#add({ id, severity, live: true });
    this.#counters.enqueued++;
    this.#schedule();
    return 'queued';
  }

  /** Items waiting. */
  depth(): number {
    return this.#queued.size;
  }

  /** Counters and gauges. */
  stats(): DiagnosisQueueStats {
    return { depth: this.#queued.size, running: this.#running.size, ...this.#counters };
  }

  /** Resolves once nothing is waiting or running (new items enqueued meanwhile are waited for too). */
  drain(): Promise<void> {
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#settled.add(resolve));
  }

  /**
   * Stops: forgets waiting items, aborts running diagnoses through their
   * AbortSignal and resolves once they have settled. Later enqueues return
   * `stopped`.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const item of [...this.#queued.values()]) this.#remove(item);
    for (const ac of this.#running.values()) ac.abort(new DiagnosisQueueStoppedError());
    await this.drain();
  }

  // ---------------------------------------------------------------------------

  #noteDrop(id: string, severity: Severity): void {
    const n = ++this.#counters.dropped;
    // A flood of findings must not become a flood of log lines.
    if (n === 1 || n % 100 === 0) {
      this.#log.warn({ findingId: id, severity, dropped: n, maxSize: this.#o.maxSize }, 'diagnosis queue full; dropped the oldest lowest-severity item');
    }
  }

  #idle(): boolean {
    return this.#queued.size === 0 && this.#running.size === 0;
  }

  #add(item: Item): void {
    this.#queued.set(item.id, item);
    this.#lanes[item.severity].push(item);
  }

  #remove(item: Item): void {
    item.live = false;
    this.#queued.delete(item.id);
    this.#lanes[item.severity].compact(this.#queued.size);
  }

  /** Oldest item of the lowest severity present. */
  #oldestLowest(): Item | undefined {
    for (let i = LANES.length - 1; i >= 0; i--) {
      const first = this.#lanes[LANES[i] as Severity].first();
      if (first) return first;
    }
    return undefined;
  }

  /** Next item by priority that is not being diagnosed right now. */
  #next(): Item | undefined {
    for (const sev of LANES) {
      for (const item of this.#lanes[sev].live()) {
        if (!this.#running.has(item.id)) return item;
      }
    }
    return undefined;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Never start work in the caller's stack: the caller is the detection cycle.
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#o.concurrency) {
      const item = this.#next();
      if (!item) break;
      this.#remove(item);
      const ac = new AbortController();
      this.#running.set(item.id, ac);
      void this.#run(item, ac.signal).finally(() => {
        this.#running.delete(item.id);
        if (!this.#stopped && this.#queued.size > 0) this.#pump();
        this.#notifyIfIdle();
      });
    }
    this.#notifyIfIdle();
  }

  #notifyIfIdle(): void {
    if (!this.#idle() || this.#settled.size === 0) return;
    const waiters = [...this.#settled];
    this.#settled.clear();
    for (const w of waiters) w();
  }

  async #run(item: Item, signal: AbortSignal): Promise<void> {
    const log = this.#log.child({ findingId: item.id });
    let finding: DiagnosisInput | undefined;
    try {
      finding = await this.#o.getFinding(item.id);
    } catch (err) {
      this.#counters.errors++;
      log.error({ err }, 'could not load the finding to diagnose');
      return;
    }
    if (!finding) {
      this.#counters.missing++;
      log.debug('finding gone before its diagnosis');
      return;
    }

    let key: string | null = null;
    try {
      key = this.#o.cache ? this.#o.cacheKey(finding) : null;
    } catch (err) {
      this.#counters.errors++;
      log.warn({ err }, 'could not compute the diagnosis cache key');
    }
    if (key !== null && this.#o.cache) {
      try {
        const cached = await this.#o.cache.get(key);
        if (cached) {
          if (signal.aborted) return;
          await this.#save(item.id, cached, log);
          this.#counters.cacheHits++;
          return;
        }
      } catch (err) {
        this.#counters.errors++;
        log.warn({ err }, 'diagnosis cache read failed; diagnosing');
      }
    }

    let diagnosis: Diagnosis;
    try {
      diagnosis = await this.#o.diagnoser.diagnose(finding, signal);
    } catch (err) {
      if (signal.aborted) {
        this.#counters.aborted++;
        log.debug('diagnosis aborted');
      } else {
        this.#counters.errors++;
        log.error({ err }, 'diagnosis failed');
      }
      return;
    }
    if (signal.aborted) {
      this.#counters.aborted++;
      return;
    }
    const fallback = diagnosis.diagnoser !== this.#o.diagnoser.id;
    if (fallback) this.#counters.fallbacks++;
    if (key !== null && this.#o.cache && !fallback) {
      try {
        await this.#o.cache.put(key, diagnosis);
      } catch (err) {
        this.#counters.errors++;
        log.warn({ err }, 'diagnosis cache write failed');
      }
    }
    await this.#save(item.id, diagnosis, log);
  }

  async #save(id: string, diagnosis: Diagnosis, log: Logger): Promise<void> {
    try {
      await this.#o.saveDiagnosis(id, diagnosis);
      this.#counters.diagnosed++;
      log.debug({ diagnoser: diagnosis.diagnoser, latencyMs: diagnosis.latencyMs }, 'diagnosis saved');
    } catch (err) {
      this.#counters.errors++;
      log.error({ err }, 'could not save the diagnosis');
    }
  }
}

/** Reason given to running diagnoses when the queue stops. */
export class DiagnosisQueueStoppedError extends CodedError {
  /** Stable error code. */
  readonly code = 'ERR_DIAGNOSIS_QUEUE_STOPPED';
  constructor() {
    super('the diagnosis queue was stopped');
  }
}
