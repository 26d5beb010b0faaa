/**
 * The daemon's life cycle: open the store, start the sources, run a detection
 * cycle on an interval, serve the API, and stop cleanly.
 *
 * One detection cycle = take the node view (all log lines since the previous
 * cycle) → detectors → tracker → ONE store transaction holding the changed
 * findings and the read positions (checkpoints) of every signal consumed. A
 * crash between cycles therefore re-reads lines instead of losing them.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AccessOptions } from './api/auth/access.js';
import { ApiServing } from './api/auth/serve.js';
import { buildApi } from './api/server.js';
import { DaemonMetrics, EVENT_LOOP_SLICE_MS } from './api/metrics.js';
import { formatListen, localSocketPath, type Config } from './config.js';
import type { Collector, Detector, Diagnosis, HostSnapshot, ModelStatus, Signal, SourceStatus, Status } from './core/types.js';
import { runDetectors } from './detectors/run.js';
import type { TemplateStats } from './detectors/templates/stats.js';
import { redactDraft, redactSignals } from './redact.js';
import { NodeState } from './state/node-state.js';
import { foldBatches } from './store/fold.js';
import type { CommitBatch, Store } from './store/store.js';
import { FindingTracker, type TrackedFinding } from './tracker/tracker.js';

import { VERSION } from './version.js';

/** What the daemon is built from (main.ts wires it). */
export interface DaemonParts {
  config: Readonly<Config>;
  logger: Logger;
  store: Store;
  detectors: Detector[];
  /** Built once the store is open, so they can read their checkpoints. */
  collectors: Collector[];
  /** Sources that are configured but could not be built, with why. */
  unavailable?: SourceStatus[];
  /**
   * Redaction, applied to every log line as it arrives (before templates, detectors and the store see it) and to
   * every finding's title, message, evidence and facts. Defaults to identity.
   */
  redact?: (text: string) => string;
  /** Identifies the redaction rules (redactionVersion()); stored text is redacted again when they changed. Defaults to none. */
  redactVersion?: string;
  /** Log template statistics (LogErrorSpike, `ask`); restored from the store at start. */
  templates?: TemplateStats;
  /** Model status for /v1/status. Defaults to none. */
  modelStatus?: () => ModelStatus;
  /** Extra API routes (ask, OpenAI-compatible). */
  extraRoutes?: (app: FastifyInstance) => void;
  /** Called after each committed cycle (diagnosis queue, exporters); must not block. */
  onCycle?: (c: { open: TrackedFinding[]; opened: TrackedFinding[]; resolved: TrackedFinding[] }) => void;
  /** Disposes native resources (model) at stop. */
  dispose?: () => Promise<void>;
  /** Items waiting for a diagnosis (for /metrics). */
  queueDepth?: () => number;
  /** Who may call the API. Defaults to no authentication. */
  access?: AccessOptions;
}

/** A running nodesage daemon. */
export class Daemon {
  readonly startedAt = new Date().toISOString();
  readonly metrics: DaemonMetrics;
  readonly api: FastifyInstance;
  private readonly serving: ApiServing;
  private readonly state: NodeState;
  private readonly tracker: FindingTracker;
  private pendingCheckpoints: CommitBatch['checkpoints'] = [];
  private pendingGaps: CommitBatch['gaps'] = [];
  private pendingLineCounts = new Map<string, number>();
  /** Cycles whose commit failed, oldest first; written before the next cycle's. */
  private unstored: CommitBatch[] = [];
  /** Why cycles are being kept, since when; null while commits succeed. */
  private writeFailure: Status['store']['writeFailure'] = null;
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private firstCycleDone = false;
  private stopping = false;
  private cycleRunning = false;
  private ticking = false;
  /** URL (or socket path) the API listens on, once started. */
  address = '';

