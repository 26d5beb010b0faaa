/** Rule hints: Failing hardware and storage: machine checks and ECC, failing disks, filesystem errors. */
import { describeNode, type HintFamily, kernelLog, medium, safeArg, uniq } from './context.js';

/** Hints of this family, by category. */
export const HARDWARE_HINTS = {
  HardwareError: (c) => {
    const reason = c.str('reason') ?? '';
    const memory = /Memory/.test(reason);
    const pcie = /PCIe/.test(reason);
    const what = memory ? 'memory (ECC)' : pcie ? 'PCIe' : /MachineCheck/.test(reason) ? 'CPU machine check' : 'hardware';
    const uncorrected = /Uncorrectable|Fatal/.test(reason);
    return {
      summary: `The hardware of node ${c.node} reported ${uncorrected ? 'an uncorrectable' : 'a'} ${what} error${c.str('dimm') ? ` on ${c.str('dimm')}` : ''}.`,
      probableCause: uncorrected
        ? 'A hardware component failed in a way the hardware could not correct: data was lost and the affected process or the whole node may have crashed.'
        : 'The hardware detected and corrected an error. Single ones are harmless; a rising rate means a DIMM, CPU, PCIe link or device is degrading.',
      nextSteps: [
        'Look at the error counters and which component (DIMM slot, CPU bank, PCIe device) they name.',
        uncorrected ? 'Drain the node and have the component replaced.' : 'Watch the rate; schedule a replacement if it keeps rising.',
      ],
      commands: uniq([
        kernelLog('Hardware Error'),
        ...(memory ? ['grep -r . /sys/devices/system/edac/mc/mc0'] : []),
        ...(pcie ? ['lspci -vv'] : []),
        describeNode(c),
      ]),
      confidence: medium,
    };
  },
  DiskFailure: (c) => {
    const dev = safeArg(c.str('device') ?? c.str('port'));
    const smart = /^Disk(BadBlock|HealthFailed|SectorsReallocated)$/.test(c.str('reason') ?? '');
    const path = dev && !dev.startsWith('ata') ? `/dev/${dev}` : undefined;
    return {
      summary: `Disk${dev ? ` ${dev}` : ''} on node ${c.node} is failing${smart ? ' (SMART)' : ' (I/O errors)'}.`,
      probableCause: smart
        ? 'The disk reports its own failure: unreadable, pending or reallocated sectors or a failed health check. Data on it is at risk and it will get worse.'
        : 'Reads or writes to the device fail below the filesystem: a failing disk, cable, controller, or a cloud volume that went away. Filesystems on it will report errors next.',
      nextSteps: ['Check the disk health and error log.', 'Move workloads off the node and replace the disk; restore data that lives only there.'],
      commands: uniq([
        ...(path ? [`smartctl -a ${path}`] : []),
        kernelLog(dev ?? 'I/O error'),
        'lsblk -o NAME,SIZE,MODEL,SERIAL,STATE',
        'journalctl -u smartd -u smartmontools --since -1d --no-pager',
        describeNode(c),
      ]),
      confidence: dev ? 'high' : medium,
    };
  },
  FilesystemError: (c) => {
    const dev = safeArg(c.str('device'));
    const readOnly = c.str('reason') === 'ReadonlyFilesystem' || c.str('reason') === 'XfsShutdown';
    return {
      summary: `The kernel reported filesystem errors${dev ? ` on ${dev}` : ''} on node ${c.node}${readOnly ? '; it is now read-only or shut down' : ''}.`,
      probableCause: readOnly
        ? 'The filesystem hit an error and the kernel stopped writes to protect it: everything that writes there (logs, images, volumes) fails until it is repaired and remounted.'
        : 'The filesystem found corruption or the block device returned I/O errors; ext4/xfs may remount it read-only, so writes (logs, images, volumes) would fail.',
      nextSteps: ['Check whether the filesystem is now mounted read-only.', 'Check the disk health (SMART, cloud volume status).', 'Plan a repair (fsck/xfs_repair) with the node drained.'],
      commands: uniq([kernelLog('I/O error'), kernelLog(dev ? dev : 'EXT4-fs error'), 'findmnt -o TARGET,SOURCE,FSTYPE,OPTIONS', 'lsblk', describeNode(c)]),
      confidence: dev ? 'high' : medium,
    };
  },
} satisfies HintFamily;
