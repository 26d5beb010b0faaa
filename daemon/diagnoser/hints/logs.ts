/** Rule hints: Problems found in logs: DNS failures of workloads and error spikes of a log stream. */
import { describeNode, type HintFamily, JOURNAL_SINCE, medium, podDescribe, podLogs, safeArg } from './context.js';

/** Hints of this family, by category. */
export const LOGS_HINTS = {
  DNSFailure: (c) => {
    const name = c.str('host') ?? c.str('name') ?? c.str('javaHost') ?? c.str('nodeHost') ?? c.str('curlHost');
    const reason = c.str('reason');
    return {
      summary: `Name resolution fails for the ${c.who}${name ? ` (${name})` : ''}.`,
      probableCause:
        reason === 'DNSForwardingLoop'
          ? 'CoreDNS detected a forwarding loop: it forwards to the node resolver, which points back at CoreDNS (often a 127.0.0.53 stub resolver).'
          : reason === 'DNSUpstreamUnreachable' || reason === 'DNSTimeout'
            ? 'The cluster DNS cannot reach its upstream resolver in time: the upstream (or the path to it) is down, which is common on air-gapped sites without a local resolver.'
            : 'The cluster DNS (CoreDNS) is unreachable or its upstream resolver fails, or the name does not exist.',
      nextSteps: ['Check that the cluster DNS pods are running and reachable from this node.', 'Check the upstream resolvers configured for CoreDNS and the node.'],
      commands: [
        ...podLogs(c, false),
        'kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide',
        'kubectl -n kube-system logs -l k8s-app=kube-dns --tail=50',
        'cat /etc/resolv.conf',
      ],
      confidence: medium,
    };
  },
  LogErrorSpike: (c) => {
    const unit = safeArg(c.str('unit')?.replace(/\.service$/, ''));
    return {
      summary: `The ${unit && c.finding.subject.kind === 'Node' ? `${unit} service on node ${c.node}` : c.who} logs a new error or a burst of errors.`,
      probableCause: 'A log template that was rare or unknown became frequent: a new failure mode of the application or of something it depends on.',
      nextSteps: ['Read the newest error lines and what happened just before the burst.', 'Correlate with deployments, restarts or dependency failures at the same time.'],
      commands:
        c.ns && c.pod
          ? [...podLogs(c, false), ...podDescribe(c)]
          : [unit ? `journalctl -u ${unit} ${JOURNAL_SINCE} -p err` : `journalctl ${JOURNAL_SINCE} -p err`, describeNode(c)],
      confidence: c.finding.evidence.length > 0 ? medium : 'low',
    };
  },
} satisfies HintFamily;
