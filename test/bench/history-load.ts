/**
 * One load run of test/bench/history.ts, in a process of its own so the
 * client's garbage collection never shows up as the daemon's latency:
 *
 *   node test/bench/history-load.ts OPTIONS.json    (a file: {"url","method","paths","bodies","rate","seconds","warmUpSeconds"})
 *
 * The load tool is loadtest (npm) in its requests-per-second mode: it sends
 * one request every 1000/rate ms whatever the answers (an open loop), on
 * keep-alive connections, opening another connection when every open one is
 * waiting. That is a fixed rate. autocannon's `overallRate`, used before,
 * only caps each connection at rate/connections requests per calendar
 * second: its connections send back to back until the second's quota is
 * spent, so a route of 1.3 ms was driven at its full speed, ten requests
 * always in flight, for two thirds of every second, and the p99 it reported
 * was ten requests' work.
 *
 * Every request carries `accept-encoding: gzip, deflate, br`, as browsers
 * and Node's fetch send it (Prometheus sends gzip).
 *
 * It first drives the same requests for `warmUpSeconds` and discards them: a
 * fresh load-tool process spends its first seconds compiling itself. Then it
 * prints `warm`, waits for a line on stdin (the caller resets its probes)
 * and runs the measured load.
 *
 * Prints the run's figures as one JSON line (latency from each request's
 * creation to its last body byte, in ms).
 */
import { readFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { loadTest } from 'loadtest';

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

/** The placeholder path loadtest replaces with each request's own. */
const SLOT = '/__path__';
let nextPath = 0;
let nextBody = 0;

interface Answer {
  statusCode: number;
  headers: Record<string, string | undefined>;
  body: string;
}

/** http.request as loadtest hands it to a request generator. */
type Send = (params: unknown, onResponse: (res: IncomingMessage) => void) => ClientRequest;

async function run(seconds: number) {
  const elapsed: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let bytes = 0;
  const options = {
    url: `${o.url}${SLOT}`,
    method: o.method,
    requestsPerSecond: o.rate,
    maxSeconds: seconds,
    agentKeepAlive: true,
    quiet: true,
    headers: { 'accept-encoding': 'gzip, deflate, br' },
    indexParam: SLOT,
    indexParamCallback: () => o.paths[nextPath++ % o.paths.length] as string,
    ...(o.bodies ? { contentType: 'application/json', body: () => o.bodies![nextBody++ % o.bodies!.length] as string } : {}),
    // loadtest's own latencies are whole milliseconds: each request's is timed here, from its creation to its last byte.
    requestGenerator: (_o: unknown, params: unknown, request: Send, connect: (res: IncomingMessage) => void) => {
      const t0 = process.hrtime.bigint();
      return request(params, (res) => {
        res.once('end', () => elapsed.push(Number(process.hrtime.bigint() - t0) / 1e6));
        connect(res);
      });
    },
    statusCallback: (error: unknown, answer: Answer | undefined) => {
      if (!answer) {
        errors++;
        return;
      }
      if (answer.statusCode >= 200 && answer.statusCode < 300 && !error) ok++;
      else non2xx++;
      bytes += Number(answer.headers['content-length'] ?? Buffer.byteLength(answer.body));
    },
  };
  // The callback form, and a cast: the package's type declarations predate the promise it also returns and the
  // string form of indexParam its code takes.
  await new Promise<void>((res, rej) => loadTest(options as unknown as Parameters<typeof loadTest>[0], (err: unknown) => (err ? rej(err) : res())));
  // Answers that landed after the run's end are not counted by loadtest either.
  elapsed.length = Math.min(elapsed.length, ok + non2xx);
  elapsed.sort((a, b) => a - b);
  const at = (p: number) => elapsed[Math.min(elapsed.length - 1, Math.ceil((p / 100) * elapsed.length) - 1)] ?? 0;
  return { latency: { p50: at(50), p99: at(99), max: elapsed[elapsed.length - 1] ?? 0 }, '2xx': ok, non2xx, errors, timeouts: 0, bytes, requests: elapsed.length };
}

await run(o.warmUpSeconds);
process.stdout.write('warm\n');
await new Promise<void>((res) => process.stdin.once('data', () => res()));
process.stdin.pause();
process.stdout.write(`${JSON.stringify(await run(o.seconds))}\n`);
