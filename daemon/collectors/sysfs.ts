/**
 * CPU temperature and network interfaces from sysfs, read asynchronously.
 * systeminformation's cpuTemperature() and networkInterfaces() run shell
 * commands with execSync on every call (`cat /sys/class/thermal/...`, `ip
 * route`, nmcli, the DHCP leases): 100 ms or more of a blocked event loop on
 * a busy node at each host sample, which every API request arriving then
 * waited for.
 */
import { readFile, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Millidegrees as °C with one decimal, or null for a missing or nonsense reading. */
function celsius(milli: string | null): number | null {
  const v = milli === null ? Number.NaN : Number(milli);
  return Number.isFinite(v) && v > 0 ? Math.round(v / 100) / 10 : null;
}

/**
 * The CPU's temperature in °C, or null when the machine exposes none.
 * Preference, as systeminformation's: a hwmon package or die sensor
 * (`Package id 0`, `Tdie`, `Tctl`), else the mean of its `Core N` sensors,
 * else the first thermal zone whose type names the CPU (`x86_pkg_temp`,
 * `cpu-thermal` on a Raspberry Pi).
 * @param sysRoot the folder holding `class/hwmon` and `class/thermal`. Defaults to "/sys".
 */
export async function readCpuTemperature(sysRoot = '/sys'): Promise<number | null> {
  const hwmon = join(sysRoot, 'class/hwmon');
  const cores: number[] = [];
  for (const mon of await list(hwmon)) {
    for (const f of await list(join(hwmon, mon))) {
      if (!/^temp\d+_label$/.test(f)) continue;
      const label = await readText(join(hwmon, mon, f));
      const value = celsius(await readText(join(hwmon, mon, f.replace('_label', '_input'))));
      if (label === null || value === null) continue;
      if (/^(package id|tdie|tctl)/i.test(label)) return value;
      if (/^core \d+/i.test(label)) cores.push(value);
    }
  }
  if (cores.length > 0) return Math.round((cores.reduce((a, b) => a + b, 0) / cores.length) * 10) / 10;
  const thermal = join(sysRoot, 'class/thermal');
  for (const zone of await list(thermal)) {
    if (!zone.startsWith('thermal_zone')) continue;
    const type = await readText(join(thermal, zone, 'type'));
    if (type && /cpu|x86_pkg_temp/i.test(type)) {
      const value = celsius(await readText(join(thermal, zone, 'temp')));
      if (value !== null) return value;
    }
  }
  return null;
}

/** A physical network interface as sysfs describes it. */
export interface SysfsNic {
  iface: string;
  /** `up`, `down`, `unknown`... as the kernel says. */
  operstate: string;
  /** Link speed in Mbit/s, or null when the kernel has none (link down, virtual NIC in a VM). */
  speedMbps: number | null;
  mtu?: number;
}

/**
 * The physical network interfaces: every entry of `class/net` except the
 * loopback and the interfaces the kernel lists under `devices/virtual`
 * (bridges, veth pairs, tunnels, the CNI's own).
 * @param sysRoot the folder holding `class/net`. Defaults to "/sys".
 */
export async function readPhysicalNics(sysRoot = '/sys'): Promise<SysfsNic[]> {
  const net = join(sysRoot, 'class/net');
  const out: SysfsNic[] = [];
  for (const iface of await list(net)) {
    if (iface === 'lo') continue;
    const device = await realpath(join(net, iface)).catch(() => '');
    if (device === '' || device.includes('/devices/virtual/')) continue;
    const num = (text: string | null) => (text !== null && /^-?\d+$/.test(text) && Number(text) >= 0 ? Number(text) : null);
    const mtu = num(await readText(join(net, iface, 'mtu')));
    out.push({
      iface,
      operstate: (await readText(join(net, iface, 'operstate'))) ?? 'unknown',
      speedMbps: num(await readText(join(net, iface, 'speed'))),
      ...(mtu !== null ? { mtu } : {}),
    });
  }
  return out;
}
