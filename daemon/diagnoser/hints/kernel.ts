/** Rule hints: What the kernel reports: node OOM, hung tasks, lockups, oopses and crash dumps, link state, conntrack, GPU Xid, thermal throttling. */
import { describeNode, type HintFamily, kernelLog, medium, podDescribe, safeArg } from './context.js';

const GPU_XID: Record<number, string> = {
  13: 'Xid 13 is a graphics engine exception, usually an application bug (out-of-bounds access)',
  31: 'Xid 31 is a GPU memory page fault, usually an application bug',
  43: 'Xid 43: the GPU stopped processing, usually after an application fault',
  45: 'Xid 45: the driver cleaned up after a killed or crashed process',
  48: 'Xid 48 is a double-bit ECC error: the GPU memory is failing',
  61: 'Xid 61 is an internal micro-controller error of the GPU',
  62: 'Xid 62 is an internal micro-controller halt of the GPU',
  63: 'Xid 63: an ECC page retirement or row remap was recorded',
  64: 'Xid 64: an ECC page retirement or row remap failed',
  74: 'Xid 74 is an NVLink error',
  79: 'Xid 79: the GPU has fallen off the bus (power, PCIe, overheating or hardware failure)',
  92: 'Xid 92: high single-bit ECC error rate',
  94: 'Xid 94 is a contained ECC error: the affected application must restart',
  95: 'Xid 95 is an uncontained ECC error: the GPU needs a reset',
  119: 'Xid 119 is a GSP firmware timeout',
  120: 'Xid 120 is a GSP firmware error',
};