  constructor(private readonly parts: DaemonParts) {
    const { config, store } = parts;
    this.state = new NodeState(config.nodeName);
    if (parts.redact && parts.redactVersion) {
      // A database written under older rules (or none) must not keep serving what they missed.
      const changed = store.redactStored(parts.redact, parts.redactVersion);
      if (changed.templates + changed.findings + changed.evidence > 0) parts.logger.info(changed, 'redacted text stored under earlier redaction rules');
    }
    if (parts.templates) {
      // Baselines survive a restart: the same lines keep their template ids and rates.
      const since = new Date(Date.now() - 24 * 3_600_000).toISOString();
      parts.templates.restore(store.listTemplates(), store.listTemplateBuckets(since));
    }
    this.tracker = new FindingTracker(store.loadOpenFindings(), { quietPeriodMinutes: config.quietPeriodMinutes });
    this.serving = new ApiServing({
      headersTimeoutMs: config.limits.headersTimeoutSeconds * 1000,
      requestTimeoutMs: config.limits.requestTimeoutSeconds * 1000,
      maxConnections: config.limits.maxConnections,
    });
    this.metrics = new DaemonMetrics(
      {
      openCounts: () => store.openCounts(),
      sources: () => this.sourceStatuses(),
      dbSizeBytes: () => store.sizeBytes(),
      queueDepth: () => parts.queueDepth?.() ?? 0,
      },
      // Ticks at least as often as a slice ends: the slices end on them, with no timer of their own.
      { eventLoopDriven: config.detectIntervalSeconds * 1000 <= EVENT_LOOP_SLICE_MS },
    );
    const ctx = {
      store,
      status: () => this.status(),
      // Not ready while no source delivers: a pod whose every source fails should not look fine.
      ready: () => this.firstCycleDone && !this.stopping && this.sourceStatuses().some((st) => st.state === 'healthy'),
      metrics: this.metrics.registry,
      logger: parts.logger,
      ...(parts.extraRoutes ? { extraRoutes: parts.extraRoutes } : {}),
      ...(parts.access ? { access: parts.access } : {}),
      serving: this.serving,
    };
    this.api = buildApi(ctx);
  }

  /** Receives signals from every collector. */
  private sink = (batch: Signal[]) => {
    if (this.stopping) return;
    // Nothing downstream (templates, their search index, evidence, prompts, answers) ever holds an unredacted line.
    const signals = this.parts.redact ? redactSignals(batch, this.parts.redact) : batch;
    // Lines per log source, added to the counter once per batch rather than once per line.
    const linesBySource = new Map<string, number>();
    for (const s of signals) {
      if (s.type === 'checkpoint') {
        this.pendingCheckpoints.push({ source: s.source, key: s.key, value: s.value });
        continue;
      }
      if (s.type === 'gap') this.pendingGaps.push({ source: s.source, at: s.at, detail: s.detail });
      else if (s.type === 'log') {
        const l = s.line;
        const stream = l.container ? `podLog:${l.container.namespace}/${l.container.pod}/${l.container.container}` : `${l.source}:${l.unit ?? ''}`;
        this.pendingLineCounts.set(stream, (this.pendingLineCounts.get(stream) ?? 0) + 1);
        linesBySource.set(l.source, (linesBySource.get(l.source) ?? 0) + 1);
      }
    }
    for (const [lineSource, n] of linesBySource) this.metrics.logLines.inc({ source: lineSource }, n);
    this.state.ingest(signals);
    for (const s of signals) if (s.type === 'host') this.storeHostSamples(s.snapshot);
  };

  /** Keeps a downsampled history of host metrics (1-minute buckets for 24 h, 15-minute for the retention period). */
  private storeHostSamples(h: HostSnapshot): void {
    const samples: { name: string; labels?: string; value: number }[] = [];
    if (h.memory && h.memory.totalBytes > 0) {
      samples.push({ name: 'memory_available_percent', value: (h.memory.availableBytes / h.memory.totalBytes) * 100 });
    }
    if (h.load) samples.push({ name: 'load1', value: h.load.avg1 });
    if (h.load?.currentLoadPct !== undefined) samples.push({ name: 'cpu_percent', value: h.load.currentLoadPct });
    for (const r of ['cpu', 'memory', 'io'] as const) {
      const p = h.psi?.[r];
      if (p) samples.push({ name: `psi_${r}_some_avg60`, value: p.some.avg60 });
    }
    for (const f of h.filesystems) {
      const total = f.usedBytes + f.availBytes;
      if (total > 0) samples.push({ name: 'fs_used_percent', labels: f.mount, value: (f.usedBytes / total) * 100 });
      if (f.inodesTotal && f.inodesUsed !== undefined) samples.push({ name: 'inodes_used_percent', labels: f.mount, value: (f.inodesUsed / f.inodesTotal) * 100 });
    }
    try {
      this.parts.store.addSamples(Date.parse(h.at), samples);
    } catch (err) {
      this.parts.logger.warn({ err }, 'storing host samples failed');
    }
  }

  /** Counts a stored diagnosis in /metrics. */
  recordDiagnosis(d: Diagnosis): void {
    const outcome = d.fallback ? `fallback_${d.fallback}` : 'ok';
    this.metrics.diagnoses.inc({ diagnoser: d.diagnoser.startsWith('llm:') ? 'llm' : d.diagnoser, outcome });
    this.metrics.diagnosisDuration.observe({ diagnoser: d.diagnoser.startsWith('llm:') ? 'llm' : 'rule-hint' }, d.latencyMs / 1000);
    if (d.tokens.completion > 0 && d.latencyMs > 0) {
      this.metrics.llmTokensPerSecond.set({ phase: 'overall' }, ((d.tokens.prompt + d.tokens.completion) / d.latencyMs) * 1000);
    }
  }

