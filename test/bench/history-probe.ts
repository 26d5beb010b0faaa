/**
 * Loaded into the daemon under test with `node --import` by test/bench/history.ts:
 * measures the daemon's event-loop delay with perf_hooks the same way for any
 * build (one that exports its own gauge and one that does not), and answers
 * over the IPC channel so the measurement never goes through the HTTP server
 * it measures.
 *
 *   {cmd: 'reset'} → {ok: true}                  starts a new window
 *   {cmd: 'read'}  → {p50Ms, p99Ms, maxMs, meanMs, rssBytes, heapUsedBytes, heapTotalBytes, externalBytes, cpuMicros}
 *
 * cpuMicros is the daemon's CPU time so far (user + system, all threads): per
 * request, it is what a route costs whatever else shares the machine.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

if (process.send) {
  // 1 ms sampling: the targets are a few milliseconds, the default 10 ms would hide them.
  const RES_MS = 1;
  const h = monitorEventLoopDelay({ resolution: RES_MS });
  // The histogram records the whole timer interval: the delay is what exceeds it.
  const delay = (ns: number) => Math.max(0, ns / 1e6 - RES_MS);
  h.enable();
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'reset') {
      h.reset();
      process.send?.({ ok: true });
    } else if (m.cmd === 'read') {
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.send?.({
        p50Ms: delay(h.percentile(50)),
        p99Ms: delay(h.percentile(99)),
        maxMs: delay(h.max),
        meanMs: delay(h.mean),
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        heapTotalBytes: mem.heapTotal,
        externalBytes: mem.external,
        cpuMicros: cpu.user + cpu.system,
      });
    }
  });
  // The IPC channel must not keep a stopping daemon alive.
  process.channel?.unref();
}
