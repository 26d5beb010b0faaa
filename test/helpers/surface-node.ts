/**
 * A node agent's API in process, seeded with the findings of a real incident
 * (a full disk that makes a liveness probe fail, an unrelated crash loop),
 * their rule-hint diagnoses, 24 h of host samples, and rules-only `ask`:
 * what the dashboard, MCP and kubectl-plugin tests talk to. It listens on a
 * loopback port like the daemon does.
 */
import { pino } from 'pino';
import { registerAskRoutes } from '../../daemon/api/ask-routes.js';
import type { AccessOptions } from '../../daemon/api/auth/access.js';
import { buildApi } from '../../daemon/api/server.js';
import type { Status } from '../../daemon/core/contract.js';
import { EngineGate } from '../../daemon/ask/gate.js';
import { AskService } from '../../daemon/ask/service.js';
import { RuleHintDiagnoser } from '../../daemon/diagnoser/rule-hint.js';
import { Store } from '../../daemon/store/store.js';
import { toDiagnosisInput, type TrackedFinding } from '../../daemon/tracker/tracker.js';
import { tempDir } from './daemon-process.js';

/** Seeded finding ids. */
export const IDS = { disk: 'd15cf0110000aa01', probe: 'b40be0220000bb02', crash: 'c4a5e0330000cc03' } as const;

/** The seeded findings for a node, `minutesAgo` before `now`. */
export function seededFindings(nodeName: string, now = Date.now()): TrackedFinding[] {
  const at = (min: number) => new Date(now - min * 60_000).toISOString();
  const disk: TrackedFinding = {
    id: IDS.disk,
    category: 'DiskFull',
    severity: 'critical',
    subject: { kind: 'Node', name: nodeName },
    title: 'Filesystem /var/lib/containerd is 97% full',
    message: '/var/lib/containerd: 97.1% used (28.2 GiB of 29.0 GiB, 0.8 GiB free); threshold 95%.',
    evidence: [
      { source: 'host', at: at(40), text: '/var/lib/containerd: 96.0% used (27.8 GiB of 29.0 GiB)' },
      { source: 'host', at: at(2), text: '/var/lib/containerd: 97.1% used (28.2 GiB of 29.0 GiB)' },
    ],
    firstSeen: at(40),
    lastSeen: at(2),
    count: 80,
    status: 'open',
    causes: [],
    rootCause: true,
    diagnosis: null,
    detector: 'disk',
    lifecycle: 'condition',
    facts: { mount: '/var/lib/containerd', usedPercent: 97.1, thresholdPercent: 95 },
  };
  const probe: TrackedFinding = {
    id: IDS.probe,
    category: 'ProbeFailure',
    severity: 'warning',
    subject: { kind: 'Container', name: 'transcoder-69f8b7c6d5-8n4kd', namespace: 'media', container: 'transcoder' },
    title: 'Liveness probe of media/transcoder-69f8b7c6d5-8n4kd/transcoder keeps failing',
    message: 'The liveness probe failed 4 times in 18 minutes; the kubelet restarted the container each time.',
    evidence: [
      { source: 'event', at: at(18), text: 'Unhealthy: Liveness probe failed: Get "http://10.42.0.17:8080/healthz": context deadline exceeded' },
      { source: 'event', at: at(3), text: 'Killing: Container transcoder failed liveness probe, will be restarted (x4 over 18m)' },
    ],
    firstSeen: at(18),
    lastSeen: at(3),
    count: 4,
    status: 'open',
    causes: [IDS.disk],
    rootCause: false,
    diagnosis: null,
    detector: 'probe-failure',
    lifecycle: 'event',
    facts: { probe: 'liveness', failures: 4 },
  };
  const crash: TrackedFinding = {
    id: IDS.crash,
    category: 'CrashLoop',
    severity: 'warning',
    subject: { kind: 'Container', name: 'api-7d9f8c6b5-x2x9q', namespace: 'shop', container: 'app' },
    title: 'Container app of shop/api-7d9f8c6b5-x2x9q is crash-looping (exit code 1, 7 restarts)',
    message: 'The container app of pod shop/api-7d9f8c6b5-x2x9q is in CrashLoopBackOff after 7 restarts; last exit code 1.',
    evidence: [
      { source: 'podLog', at: at(10), text: 'panic: dial tcp 10.0.0.7:5432: connect: connection refused' },
      { source: 'podStatus', at: at(9), text: 'container app (restarts 7): last state terminated Error exit code 1' },
    ],
    firstSeen: at(30),
    lastSeen: at(9),
    count: 7,
    status: 'open',
    causes: [],
    rootCause: true,
    diagnosis: null,
    detector: 'crashloop',
    lifecycle: 'condition',
    facts: { exitCode: 1, restartCount: 7 },
  };
  return [disk, probe, crash];
}

