/**
 * The SQLite store: a thin facade over one repository per concern, all on
 * one shared connection (db.ts). SQL lives only in daemon/store/. WAL
 * journal, numbered migrations, prepared statements, one transaction per
 * detection cycle (findings together with the read positions of the signals
 * they came from).
 */
import type { Logger } from 'pino';
import type { Diagnosis, SourceName } from '../core/types.js';
import type { TemplateBucketRow, TemplateRow } from '../detectors/templates/stats.js';
import type { TrackedFinding } from '../tracker/tracker.js';
import { StoreDb, WAL_LIMIT_BYTES } from './db.js';
import { type FeedbackRecord, FeedbackRepo } from './feedback.js';
import { type FindingQuery, FindingRepo, type JsonPage, type TimelineEvent } from './findings.js';
import { MetricsHistoryRepo, type SamplePoint, type SampleRow } from './metrics-history.js';
import { ProgressRepo, type ProgressWrite } from './progress.js';
import { Retention, type RetentionOptions } from './retention.js';
import { type RunbookRecord, type SearchOptions, SearchRepo, type SearchResult } from './search.js';
import { TemplateRepo, type TemplatesWrite } from './templates.js';

export { CorruptDatabaseError, DB_FILE } from './db.js';
export type { FeedbackRecord } from './feedback.js';
export { CursorError, type FindingQuery, LISTING_FILTERS, MAX_EVIDENCE, type JsonPage, type PublicFindingJson, type TimelineEvent } from './findings.js';
export type { FindingHit, RunbookHit, RunbookRecord, SearchOptions, SearchResult, TemplateHit } from './search.js';

/** Options of Store.open. */
export interface StoreOptions extends RetentionOptions {
  /** Folder of the database file; created if missing. */
  dir: string;
  /** Where moving a corrupt database aside is logged. Defaults to nowhere. */
  logger?: Logger;
}

/** Everything one detection cycle writes, in one transaction. */
export interface CommitBatch extends ProgressWrite, TemplatesWrite {
  /** Findings that changed in the cycle. */
  findings: TrackedFinding[];
}

/** True when committing the batch would write nothing. */
function isEmptyBatch(b: CommitBatch): boolean {
  return (
    b.findings.length === 0 &&
    b.checkpoints.length === 0 &&
    b.gaps.length === 0 &&
    b.lineCounts.size === 0 &&
    !b.templates?.length &&
    !b.templateBuckets?.length &&
    !b.templatesRemoved?.length &&
    b.templateBucketsBefore === undefined
  );
}

/** The SQLite store. */
export class Store {
  readonly path: string;
  /** Where a corrupt database was moved at start, or null. */
  readonly recoveredFrom: string | null;
  private readonly s: StoreDb;
  private readonly findings: FindingRepo;
  private readonly progress: ProgressRepo;
  private readonly templates: TemplateRepo;
  private readonly samples: MetricsHistoryRepo;
  private readonly feedback: FeedbackRepo;
  private readonly searchRepo: SearchRepo;
  private readonly retention: Retention;
  private readonly commitTx: (batches: CommitBatch[]) => void;

  private constructor(s: StoreDb, opts: StoreOptions) {
    this.s = s;
    this.path = s.path;
    this.recoveredFrom = s.recoveredFrom;
    this.findings = new FindingRepo(s);
    this.progress = new ProgressRepo(s);
    this.templates = new TemplateRepo(s);
    this.samples = new MetricsHistoryRepo(s);
    this.feedback = new FeedbackRepo(s);
    this.searchRepo = new SearchRepo(s, this.findings);
    this.retention = new Retention(s, this.searchRepo, opts);
    this.commitTx = s.tx((batches: CommitBatch[]) => {
      for (const b of batches) {
        this.findings.write(b.findings, b.at);
        this.progress.write(b);
        this.templates.write(b);
      }
    });
  }

