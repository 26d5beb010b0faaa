/** Rule hints: Node conditions and capacity: NotReady, the kubelet pressures, full filesystems and inodes. */
import { describeNode, fsPath, type HintFamily, medium, uniq, unitLog } from './context.js';

/** Hints of this family, by category. */
export const NODE_HINTS = {
  NodeNotReady: (c) => {
    const reason = c.str('reason');
    const hb = c.num('heartbeatAgeSeconds');
    return {
      summary: `Node ${c.node} is not Ready${c.str('status') ? ` (status ${c.str('status')})` : ''}${reason ? `: ${reason}` : ''}.`,
      probableCause:
        reason === 'NodeStatusUnknown' || (hb !== undefined && hb > 60)
          ? `The kubelet stopped reporting to the API server${hb !== undefined ? ` (last heartbeat ${hb}s ago)` : ''}: the kubelet is down, hung, or the node lost its network path to the control plane.`
          : 'The kubelet reports the node not ready: usually the container runtime or the network (CNI) plugin is not working, or the kubelet itself is failing.',
      nextSteps: [
        'Check that the kubelet and the container runtime services are running on the node.',
        'Read the kubelet log for PLEG, CNI (network plugin not ready) or certificate errors.',
        'Check the network path from the node to the API server.',
      ],
      commands: [describeNode(c), 'systemctl status kubelet', unitLog('kubelet'), 'crictl info'],
      confidence: medium,
    };
  },
  NodeMemoryPressure: (c) => ({
    summary: `Node ${c.node} reports MemoryPressure.`,
    probableCause: 'Available memory fell below the kubelet eviction threshold; the kubelet will evict pods, starting with those using more than they requested.',
    nextSteps: ['Find the pods using the most memory and those without memory limits.', 'Check for processes outside Kubernetes using memory on the node.', 'Lower overcommit: set requests close to real usage.'],
    commands: [describeNode(c), 'free -m', 'crictl stats', 'kubectl top pod -A --sort-by=memory'],
    confidence: medium,
  }),
  NodeDiskPressure: (c) => ({
    summary: `Node ${c.node} reports DiskPressure.`,
    probableCause: 'Free space or inodes on the kubelet or image filesystem fell below the eviction threshold; the kubelet garbage-collects images and evicts pods.',
    nextSteps: ['Find what fills /var/lib/kubelet and the image store (unused images, container logs, emptyDir volumes).', 'Remove unused images and tune image garbage collection thresholds.'],
    commands: [describeNode(c), 'df -h', 'df -i', 'crictl imagefsinfo', 'du -xh -d 1 /var/log/pods'],
    confidence: medium,
  }),
  NodePIDPressure: (c) => {
    const cur = c.num('curproc');
    const max = c.num('maxpid');
    return {
      summary: `Node ${c.node} reports PIDPressure${cur !== undefined && max !== undefined ? ` (${cur} of ${max} process ids in use)` : ''}.`,
      probableCause: 'Processes or threads on the node approach the pid limit, often one workload forking or leaking threads.',
      nextSteps: ['Find the containers with the most processes/threads.', 'Set podPidsLimit in the kubelet configuration so one pod cannot exhaust pids.'],
      commands: [describeNode(c), 'ps -e -o pid,nlwp,comm --sort=-nlwp', 'cat /proc/sys/kernel/pid_max', 'crictl stats'],
      confidence: medium,
    };
  },
  DiskFull: (c) => {
    const mount = c.str('mount');
    const path = fsPath(mount);
    const pct = c.num('usedPercent');
    return {
      summary: `${mount ? `Filesystem ${mount}` : 'A filesystem'} on node ${c.node} is ${pct !== undefined ? `${pct}%` : 'nearly'} full.`,
      probableCause: `${mount ? `${mount}${path && path !== mount ? ` (${path})` : ''}` : 'The filesystem'} is running out of space: usually container images, container logs, emptyDir volumes or application data growing without rotation.`,
      nextSteps: [
        'Find the largest directories on that filesystem.',
        'Remove unused images (the kubelet does so above its GC threshold) and rotate or cap logs.',
        'Grow the volume if the usage is legitimate.',
      ],
      commands: uniq([`df -h${path ? ` ${path}` : ''}`, ...(path ? [`du -xh -d 1 ${path}`] : []), 'crictl images', 'journalctl --disk-usage', describeNode(c)]),
      confidence: mount ? 'high' : medium,
    };
  },
  InodeExhaustion: (c) => {
    const mount = c.str('mount');
    const path = fsPath(mount);
    const pct = c.num('inodesUsedPercent');
    return {
      summary: `${mount ? `Filesystem ${mount}` : 'A filesystem'} on node ${c.node} has ${pct !== undefined ? `${pct}%` : 'nearly all'} of its inodes used.`,
      probableCause: 'Many small files (container layers, logs, caches, session files) use up the inodes; new files fail with "no space left on device" even with free space.',
      nextSteps: ['Find the directory with the most files.', 'Clean up small-file caches and unused images; reformat with more inodes if it recurs.'],
      commands: uniq([`df -i${path ? ` ${path}` : ''}`, ...(path ? [`du --inodes -x -d 1 ${path}`] : []), 'crictl images', describeNode(c)]),
      confidence: mount ? 'high' : medium,
    };
  },
} satisfies HintFamily;
