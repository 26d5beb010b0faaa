/**
 * The host source's readers that replaced a system-information library:
 * memory from /proc/meminfo (the host root's), and GPUs from nvidia-smi's CSV.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostCollector, parseMeminfo, parseNvidiaSmi } from '../daemon/collectors/host.js';
import { type HostRoot, makeHostRoot } from './helpers/host-root.js';

let host: HostRoot | undefined;
afterEach(() => host?.cleanup());

const MEMINFO = `MemTotal:        8048576 kB
MemFree:          512000 kB
MemAvailable:    2097152 kB
Buffers:          100000 kB
Cached:          1000000 kB
SwapTotal:       1048576 kB
SwapFree:         786432 kB
`;

describe('host readers', () => {
  it('reads memory and swap from meminfo, and estimates available memory on kernels without MemAvailable', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalBytes: 8048576 * 1024, availableBytes: 2097152 * 1024, swapTotalBytes: 1048576 * 1024, swapUsedBytes: 262144 * 1024 });
    const old = MEMINFO.replace(/^MemAvailable.*\n/m, '');
    expect(parseMeminfo(old)?.availableBytes).toBe((512000 + 100000 + 1000000) * 1024);
    expect(parseMeminfo('')).toBeUndefined();
  });

  it('parses nvidia-smi CSV, leaving out fields the driver reports as not supported', () => {
    const csv = 'NVIDIA A2, 15356, 1024, 37, 41\nNVIDIA Jetson, [N/A], [N/A], 5, 40\n';
    expect(parseNvidiaSmi(csv)).toEqual([
      { model: 'NVIDIA A2', vendor: 'NVIDIA', memoryTotalMiB: 15356, memoryUsedMiB: 1024, utilizationPct: 37, temperatureC: 41 },
      { model: 'NVIDIA Jetson', vendor: 'NVIDIA', utilizationPct: 5, temperatureC: 40 },
    ]);
  });

  it("a sample of a host root carries that root's memory, not the machine's", async () => {
    host = makeHostRoot();
    mkdirSync(join(host.root, 'proc'), { recursive: true });
    writeFileSync(join(host.root, 'proc/meminfo'), MEMINFO);
    const snap = await new HostCollector({ hostRoot: host.root }).sample();
    expect(snap.memory).toEqual(parseMeminfo(MEMINFO));
  });
});
