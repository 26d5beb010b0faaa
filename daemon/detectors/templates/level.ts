/**
 * Severity of a log line from its own text, for marking error templates.
 *
 * The first level marker in the line decides, so an INFO line that mentions
 * "error" as data stays info: klog headers (`E0929 09:08:03.6 ...`),
 * `level=error` / `"level":"error"` / `lvl=eror` / `severity=...` fields,
 * `[error]`-style brackets and upper-case level words (`ERROR`, `FATAL`,
 * `[WARNING]`). Lines without a marker are errors only when they start like
 * one: `panic:`, `fatal error:`, `error:`, a Python traceback header, or an
 * exception (`java.lang.IllegalStateException: ...`, `ConnectionError: ...`,
 * `Exception in thread "main" ...`).
 */
import type { LogLine } from '../../core/types.js';

/** Severity classes the miner tells apart. */
export type LineLevel = 'error' | 'warning' | 'info' | 'debug';

const WORDS: Record<string, LineLevel> = {
  trace: 'debug',
  debug: 'debug',
  dbug: 'debug',
  info: 'info',
  information: 'info',
  notice: 'info',
  warn: 'warning',
  warning: 'warning',
  error: 'error',
  eror: 'error',
  err: 'error',
  fatal: 'error',
  crit: 'error',
  critical: 'error',
  panic: 'error',
  severe: 'error',
  alert: 'error',
  emerg: 'error',
  emergency: 'error',
};

const KLOG = /^([IWEF])\d{4} \d{2}:\d{2}:\d{2}/;
// Any of the level markers; the leftmost one in the line wins.
const MARKER =
  /(?:^|[^\w.-])(?:level|lvl|severity|loglevel)\s*[=:]\s*"?([A-Za-z]+)|"(?:level|lvl|severity|@l)"\s*:\s*"([A-Za-z]+)"|\[(error|warn|warning|notice|info|debug|crit|alert|emerg|fatal)\]|\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|CRIT|PANIC|SEVERE|EMERG|ALERT)\b/;
const STARTS_AS_ERROR = /^\s*(?:panic:|fatal error:|fatal:|error:|traceback \(most recent call last\))/i;
const STARTS_AS_EXCEPTION = /^\s*(?:Exception in thread |(?:[A-Za-z_$][\w$]*\.)*[A-Z]\w*(?:Exception|Error)(?::|$))/;

/** The level a line's text declares, or null when it declares none. */
export function textLevel(text: string): LineLevel | null {
  const k = KLOG.exec(text);
  if (k) return k[1] === 'I' ? 'info' : k[1] === 'W' ? 'warning' : 'error';
  const m = MARKER.exec(text);
  if (m) {
    const word = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? '').toLowerCase();
    const level = WORDS[word];
    if (level) return level;
  }
  return STARTS_AS_ERROR.test(text) || STARTS_AS_EXCEPTION.test(text) ? 'error' : null;
}

/** True when a line is error level: syslog priority 0-3 (emerg..err), or its text says so. */
export function isErrorLine(line: Pick<LogLine, 'text' | 'priority'>): boolean {
  if (line.priority !== undefined && line.priority <= 3) return true;
  return textLevel(line.text) === 'error';
}
