/**
 * Wiring only: config → store → collectors, detectors → daemon. No logic here.
 */
import pino, { type Logger } from 'pino';
import { HostCollector } from './collectors/host.js';
import type { Config } from './config.js';
import type { Collector } from './core/types.js';
import { Daemon } from './daemon.js';
import { createDetectors } from './detectors/index.js';
import { Store } from './store/store.js';

/** Creates the daemon's logger (JSON lines on stdout). */
export function createLogger(config: Pick<Config, 'logLevel' | 'nodeName'>): Logger {
  return pino({ level: config.logLevel, base: { node: config.nodeName }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** Builds a daemon from a validated config. */
export function createDaemon(config: Readonly<Config>, logger: Logger): Daemon {
  const store = Store.open({
    dir: config.dataDir,
    logger,
    maxAgeDays: config.retention.maxAgeDays,
    maxSizeMB: config.retention.maxSizeMB,
  });
  const collectors: Collector[] = [];
  if (config.sources.host) {
    collectors.push(new HostCollector({ hostRoot: config.hostRoot, intervalMs: config.hostIntervalSeconds * 1000, logger: logger.child({ source: 'host' }) }));
  }
  return new Daemon({
    config,
    logger,
    store,
    detectors: createDetectors(config.detectors),
    collectors,
  });
}
