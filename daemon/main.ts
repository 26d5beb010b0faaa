/**
 * Wiring only: config → store → collectors, detectors → daemon. No logic here.
 *
 * The Kubernetes client is imported only in cluster and kubeconfig modes, and
 * then without its generated API (collectors/kube/client.ts: in a bare Node
 * with the image's flags ~48 MiB for the whole client, ~21 MiB without), and
 * node-llama-cpp (~45 MiB) only when a model is opened (diagnoser/llama-cpp.ts):
 * host mode on a small edge node pays for neither.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { Logger } from 'pino';
import type { CheckpointReader } from './collectors/checkpoints.js';
import { HostCollector } from './collectors/host.js';
import { JournaldCollector } from './collectors/journald.js';
import { kubeClient } from './collectors/kube/client.js';
import { KmsgCollector } from './collectors/kmsg.js';
import { PodLogCollector } from './collectors/pod-logs.js';
import { registerAskRoutes } from './api/ask-routes.js';
import { registerOpenAiRoutes } from './api/openai.js';
import { EngineGate } from './ask/gate.js';
import { RunbookIndexer } from './ask/runbooks.js';
import { AskService } from './ask/service.js';
import type { Config } from './config.js';
import type { Collector, SourceStatus } from './core/types.js';
import { Daemon, type DaemonParts } from './daemon.js';
import { createDetectors } from './detectors/index.js';
import { buildDiagnoser } from './diagnoser/build.js';
import { DiagnosisQueue } from './diagnoser/queue.js';
import { TemplateStats } from './detectors/templates/stats.js';
import { createRedactor, redactDiagnosis, redactionVersion } from './redact.js';
import { ConditionsExporter } from './exporters/conditions.js';
import { EventsExporter } from './exporters/events.js';
import { Store } from './store/store.js';
import { toDiagnosisInput } from './tracker/tracker.js';
import type { AccessOptions } from './api/auth/access.js';
import { readTokenFile, StaticTokens } from './api/auth/static-tokens.js';
import { type Authenticator, refusingAll } from './api/auth/types.js';

async function kubeConfigFor(config: Readonly<Config>): Promise<KubeConfig> {
  const { KubeConfig } = await kubeClient();
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

/** Builds every configured source. Shared by the daemon and `nodesage capture`. */
export async function createCollectors(
  config: Readonly<Config>,
  logger: Logger,
  checkpoints: CheckpointReader,
): Promise<{ collectors: Collector[]; unavailable: SourceStatus[] }> {
  const log = (source: string) => logger.child({ source });
  const collectors: Collector[] = [];
  if (config.sources.host) {
    collectors.push(new HostCollector({ hostRoot: config.hostRoot, intervalMs: config.hostIntervalSeconds * 1000, networkMounts: config.networkMounts, logger: log('host') }));
  }
  const unavailable: SourceStatus[] = [];
  const podLogDir = join(config.hostRoot, 'var/log/pods');
  if (config.sources.podLogs && config.mode === 'host' && !existsSync(podLogDir)) {
    // A plain Linux machine: there are no container logs to read, which is not a failure.
    unavailable.push({ name: 'pod-logs', state: 'disabled', signals: 0, lastSignalAt: null, lastError: `${podLogDir} does not exist (not a Kubernetes node)` });
  } else if (config.sources.podLogs) {
    collectors.push(new PodLogCollector({ hostRoot: config.hostRoot, checkpoints, logger: log('pod-logs') }));
  }
  if (config.sources.journald) {
    collectors.push(new JournaldCollector({ hostRoot: config.hostRoot, checkpoints, units: [...config.journaldUnits], logger: log('journald') }));
  }
  if (config.sources.kmsg) {
    collectors.push(new KmsgCollector({ hostRoot: config.hostRoot, checkpoints, logger: log('kmsg') }));
  }
  const useKubeApi = usesKubeApi(config);
  if (config.sources.kubelet && config.kubeletUrl) {
    // Loaded only with a kubelet to poll: host mode on a plain machine has none.
    const { KubeletCollector, kubeconfigKubeletCredentials } = await import('./collectors/kubelet.js');
    collectors.push(
      new KubeletCollector({
        kubeletUrl: config.kubeletUrl,
        tokenFile: config.kubeletTokenFile,
        caFile: config.kubeletCaFile,
        insecureSkipTlsVerify: config.kubeletInsecureSkipTlsVerify,
        intervalMs: config.kubeletIntervalSeconds * 1000,
        // Without the API server the kubelet's own pod list is the only one.
        emitPods: !useKubeApi,
        // kubeconfig mode: no service-account token in the pod's place; the kubeconfig user stands in.
        ...(config.kubeconfig ? { fallbackCredentials: () => kubeconfigKubeletCredentials(config.kubeconfig!) } : {}),
        logger: log('kubelet'),
      }),
    );
  }
  if (useKubeApi) {
    const { KubeApiCollector } = await import('./collectors/kube-api.js');
    collectors.push(
      new KubeApiCollector({
        nodeName: config.nodeName,
        ...(config.kubeconfig ? { kubeconfigPath: config.kubeconfig } : {}),
        logger: log('kube-api'),
      }),
    );
  }
  return { collectors, unavailable };
}

