/**
 * One load run of test/bench/history.ts, in a process of its own so the
 * client's garbage collection never shows up as the daemon's latency:
 *
 *   node test/bench/history-load.ts OPTIONS.json    (a file: {"url","method","paths","bodies","rate","seconds"})
 *
 * Every request carries `accept-encoding: gzip, deflate, br`, as browsers
 * and Node's fetch send it (Prometheus sends gzip); autocannon counts the
 * bytes as they cross the socket and never decodes them.
 *
 * Prints autocannon's result as one JSON line.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

// A file, not an argument: thousands of distinct paths exceed what one argument of a process may hold.
const o = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as { url: string; method: 'GET' | 'POST'; paths: string[]; bodies?: string[]; rate: number; seconds: number };
let i = 0;
const r = await autocannon({
  url: o.url,
  connections: 10,
  overallRate: o.rate,
  duration: o.seconds,
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
process.stdout.write(
  `${JSON.stringify({ latency: r.latency, '2xx': r['2xx'], non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts, bytes: r.throughput.total, requests: r.requests.total })}\n`,
);
