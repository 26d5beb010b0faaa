/**
 * Loaded into the daemon under test with `node --import` by test/bench/history.ts:
 * measures the daemon's event-loop delay with perf_hooks the same way for any
 * build (one that exports its own gauge and one that does not), and answers
 * over the IPC channel so the measurement never goes through the HTTP server
 * it measures.
 *
 *   {cmd: 'reset'} → {ok: true}                  starts a new window
 *   {cmd: 'read'}  → {p50Ms, p99Ms, maxMs, meanMs, serverP50Ms, serverP99Ms, rssBytes, heapUsedBytes, heapTotalBytes, externalBytes,
 *                     arrayBuffersBytes, oldSpaceBytes, v8MallocedBytes, v8PeakMallocedBytes, anonBytes, fileBytes,
 *                     shmemBytes, brkBytes, anonMmapBytes, cpuMicros}
 *   {cmd: 'gc'}    → {ok: true} after a full garbage collection (run after the last measurement only)
 *
 * cpuMicros is the daemon's CPU time so far (user + system, all threads): per
 * request, it is what a route costs whatever else shares the machine.
 * serverP50Ms/serverP99Ms: from the HTTP server's `request` event to the
 * response's `finish` (its last bytes handed to the kernel), the part of a
 * request's latency spent in the daemon once it has read the request.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Resident memory by kind (kB in /proc/self/status): anonymous (heaps, malloc), file-backed, shared (the WAL index). */
function rssParts(): { anonBytes: number; fileBytes: number; shmemBytes: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { anonBytes: kb('RssAnon'), fileBytes: kb('RssFile'), shmemBytes: kb('RssShmem') };
}

/** Resident bytes of the brk heap (glibc's main malloc arena) and of the other anonymous mappings (V8's pages, thread arenas, large mallocs). */
function anonMappings(): { brkBytes: number; anonMmapBytes: number } {
  let brk = 0;
  let mmap = 0;
  let kind: 'brk' | 'anon' | null = null;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) kind = head[1] === '[heap]' ? 'brk' : head[1] === '' ? 'anon' : null;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind === 'brk') brk += Number(rss[1]) * 1024;
    if (rss && kind === 'anon') mmap += Number(rss[1]) * 1024;
  }
  return { brkBytes: brk, anonMmapBytes: mmap };
}

if (process.send) {
  // 1 ms sampling: the targets are a few milliseconds, the default 10 ms would hide them.
  const RES_MS = 1;
  const h = monitorEventLoopDelay({ resolution: RES_MS });
  // The histogram records the whole timer interval: the delay is what exceeds it.
  const delay = (ns: number) => Math.max(0, ns / 1e6 - RES_MS);
  h.enable();
  // Every server of the process (TCP and the node-local socket) emits 'request' through this prototype.
  const served = createHistogram();
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]) {
    if (event === 'request') {
      const t0 = process.hrtime.bigint();
      (args[1] as http.ServerResponse).once('finish', () => served.record(Math.max(1, Number(process.hrtime.bigint() - t0))));
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof emit;
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'reset') {
      h.reset();
      served.reset();
      process.send?.({ ok: true });
    } else if (m.cmd === 'read') {
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.send?.({
        p50Ms: delay(h.percentile(50)),
        p99Ms: delay(h.percentile(99)),
        maxMs: delay(h.max),
        meanMs: delay(h.mean),
        serverP50Ms: served.count ? served.percentile(50) / 1e6 : Number.NaN,
        serverP99Ms: served.count ? served.percentile(99) / 1e6 : Number.NaN,
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        heapTotalBytes: mem.heapTotal,
        externalBytes: mem.external,
        arrayBuffersBytes: mem.arrayBuffers,
        oldSpaceBytes: v8.getHeapSpaceStatistics().find((x) => x.space_name === 'old_space')?.space_size ?? 0,
        // V8's own malloc (compiler zones, tables): outside the heap, inside "anonymous".
        v8MallocedBytes: v8.getHeapStatistics().malloced_memory,
        v8PeakMallocedBytes: v8.getHeapStatistics().peak_malloced_memory,
        ...rssParts(),
        ...anonMappings(),
        cpuMicros: cpu.user + cpu.system,
      });
    } else if (m.cmd === 'gc') {
      // A diagnosis, not a fix: how much of what stays resident after a load is garbage V8 has not collected.
      v8.setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      process.send?.({ ok: true });
    }
  });
  // The IPC channel must not keep a stopping daemon alive.
  process.channel?.unref();
}