  /**
   * One timer wakeup per detection interval: the sources' periodic reads that
   * are due before the next one, and those of idle sources, run first (so an
   * idle node wakes once per cycle, not once per source, and the cycle sees
   * what they read), then the cycle.
   */
  private async tick(intervalMs: number): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      this.metrics.tick();
      await Promise.allSettled(this.parts.collectors.map((c) => c.catchUp?.(intervalMs)));
      if (this.timer === undefined) return;
      this.cycle();
    } catch (err) {
      this.parts.logger.error({ err }, 'detection cycle failed');
    } finally {
      this.ticking = false;
    }
  }

  /** Runs one detection cycle and commits it. Returns the number of changed findings. */
  cycle(now = new Date().toISOString()): number {
    if (this.cycleRunning) return 0;
    this.cycleRunning = true;
    const end = this.metrics.detectionDuration.startTimer();
    try {
      // Take the view and the read positions at the same instant: every line
      // before these checkpoints is in this view.
      const view = this.state.takeView(now);
      const templates = this.parts.templates;
      if (templates) {
        templates.observeAll(view.logs);
        view.templates = templates.snapshot(now);
      }
      const checkpoints = this.pendingCheckpoints;
      const gaps = this.pendingGaps;
      const lineCounts = this.pendingLineCounts;
      this.pendingCheckpoints = [];
      this.pendingGaps = [];
      this.pendingLineCounts = new Map();

      const { drafts, failures } = runDetectors(view, this.parts.detectors, this.parts.config.detectors.correlation);
      for (const f of failures) {
        this.metrics.detectorFailures.inc({ detector: f.detector });
        this.parts.logger.error({ err: f.error, detector: f.detector }, 'detector failed; others still ran');
      }
      const redact = this.parts.redact;
      // Events, pod status and kubelet texts reach findings unredacted: redact what is stored and exported.
      if (redact) for (const d of drafts) redactDraft(d, redact);
      const failed = new Set(failures.map((f) => f.detector));
      // A detector switched off (detectors.disabled) counts as run and finding nothing, so what it had found resolves.
      const ran = new Set([...this.parts.detectors.map((d) => d.name).filter((n) => !failed.has(n)), ...(this.parts.config.detectors.disabled ?? [])]);
      const store = this.parts.store;
      const result = this.tracker.apply(drafts, now, ran, (id) => {
        const f = store.getFinding(id);
        return f && f.status === 'resolved' ? f : undefined;
      });
      const t = templates?.takeChanges();
      const batch: CommitBatch = {
        at: now,
        findings: result.changed,
        checkpoints,
        gaps,
        lineCounts,
        ...(t ? { templates: t.templates, templateBuckets: t.buckets, templatesRemoved: t.removed, templateBucketsBefore: t.pruneBefore } : {}),
      };
      this.commitOrKeep(batch);
      for (const f of result.opened) this.metrics.findingsOpened.inc({ category: f.category, severity: f.severity });
      if (result.opened.length > 0) {
        this.parts.logger.info(
          { findings: result.opened.map((f) => ({ id: f.id, category: f.category, severity: f.severity, title: f.title })) },
          'findings opened',
        );
      }
      if (result.resolved.length > 0) {
        this.parts.logger.info({ findings: result.resolved.map((f) => ({ id: f.id, category: f.category })) }, 'findings resolved');
      }
      try {
        this.parts.onCycle?.({ open: this.tracker.openFindings(), opened: result.opened, resolved: result.resolved });
      } catch (err) {
        this.parts.logger.error({ err }, 'post-cycle hook failed');
      }
      return result.changed.length;
    } finally {
      end();
      this.cycleRunning = false;
    }
  }

  /**
   * Commits the cycle's batch after any earlier ones that could not be written. A failed commit (disk full, I/O
   * error) keeps its batch for the next cycle instead of dropping it: the tracker already counts its findings as
   * stored, and a later batch's read positions would otherwise move past the lines they came from.
   */
  private commitOrKeep(batch: CommitBatch): void {
    const store = this.parts.store;
    const batches = [...this.unstored, batch];
    try {
      store.commit(...batches);
    } catch (err) {
      this.unstored = foldBatches(batches);
      this.metrics.storeCommitFailures.inc();
      const code = (err as { code?: string }).code;
      this.writeFailure = {
        code: code ?? null,
        message: err instanceof Error ? err.message : String(err),
        since: this.writeFailure?.since ?? new Date().toISOString(),
        cyclesKept: (this.writeFailure?.cyclesKept ?? 0) + 1,
      };
      this.parts.logger.error({ err, code, cycles: batches.length }, 'storing the detection cycle failed; it is retried with the next cycle');
      // A full disk: retention frees pages inside the database file for the retry.
      if (code === 'SQLITE_FULL') void store.prune().catch((e: unknown) => this.parts.logger.error({ err: e }, 'retention pruning failed'));
      return;
    }
    if (this.unstored.length > 0) this.parts.logger.info('stored the detection cycles kept while the store could not write');
    this.unstored = [];
    this.writeFailure = null;
    // The search index follows in slices after the cycle, so neither waits for the other.
    void store.maintainSearchIndex().catch((err: unknown) => this.parts.logger.error({ err }, 'search indexing failed'));
  }

  private sourceStatuses(): SourceStatus[] {
    return [...this.parts.collectors.map((c) => c.status()), ...(this.parts.unavailable ?? [])];
  }

  /** The /v1/status body. */
  status(): Status {
    const { config, store } = this.parts;
    const model = this.parts.modelStatus?.() ?? { state: 'none' as const, id: null, reason: config.model ? null : 'no model configured' };
    return {
      mode: config.mode,
      nodeName: config.nodeName,
      version: VERSION,
      startedAt: this.startedAt,
      sources: this.sourceStatuses(),
      model,
      store: { path: store.path, sizeBytes: store.sizeBytes(), recoveredFrom: store.recoveredFrom, writeFailure: this.writeFailure },
      // A configured model that is merely not loaded yet (lazy) still serves diagnoses.
      rulesOnly: (!config.model && !config.llm.backend) || model.state === 'refused' || model.state === 'failed',
    };
  }

  /** Starts listening, starts every source, runs the first cycle, then cycles on the interval. */
  async start(): Promise<void> {
    const { config, logger } = this.parts;
    const l = config.listen;
    if (l.kind === 'unix') {
      await this.api.listen({ path: l.path });
      this.address = `unix:${l.path}`;
    } else {
      const addr = await this.api.listen({ host: l.host, port: l.port });
      this.address = addr;
    }
    logger.info({ url: this.address, listen: formatListen(l) }, `nodesage serving on ${this.address}`);
    if (config.auth.socket) {
      const socket = localSocketPath(config);
      try {
        await this.serving.listenSocket(socket);
        logger.info({ socket }, `nodesage serving on unix:${socket} (no token needed; mode 0600)`);
      } catch (err) {
        // The network listener works without it; people on the node then need a token.
        logger.error({ err, socket }, 'cannot serve the node-local socket');
      }
    }
    if (this.parts.store.recoveredFrom) {
      logger.warn({ movedTo: this.parts.store.recoveredFrom }, 'started with a fresh database; the corrupt one was kept aside');
    }
    // One broken source never stops the others.
    const results = await Promise.allSettled(this.parts.collectors.map((c) => c.start(this.sink)));
    results.forEach((r, i) => {
      if (r.status === 'rejected') logger.error({ err: r.reason, source: this.parts.collectors[i]!.name }, 'source failed to start');
    });
    this.cycle();
    this.firstCycleDone = true;
    const intervalMs = config.detectIntervalSeconds * 1000;
    this.timer = setInterval(() => void this.tick(intervalMs), intervalMs);
    // Pruning runs in slices between which requests and cycles are served.
    const prune = () => void this.parts.store.prune().catch((err: unknown) => logger.error({ err }, 'retention pruning failed'));
    this.pruneTimer = setInterval(prune, 3_600_000);
    this.pruneTimer.unref();
    prune();
  }

  /** Stops sources, flushes a last cycle, closes the API and the store, disposes native objects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const { logger } = this.parts;
    clearInterval(this.timer);
    // A tick waiting on its sources' reads sees this and leaves the last cycle to stop().
    this.timer = undefined;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await Promise.allSettled(this.parts.collectors.map((c) => c.stop()));
    try {
      this.stopping = false;
      this.cycle();
    } catch (err) {
      logger.error({ err }, 'final detection cycle failed');
    } finally {
      this.stopping = true;
    }
    await this.api.close().catch((err: unknown) => logger.error({ err }, 'closing the API failed'));
    await this.serving.closeSocket().catch((err: unknown) => logger.error({ err }, 'closing the socket failed'));
    await this.parts.dispose?.().catch((err: unknown) => logger.error({ err }, 'disposing failed'));
    this.parts.store.close();
    this.metrics.close();
    logger.info('nodesage stopped');
  }
}