function usesKubeApi(config: Readonly<Config>): boolean {
  return config.sources.kubeApi && !config.standalone && config.mode !== 'host';
}

/** The access check the config asks for. Throws TokenFileError for an unusable token file. */
async function accessFor(config: Readonly<Config>, logger: Logger): Promise<AccessOptions> {
  const { auth, limits } = config;
  let authenticator: Authenticator | null = null;
  if (auth.mode === 'kubernetes') {
    // Like the collectors, the Kubernetes client loads only when the mode needs it.
    const { KubeReviewer } = await import('./api/auth/kube-review.js');
    try {
      authenticator = new KubeReviewer(await kubeConfigFor(config), {
        allowTtlMs: auth.allowTtlSeconds * 1000,
        denyTtlMs: auth.denyTtlSeconds * 1000,
        staleMs: auth.staleSeconds * 1000,
        timeoutMs: auth.reviewTimeoutSeconds * 1000,
      });
    } catch (err) {
      // The sources report the same problem in /v1/status; callers get 503 with it, never an allow.
      const reason = `the kubeconfig cannot be loaded (${(err as Error).message.split('\n')[0]})`;
      logger.error({ err }, 'callers cannot be checked: the kubeconfig cannot be loaded');
      authenticator = refusingAll(reason);
    }
  } else if (auth.mode === 'token-file') {
    const path = auth.tokenFile!;
    authenticator = new StaticTokens(readTokenFile(path), {
      path,
      onReloadError: (err) => logger.error({ err, path }, 'the changed token file cannot be used; the previous tokens stay in force'),
    });
  }
  return {
    authenticator,
    requestsPerSecond: limits.requestsPerSecond,
    burst: limits.burst,
    modelRequestsPerIdentity: limits.modelRequestsPerIdentity,
    logger: logger.child({ component: 'access' }),
  };
}

