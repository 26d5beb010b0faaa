/**
 * The daemon's log for a person at a terminal: pino's JSON lines turned into
 * `08:00:01 INFO  message  key=value`, coloured by level. Anything that is
 * not a pino line passes through unchanged. Off a TTY the JSON stays as is
 * (collectors and `kubectl logs` parse it).
 */
import { Writable } from 'node:stream';
import { createStyle, type Style } from './format.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'node', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

/** Formats one pino JSON record; returns null when the line is not one. */
export function prettyLine(line: string, style: Style): string | null {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof rec.level !== 'number' || typeof rec.msg !== 'string') return null;
  const level = LEVELS[rec.level] ?? String(rec.level);
  const colour = rec.level >= 50 ? style.red : rec.level >= 40 ? style.yellow : rec.level >= 30 ? style.green : style.dim;
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 19) : new Date(Number(rec.time)).toISOString().slice(11, 19);
  const fields: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (HIDDEN.has(k)) continue;
    // An error shows its message; the stack is for the JSON log.
    if (k === 'err' && v && typeof v === 'object') fields.push(`err=${value((v as { message?: string }).message ?? v)}`);
    else fields.push(`${k}=${value(v)}`);
  }
  return `${style.dim(time)} ${colour(level.padEnd(5))} ${rec.msg}${fields.length ? `  ${style.dim(fields.join(' '))}` : ''}`;
}

/** A stream for pino that writes pretty lines to `out`. */
export function prettyStream(out: NodeJS.WritableStream, color: boolean): Writable {
  const style = createStyle(color);
  let buf = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      buf += chunk.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        out.write(`${prettyLine(line, style) ?? line}\n`);
        nl = buf.indexOf('\n');
      }
      cb();
    },
  });
}