  /**
   * Opens (or creates) the database. A database that fails `PRAGMA quick_check`
   * or cannot be opened is moved aside with a timestamp and a fresh one created.
   */
  static open(opts: StoreOptions): Store {
    return new Store(StoreDb.open(opts.dir, opts.logger), opts);
  }

  /**
   * Changes whenever what a findings page, a finding or the timeline shows may have changed: a response built
   * at one value is still true while it holds.
   */
  get generation(): number {
    return this.s.findingsGeneration;
  }

  /** Changes whenever a feedback row is added (what the feedback export holds). */
  get feedbackGeneration(): number {
    return this.s.feedbackGeneration;
  }

  /** Changes whenever host metric samples are added or deleted (what the metrics history shows). */
  get samplesGeneration(): number {
    return this.s.samplesGeneration;
  }

  /** Changes whenever retention deletes host metric samples. */
  get samplesPrunes(): number {
    return this.s.samplesPrunes;
  }

  /**
   * Writes detection cycles atomically, in order: several when earlier ones could
   * not be written (disk full) and are retried together with the current one.
   */
  commit(...batches: CommitBatch[]): void {
    // An idle node's cycles change nothing: no transaction for them.
    if (batches.every(isEmptyBatch)) return;
    try {
      this.commitTx(batches);
    } finally {
      if (batches.some((b) => b.findings.length > 0)) this.s.findingsGeneration++;
    }
    // The automatic checkpoint cannot pass a reader's snapshot; once the reader is gone this brings the WAL back.
    if (this.s.walBytes() > WAL_LIMIT_BYTES) this.s.checkpoint();
  }

  /** Open findings, for the tracker at start. */
  loadOpenFindings(): TrackedFinding[] {
    return this.findings.loadOpen();
  }

  /** One finding by id, with its evidence and diagnosis. */
  getFinding(id: string): TrackedFinding | undefined {
    return this.findings.get(id);
  }

  /** A page of findings, newest first. */
  listFindings(q: FindingQuery = {}): { items: TrackedFinding[]; nextCursor: string | null } {
    return this.findings.list(q);
  }

  /** The same page as {@link listFindings}, each finding as the public Finding's JSON text up to its diagnosis. */
  listFindingsJson(q: FindingQuery = {}): JsonPage {
    return this.findings.listJson(q);
  }

  /**
   * The query plan (`EXPLAIN QUERY PLAN` detail lines) of the listing for a
   * query, and of every other statement a read route or the retention runs
   * per page or per scrape, by name.
   */
  queryPlans(q: FindingQuery): { listing: string[]; [name: string]: string[] } {
    return { ...this.findings.queryPlans(q), ...this.retention.queryPlans() };
  }

  /**
   * Counts of open findings by category and severity (for /metrics): the same array while the findings generation
   * holds, so a scrape can tell that nothing changed.
   */
  openCounts(): readonly { category: string; severity: string; n: number }[] {
    if (this.openCountsAt?.generation !== this.generation) this.openCountsAt = { generation: this.generation, rows: this.findings.openCounts() };
    return this.openCountsAt.rows;
  }
  private openCountsAt: { generation: number; rows: readonly { category: string; severity: string; n: number }[] } | undefined;

  /** Stores a diagnosis on its finding. */
  setDiagnosis(id: string, d: Diagnosis): void {
    this.findings.setDiagnosis(id, d);
  }

  /** Timeline events (opened, resolved, reopened, diagnosed) since a time, newest first, with their finding's headline. */
  listTimeline(q: { since?: string; limit?: number } = {}): TimelineEvent[] {
    return this.findings.timeline(q);
  }

  /** A cached diagnosis by key, or undefined. */
  cacheGet(key: string): Diagnosis | undefined {
    return this.feedback.cacheGet(key);
  }

  /** Caches a diagnosis by key. */
  cachePut(key: string, d: Diagnosis): void {
    this.feedback.cachePut(key, d);
  }