/** Builds a daemon from a validated config. */
export async function createDaemon(config: Readonly<Config>, logger: Logger): Promise<Daemon> {
  const access = await accessFor(config, logger);
  const store = Store.open({
    dir: config.dataDir,
    logger,
    maxAgeDays: config.retention.maxAgeDays,
    maxSizeMB: config.retention.maxSizeMB,
  });
  const log = (source: string) => logger.child({ source });
  const checkpoints: CheckpointReader = {
    get: (source, key) => store.getCheckpoint(source, key),
    list: (source) => store.listCheckpoints(source),
  };
  const { collectors, unavailable } = await createCollectors(config, logger, checkpoints);
  const redact = createRedactor([...config.redactPatterns]);
  const detectors = createDetectors({ ...config.detectors, logRules: { ...config.detectors.logRules, redact } });
  const diagnosis = buildDiagnoser({
    config,
    logger,
    redact,
    context: (f) => ({
      causes: (f.causes ?? [])
        .map((id) => store.getFinding(id))
        .filter((c) => c !== undefined)
        .map((c) => ({ category: c.category, title: c.title })),
      // The operators' own runbooks that match the problem, best two, as grounding.
      runbooks: store
        .search(`${f.category} ${f.title}`, { limit: 2 })
        .runbooks.map((r) => ({ title: r.title, text: r.body.slice(0, 800) })),
    }),
  });
  // The queue outlives construction; metrics are recorded once the daemon exists.
  let daemon: Daemon | undefined;
  const queue = new DiagnosisQueue({
    diagnoser: diagnosis.diagnoser,
    logger: log('diagnosis'),
    getFinding: (id) => {
      const f = store.getFinding(id);
      return f && toDiagnosisInput(f);
    },
    saveDiagnosis: (id, d) => {
      store.setDiagnosis(id, redactDiagnosis(d, redact));
      daemon?.recordDiagnosis(d);
    },
    cache: { get: (k) => store.cacheGet(k), put: (k, d) => store.cachePut(k, redactDiagnosis(d, redact)) },
  });
  const exporterHooks: NonNullable<DaemonParts['onCycle']>[] = [];
  const disposers: (() => Promise<void>)[] = [];
  const engine = diagnosis.engine ? { engine: diagnosis.engine } : {};
  // `ask` and the OpenAI-compatible routes share one bounded queue in front of the model.
  const gate = new EngineGate();
  const ask = new AskService({
    store,
    ...engine,
    nodeName: config.nodeName,
    maxTokens: config.llm.maxTokens,
    timeoutMs: config.llm.timeoutSeconds * 1000,
    logger,
  });
  if (config.runbooksDir) {
    const runbooks = new RunbookIndexer({ dir: config.runbooksDir, store, logger });
    void runbooks.start();
    disposers.push(async () => runbooks.stop());
  }
  const parts: DaemonParts = {
    config,
    logger,
    store,
    detectors,
    collectors,
    unavailable,
    redact,
    redactVersion: redactionVersion([...config.redactPatterns]),
    templates: new TemplateStats({ redact }),
    modelStatus: () => diagnosis.modelStatus(),
    queueDepth: () => queue.depth(),
    access,
    extraRoutes: (app) => {
      registerAskRoutes(app, { ask, gate, logger });
      registerOpenAiRoutes(app, { ...engine, gate, maxTokens: config.llm.maxTokens, logger });
    },
    // Detection never waits for a diagnosis: enqueue is synchronous and bounded.
    onCycle: (c) => {
      for (const f of c.opened) queue.enqueue(f.id, f.severity);
      for (const hook of exporterHooks) hook(c);
    },
    dispose: async () => {
      await queue.stop();
      for (const d of disposers) await d();
      await diagnosis.dispose();
    },
  };
  if (usesKubeApi(config)) {
    if (config.exporters.conditions || config.exporters.events) {
      const { KubeWriters } = await import('./exporters/kube-writers.js');
      const writers = new KubeWriters(await kubeConfigFor(config));
      const conditions = config.exporters.conditions
        ? new ConditionsExporter({ nodeName: config.nodeName, writer: writers, logger: log('conditions-exporter') })
        : undefined;
      const events = config.exporters.events ? new EventsExporter({ nodeName: config.nodeName, writer: writers, logger: log('events-exporter') }) : undefined;
      // The first write follows the first detection cycle, so a condition set by a previous run does not flap.
      exporterHooks.push(({ open, opened }) => {
        conditions?.update(open);
        events?.publish(opened);
      });
      disposers.push(async () => {
        conditions?.stop();
        events?.stop();
      });
    }
  }
  daemon = new Daemon(parts);
  return daemon;
}
