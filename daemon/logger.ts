/**
 * The daemon's logger: JSON lines, one place to configure them.
 */
import pino, { type Logger } from 'pino';
import type { Config } from './config.js';

/** Creates the daemon's logger (JSON lines on stdout, or another stream). */
export function createLogger(config: Pick<Config, 'logLevel' | 'nodeName'>, stream?: NodeJS.WritableStream): Logger {
  const opts = { level: config.logLevel, base: { node: config.nodeName }, timestamp: pino.stdTimeFunctions.isoTime };
  return stream ? pino(opts, stream) : pino(opts);
}