/** A running seeded agent. */
export interface SurfaceNode {
  url: string;
  store: Store;
  nodeName: string;
  close(): Promise<void>;
}

/** Starts a seeded agent API for `nodeName` on 127.0.0.1 (port 0 unless given), its findings seen before `now` (defaults to now), behind `access` when given (else open). */
export async function startSurfaceNode(nodeName = 'edge-04', opts: { port?: number; now?: number; access?: AccessOptions } = {}): Promise<SurfaceNode> {
  const logger = pino({ level: 'silent' });
  const store = Store.open({ dir: tempDir() });
  const now = opts.now ?? Date.now();
  const findings = seededFindings(nodeName, now);
  store.commit({ at: new Date(now).toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map() });
  // Diagnoses as the daemon stores them without a model: the rule hint.
  const hint = new RuleHintDiagnoser({ nodeName });
  for (const f of findings) store.setDiagnosis(f.id, await hint.diagnose(toDiagnosisInput(f)));
  // 24 h of host samples every 5 minutes: a daily CPU wave, memory creeping up, the disk filling.
  for (let t = now - 24 * 3_600_000; t <= now; t += 300_000) {
    const h = (now - t) / 3_600_000;
    store.addSamples(t, [
      { name: 'cpu_percent', value: 35 + 25 * Math.sin(h / 3.8) },
      { name: 'memory_available_percent', value: 55 - (24 - h) * 0.6 },
      { name: 'fs_used_percent', labels: '/var/lib/containerd', value: 97.1 - h * 0.25 },
      { name: 'fs_used_percent', labels: '/', value: 41 },
      { name: 'inodes_used_percent', labels: '/var/lib/containerd', value: 30 + (24 - h) * 0.5 },
    ]);
  }
  const status = (): Status => ({
    mode: 'in-cluster',
    nodeName,
    version: '0.1.0',
    startedAt: new Date(now - 3_600_000).toISOString(),
    sources: [
      { name: 'kubelet', state: 'healthy', signals: 1200, lastSignalAt: new Date(now - 20_000).toISOString(), lastError: null },
      { name: 'pod-logs', state: 'healthy', signals: 48210, lastSignalAt: new Date(now - 1_000).toISOString(), lastError: null },
      { name: 'kmsg', state: 'disabled', signals: 0, lastSignalAt: null, lastError: 'no /dev/kmsg: kernel messages come from journald' },
    ],
    model: { state: 'none', id: null, reason: 'no model configured: rules-only mode (rule hints instead of LLM explanations)' },
    store: { path: store.path, sizeBytes: store.sizeBytes(), recoveredFrom: null, writeFailure: null },
    rulesOnly: true,
  });
  const ask = new AskService({ store, nodeName, maxTokens: 256, timeoutMs: 10_000, logger });
  const app = buildApi({ store, status, ready: () => true, logger, ...(opts.access ? { access: opts.access } : {}), extraRoutes: (a) => registerAskRoutes(a, { ask, gate: new EngineGate(), logger }) });
  const url = await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  return {
    url,
    store,
    nodeName,
    async close() {
      await app.close();
      store.close();
    },
  };
}
