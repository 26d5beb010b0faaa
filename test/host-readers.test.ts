/**
 * The host source's readers that replaced a system-information library:
 * memory from /proc/meminfo and the CPU temperature and NICs from /sys (the
 * host root's), and GPUs from nvidia-smi's CSV.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
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

  it("a sample of a host root carries that root's CPU temperature and physical NICs, not the machine's", async () => {
    host = makeHostRoot();
    const write = (path: string, text: string) => {
      mkdirSync(join(host!.root, path, '..'), { recursive: true });
      writeFileSync(join(host!.root, path), `${text}\n`);
    };
    write('sys/class/hwmon/hwmon3/temp1_label', 'Package id 0');
    write('sys/class/hwmon/hwmon3/temp1_input', '57250');
    // A NIC as sysfs links it: class/net/<iface> -> ../../devices/<bus path>/net/<iface>.
    const device = 'sys/devices/platform/fd580000.ethernet/net/enp9s0';
    write(`${device}/operstate`, 'up');
    write(`${device}/speed`, '2500');
    write(`${device}/mtu`, '1500');
    mkdirSync(join(host.root, 'sys/class/net'), { recursive: true });
    symlinkSync('../../devices/platform/fd580000.ethernet/net/enp9s0', join(host.root, 'sys/class/net/enp9s0'));
    const snap = await new HostCollector({ hostRoot: host.root }).sample();
    expect(snap.temperatures).toEqual([{ label: 'cpu', celsius: 57.3 }]);
    expect(snap.network).toEqual([{ iface: 'enp9s0', operstate: 'up', speedMbps: 2500, mtu: 1500 }]);
  });
});
