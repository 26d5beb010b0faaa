/**
 * `nodesage capture --out DIR`: runs every configured source for a short
 * while, from scratch (no checkpoints: the recent tail of each log, the
 * kernel ring buffer, the current Kubernetes state), and writes what it saw as
 * a node snapshot bundle, redacted and size-capped. Nothing is sent anywhere:
 * the operator decides where the folder goes.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { CodedError } from './errors.js';
import type { BundleMeta } from './collectors/bundle.js';
import { type WriteBundleOptions, type WriteBundleResult, writeBundle } from './collectors/bundle-writer.js';
import { noCheckpoints } from './collectors/checkpoints.js';
import { readBootTimeMs } from './collectors/kmsg.js';
import type { Config } from './config.js';
import type { Signal, SourceStatus } from './core/types.js';
import { createCollectors } from './main.js';
import { createRedactor } from './redact.js';

/** Options of capture. */
export interface CaptureOptions {
  /** How long the sources run, in ms. Defaults to 5000. */
  durationMs?: number;
  /** Size caps per part. Defaults to the bundle writer's. */
  caps?: Omit<WriteBundleOptions, 'redact'>;
}

/** What capture wrote and how each source did. */
export interface CaptureResult extends WriteBundleResult {
  meta: BundleMeta;
  sources: SourceStatus[];
  signals: number;
}

/** Raised when the output folder exists and is not empty. */
export class CaptureOutputError extends CodedError {
  readonly code = 'CAPTURE_OUTPUT_NOT_EMPTY';
}

/** Captures a bundle of this node into `outDir`. */
export async function capture(config: Readonly<Config>, logger: Logger, outDir: string, opts: CaptureOptions = {}): Promise<CaptureResult> {
  if (existsSync(outDir) && readdirSync(outDir).length > 0) {
    throw new CaptureOutputError(`${outDir} exists and is not empty; choose a new folder`);
  }
  const { collectors, unavailable } = await createCollectors(config, logger, noCheckpoints);
  const signals: Signal[] = [];
  const sink = (batch: Signal[]) => {
    for (const s of batch) if (s.type !== 'checkpoint') signals.push(s);
  };
  await Promise.allSettled(collectors.map((c) => c.start(sink)));
  await new Promise((r) => setTimeout(r, opts.durationMs ?? 5000));
  // Idle sources poll rarely: read what they have now, before they stop.
  await Promise.allSettled(collectors.map((c) => c.catchUp?.(Number.POSITIVE_INFINITY)));
  const sources = [...collectors.map((c) => c.status()), ...unavailable];
  await Promise.allSettled(collectors.map((c) => c.stop()));
  const bootMs = await readBootTimeMs(config.hostRoot);
  const meta: BundleMeta = { nodeName: config.nodeName, capturedAt: new Date().toISOString(), ...(bootMs === undefined ? {} : { bootTime: new Date(bootMs).toISOString() }) };
  const result = writeBundle(outDir, meta, signals, { ...opts.caps, redact: createRedactor([...config.redactPatterns]) });
  return { ...result, meta, sources, signals: signals.length };
}
