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

/** A hwmon sensor (`hwmonN/tempK_label` and `_input`) or a thermal zone (`type` and `temp`), in millidegrees. */
function sensor(root: string, where: string, label: string, milli: string): void {
  const [name, value] = where.startsWith('thermal_zone') ? ['type', 'temp'] : [`${where.split('/')[1]}_label`, `${where.split('/')[1]}_input`];
  const dir = where.startsWith('thermal_zone') ? `class/thermal/${where}` : `class/hwmon/${where.split('/')[0]}`;
  write(root, `${dir}/${name}`, label);
  write(root, `${dir}/${value}`, milli);
}

describe('readCpuTemperature', () => {
  it('prefers the package sensor of hwmon over cores and thermal zones', async () => {
    const root = tempDir('sysfs-');
    sensor(root, 'hwmon0/temp1', 'Core 0', '50000');
    sensor(root, 'hwmon1/temp1', 'Package id 0', '61500');
    sensor(root, 'thermal_zone0', 'x86_pkg_temp', '70000');
    expect(await readCpuTemperature(root)).toBe(61.5);
  });

  it('averages the cores when there is no package sensor', async () => {
    const root = tempDir('sysfs-');
    sensor(root, 'hwmon0/temp2', 'Core 0', '50000');
    sensor(root, 'hwmon0/temp3', 'Core 1', '55000');
    expect(await readCpuTemperature(root)).toBe(52.5);
  });

  it('falls back to the CPU thermal zone (a Raspberry Pi), skipping other zones', async () => {
    const root = tempDir('sysfs-');
    sensor(root, 'thermal_zone0', 'acpitz', '30000');
    sensor(root, 'thermal_zone1', 'cpu-thermal', '48312');
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