/** Hints of this family, by category. */
export const KERNEL_HINTS = {
  KernelOOM: (c) => {
    const proc = c.str('process') ?? c.str('comm');
    return {
      summary: `The kernel OOM killer ran on node ${c.node}${proc ? ` and killed ${proc}` : ''}.`,
      probableCause: 'The node as a whole ran out of memory: pods without memory limits, system daemons, or overcommitted requests exceed the RAM.',
      nextSteps: ['Find which process was killed and who used the memory at that time.', 'Set memory limits on all pods and reserve memory for the system (kubelet systemReserved/kubeReserved).'],
      commands: [kernelLog('Out of memory'), 'free -m', describeNode(c), ...podDescribe(c)],
      confidence: medium,
    };
  },
  KernelHungTask: (c) => {
    const task = c.str('comm') ?? c.str('task') ?? c.str('process');
    const secs = c.num('seconds');
    return {
      summary: `A task${task ? ` (${task})` : ''} on node ${c.node} was blocked in the kernel${secs !== undefined ? ` for more than ${secs} s` : ''}.`,
      probableCause: 'A process waited on I/O that did not complete: a slow or failing disk, a hung network filesystem (NFS, iSCSI) or a saturated storage device.',
      nextSteps: ['Check disk and network storage health and latency at the time of the message.', 'Look for I/O errors and storage timeouts in the kernel log just before.'],
      commands: [kernelLog('blocked for more than'), 'cat /proc/pressure/io', 'findmnt -t nfs,nfs4', 'lsblk', describeNode(c)],
      confidence: medium,
    };
  },
  KernelSoftLockup: (c) => {
    const reason = c.str('reason');
    const cpu = c.str('cpu');
    const what = reason === 'RCUStall' ? 'an RCU stall' : reason === 'HardLockup' ? 'a hard lockup' : 'a soft lockup';
    return {
      summary: `${cpu ? `CPU ${cpu}` : 'A CPU'} on node ${c.node} was stuck (${what}).`,
      probableCause: 'A CPU ran kernel code for too long without scheduling: a driver or kernel bug, or on virtual machines an overloaded hypervisor stealing CPU time.',
      nextSteps: ['Check the stack trace after the lockup message for the driver involved.', 'On a VM, check CPU steal time and host overcommit.', 'Update the kernel and drivers if the trace points at a known bug.'],
      commands: [kernelLog(reason === 'RCUStall' ? 'rcu' : 'lockup'), 'cat /proc/pressure/cpu', 'uptime', describeNode(c)],
      confidence: medium,
    };
  },
  KernelOops: (c) => {
    const reason = c.str('reason');
    if (reason === 'UnregisterNetDevice') {
      const dev = safeArg(c.str('device'));
      return {
        summary: `The kernel on node ${c.node} leaked a reference to network device${dev ? ` ${dev}` : ''} and cannot free it.`,
        probableCause:
          'unregister_netdevice waits forever: something in the kernel (usually in the network namespace of a deleted pod) never dropped its reference to the device. It is a kernel bug; namespace cleanup is blocked behind it, so pods can hang in Terminating and new pods may fail to get networking.',
        nextSteps: ['Check for pods stuck in Terminating or ContainerCreating on this node.', 'Update the kernel; a node reboot clears the stuck device.'],
        commands: [kernelLog('unregister_netdevice'), `kubectl get pods -A --field-selector spec.nodeName=${c.node}`, 'uname -r', describeNode(c)],
        confidence: 'high',
      };
    }
    const crash = reason === 'KernelCrashDump';
    return {
      summary: crash
        ? `The kernel on node ${c.node} crashed; its crash record (vmcore or pstore log) was saved${c.str('path') ? ` in ${c.str('path')}` : ''}.`
        : `The kernel on node ${c.node} hit a bug (oops)${c.str('location') ? ` at ${c.str('location')}` : ''}${c.str('function') ? ` in ${c.str('function')}` : ''}.`,
      probableCause: crash
        ? 'The node panicked and rebooted (kdump saves the memory image from a capture kernel, pstore keeps the last kernel log in firmware storage): a kernel or driver bug, or a hardware fault (check for machine checks and memory errors too).'
        : 'A kernel or driver bug (or corrupted memory): the faulting task was killed and the kernel may be unstable until the node reboots.',
      nextSteps: crash
        ? ['Read vmcore-dmesg.txt next to the vmcore, or dmesg.txt in the pstore archive, for the panic message and stack.', 'Look for hardware errors (MCE, EDAC) before the crash; update the kernel or driver named in the trace.']
        : ['Read the stack trace after the oops for the module involved.', 'Update the kernel or the driver; drain and reboot the node.'],
      commands: crash
        ? ['ls -l /var/crash', 'ls -lR /var/lib/systemd/pstore', 'journalctl --list-boots --no-pager', 'journalctl -k -b -1 -p err --no-pager', 'uname -r', describeNode(c)]
        : [kernelLog('Oops'), 'uname -a', 'lsmod', 'journalctl -k -b -1 -p err --no-pager', describeNode(c)],
      confidence: medium,
    };
  },
  NetworkLinkDown: (c) => {
    const iface = safeArg(c.str('interface') ?? c.str('iface') ?? c.str('device'));
    const flapping = c.str('reason') === 'LinkFlapping';
    return {
      summary: `Network link${iface ? ` ${iface}` : ''} on node ${c.node} ${flapping ? 'is flapping (going down and up repeatedly)' : 'went down'}.`,
      probableCause: 'The NIC lost carrier: cable, switch port, transceiver or driver problem; pods on the node lose connectivity meanwhile and the node may turn NotReady.',
      nextSteps: ['Check the link state and error counters of the interface.', 'Check the switch port and cabling; look for driver resets in the kernel log.'],
      commands: [...(iface ? [`ip -s link show ${iface}`, `ethtool ${iface}`, kernelLog(iface)] : ['ip -s link show', kernelLog('Link is Down')]), describeNode(c)],
      confidence: iface ? 'high' : medium,
    };
  },
  ConntrackFull: (c) => ({
    summary: `The connection tracking table on node ${c.node} is full; new connections are dropped.`,
    probableCause: 'More concurrent connections than nf_conntrack_max: a traffic burst, many short-lived connections, or a client leaking connections.',
    nextSteps: ['Compare the current count with the maximum.', 'Raise nf_conntrack_max (kube-proxy conntrack settings) or find the workload opening most connections.'],
    commands: ['cat /proc/sys/net/netfilter/nf_conntrack_count', 'sysctl net.netfilter.nf_conntrack_max', 'conntrack -S', describeNode(c)],
    confidence: 'high',
  }),
  GPUXid: (c) => {
    const xid = c.num('xid');
    const gpu = c.str('gpu');
    const known = xid !== undefined ? GPU_XID[xid] : undefined;
    return {
      summary: `The NVIDIA driver on node ${c.node} reported ${xid !== undefined ? `Xid ${xid}` : 'an Xid error'}${gpu ? ` on GPU ${gpu}` : ''}.`,
      probableCause: known ? `${known}.` : 'An NVIDIA Xid error: the number identifies an application fault, a driver error or failing GPU hardware.',
      nextSteps: ['Check the GPU state and ECC counters.', 'Repeated hardware Xids (48, 79, 94, 95) mean the GPU needs a reset or replacement; application Xids (13, 31, 43) point at the workload.'],
      commands: ['nvidia-smi -q', kernelLog('NVRM'), describeNode(c)],
      confidence: known ? 'high' : medium,
    };
  },
  ThermalThrottle: (c) => ({
    summary: `CPUs on node ${c.node} are throttled because of temperature${c.str('cpu') ? ` (CPU ${c.str('cpu')}${c.str('scope') ? `, ${c.str('scope')}` : ''})` : ''}.`,
    probableCause: 'The CPU reached its thermal limit: cooling (fans, airflow, dust) is insufficient for the load, or the enclosure is too hot.',
    nextSteps: ['Check the temperatures and fan state.', 'Reduce the load or improve cooling; throttled CPUs slow every pod on the node.'],
    commands: ['sensors', kernelLog('temperature'), 'cat /sys/class/thermal/thermal_zone0/temp', describeNode(c)],
    confidence: medium,
  }),
} satisfies HintFamily;
