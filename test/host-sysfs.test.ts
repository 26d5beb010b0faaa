/**
 * The CPU temperature and the physical network interfaces read from a sysfs
 * tree (real files and links in a temporary folder laid out as /sys is),
 * without a shell command.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCpuTemperature, readPhysicalNics } from '../daemon/collectors/sysfs.js';
import { tempDir } from './helpers/daemon-process.js';

function write(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), `${text}\n`);
}

describe('readCpuTemperature', () => {
  it('prefers the package sensor of hwmon over cores and thermal zones', async () => {
    const root = tempDir('sysfs-');
    write(root, 'class/hwmon/hwmon0/temp1_label', 'Core 0');
    write(root, 'class/hwmon/hwmon0/temp1_input', '50000');
    write(root, 'class/hwmon/hwmon1/temp1_label', 'Package id 0');
    write(root, 'class/hwmon/hwmon1/temp1_input', '61500');
    write(root, 'class/thermal/thermal_zone0/type', 'x86_pkg_temp');
    write(root, 'class/thermal/thermal_zone0/temp', '70000');
    expect(await readCpuTemperature(root)).toBe(61.5);
  });

  it('averages the cores when there is no package sensor', async () => {
    const root = tempDir('sysfs-');
    write(root, 'class/hwmon/hwmon0/temp2_label', 'Core 0');
    write(root, 'class/hwmon/hwmon0/temp2_input', '50000');
    write(root, 'class/hwmon/hwmon0/temp3_label', 'Core 1');
    write(root, 'class/hwmon/hwmon0/temp3_input', '55000');
    expect(await readCpuTemperature(root)).toBe(52.5);
  });

  it('falls back to the CPU thermal zone (a Raspberry Pi), skipping other zones', async () => {
    const root = tempDir('sysfs-');
    write(root, 'class/thermal/thermal_zone0/type', 'acpitz');
    write(root, 'class/thermal/thermal_zone0/temp', '30000');
    write(root, 'class/thermal/thermal_zone1/type', 'cpu-thermal');
    write(root, 'class/thermal/thermal_zone1/temp', '48312');
    expect(await readCpuTemperature(root)).toBe(48.3);
  });

  it('is null on a machine without sensors', async () => {
    expect(await readCpuTemperature(tempDir('sysfs-'))).toBeNull();
  });
});

describe('readPhysicalNics', () => {
  it('lists the interfaces backed by a device, with state, speed and MTU, and leaves out loopback and virtual ones', async () => {
    const root = tempDir('sysfs-');
    const nic = (name: string, device: string, files: Record<string, string>) => {
      for (const [f, text] of Object.entries(files)) write(root, `${device}/${f}`, text);
      mkdirSync(join(root, 'class/net'), { recursive: true });
      symlinkSync(join('../..', device), join(root, 'class/net', name));
    };
    nic('eth0', 'devices/pci0000:00/0000:00:03.0/net/eth0', { operstate: 'up', speed: '10000', mtu: '1500' });
    // Link down: the kernel refuses to read speed (EINVAL), or says -1.
    nic('eth1', 'devices/pci0000:00/0000:00:04.0/net/eth1', { operstate: 'down', speed: '-1', mtu: '9000' });
    nic('lo', 'devices/virtual/net/lo', { operstate: 'unknown', mtu: '65536' });
    nic('cni0', 'devices/virtual/net/cni0', { operstate: 'up', mtu: '1450' });
    nic('veth1a2b', 'devices/virtual/net/veth1a2b', { operstate: 'up', speed: '10000', mtu: '1450' });
    expect(await readPhysicalNics(root)).toEqual([
      { iface: 'eth0', operstate: 'up', speedMbps: 10000, mtu: 1500 },
      { iface: 'eth1', operstate: 'down', speedMbps: null, mtu: 9000 },
    ]);
  });

  it('is empty without a class/net folder', async () => {
    expect(await readPhysicalNics(tempDir('sysfs-'))).toEqual([]);
  });
});
