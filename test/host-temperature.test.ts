/**
 * The CPU temperature read from a sysfs tree (real files in a temporary
 * folder laid out as /sys is), without a shell command.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCpuTemperature } from '../daemon/collectors/temperature.js';
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