  /** Stores a person's verdict on a finding's diagnosis with the finding as judged; returns the row id. */
  addFeedback(f: { findingId: string; at: string; helpful: boolean; note: string | null; finding: unknown }): number {
    return this.feedback.add(f);
  }

  /** Every feedback row, oldest first (iterated, so a large export never sits in memory at once). */
  iterateFeedback(): Generator<FeedbackRecord> {
    return this.feedback.iterate();
  }

  /** A committed checkpoint. */
  getCheckpoint(source: SourceName, key: string): string | undefined {
    return this.progress.getCheckpoint(source, key);
  }

  /** Every committed checkpoint of a source. */
  listCheckpoints(source: SourceName): Map<string, string> {
    return this.progress.listCheckpoints(source);
  }

  /** Lines consumed so far per stream. */
  lineCounts(): Map<string, number> {
    return this.progress.lineCounts();
  }

  /** Recorded gaps, newest first. */
  listGaps(limit = 100): { source: string; at: string; detail: string }[] {
    return this.progress.listGaps(limit);
  }

  /** Template rows (to restore the miner's baselines at start). */
  listTemplates(): TemplateRow[] {
    return this.templates.list();
  }

  /** Template bucket rows since a time. */
  listTemplateBuckets(since: string): TemplateBucketRow[] {
    return this.templates.listBuckets(since);
  }

  /** Adds host metric samples to their 1-minute and 15-minute buckets. */
  addSamples(atMs: number, samples: { name: string; labels?: string; value: number }[]): void {
    this.samples.add(atMs, samples);
  }

  /** Downsampled series: mean per bucket. */
  listSamples(name: string, resolution: 60 | 900, sinceMs: number): SamplePoint[] {
    return this.samples.list(name, resolution, sinceMs);
  }

  /** Buckets of a metric from a bucket start (Unix seconds) on, by label value, then time. */
  sampleRows(name: string, resolution: 60 | 900, fromBucket: number): SampleRow[] {
    return this.samples.rows(name, resolution, fromBucket);
  }

  /** Database size on disk (main file + WAL). */
  sizeBytes(): number {
    return this.s.sizeBytes();
  }

  /** Retention by age and size, in slices (retention.ts). */
  prune(now = Date.now()): Promise<{ deleted: number }> {
    return this.retention.prune(now);
  }

  /** Re-redacts text stored under other redaction rules (retention.ts). Returns the rows changed. */
  redactStored(redact: (text: string) => string, version: string): { templates: number; findings: number; evidence: number } {
    return this.retention.redactStored(redact, version);
  }

  /** Indexes changed documents now, at most `max`; returns how many (search.ts). */
  refreshSearchIndex(max = Number.POSITIVE_INFINITY): number {
    return this.searchRepo.refreshIndex(max);
  }

  /** Indexes every changed document in slices, the event loop running between them (search.ts). */
  maintainSearchIndex(): Promise<number> {
    return this.searchRepo.maintainIndex();
  }

  /** Full-text search on the main connection (search.ts). */
  search(question: string, opts: SearchOptions = {}): SearchResult {
    return this.searchRepo.search(question, opts);
  }

  /** Full-text search ranked in a worker thread, rankings reused while the index is unchanged (search.ts). */
  searchAsync(question: string, opts: SearchOptions = {}): Promise<SearchResult> {
    return this.searchRepo.searchAsync(question, opts);
  }

  /** Writes runbook changes in one transaction; returns how many rows changed. */
  applyRunbooks(changes: { upsert: RunbookRecord[]; remove: string[] }): { upserted: number; removed: number } {
    return this.searchRepo.applyRunbooks(changes);
  }

  /** Stored runbooks without their bodies, by id. */
  listRunbooks(): Omit<RunbookRecord, 'body'>[] {
    return this.searchRepo.listRunbooks();
  }

  /** Checkpoints the WAL into the main file and closes. */
  close(): void {
    this.searchRepo.stopWorkers();
    this.s.close();
  }
}
