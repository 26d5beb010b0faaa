/**
 * One load run of test/bench/history.ts, in a process of its own so the
 * client's garbage collection never shows up as the daemon's latency:
 *
 *   node test/bench/history-load.ts OPTIONS.json    (a file: {"url","method","paths","bodies","rate","seconds","warmUpSeconds"})
 *
 * Every request carries `accept-encoding: gzip, deflate, br`, as browsers
 * and Node's fetch send it (Prometheus sends gzip); autocannon counts the
 * bytes as they cross the socket and never decodes them.
 *
 * It first drives the same requests for `warmUpSeconds` and discards them: a fresh
 * autocannon process spends its first seconds compiling itself, and that
 * alone gave 12-17 ms of p99 against a server that does nothing. Then it
 * prints `warm`, waits for a line on stdin (the caller resets its probes)
 * and runs the measured load.
 *
 * Prints autocannon's result as one JSON line.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

// A file, not an argument: thousands of distinct paths exceed what one argument of a process may hold.
const o = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as {
  url: string;
  method: 'GET' | 'POST';
  paths: string[];
  bodies?: string[];
  rate: number;
  seconds: number;
  /** Seconds of the same load first, not measured. */
  warmUpSeconds: number;
};
let i = 0;
const run = (duration: number) =>
  autocannon({
    url: o.url,
    connections: 10,
    overallRate: o.rate,
    duration,
    requests: [
      {
        method: o.method,
        setupRequest: (req) => {
          const k = i++;
          const body = o.bodies?.[k % o.bodies.length];
          const headers: Record<string, string> = { 'accept-encoding': 'gzip, deflate, br', ...(body ? { 'content-type': 'application/json' } : {}) };
          return { ...req, path: o.paths[k % o.paths.length]!, headers, ...(body ? { body } : {}) };
        },
      },
    ],
  });
await run(o.warmUpSeconds);
process.stdout.write('warm\n');
await new Promise<void>((res) => process.stdin.once('data', () => res()));
process.stdin.pause();
const r = await run(o.seconds);
process.stdout.write(
  `${JSON.stringify({ latency: r.latency, '2xx': r['2xx'], non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, bytes: r.throughput.total, requests: r.requests.total })}\n`,
);
