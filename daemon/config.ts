/**
 * Configuration: the only module that reads process.env.
 *
 * Precedence: defaults < config file (`--config` / NODESAGE_CONFIG, YAML or
 * JSON) < environment (NODESAGE_*, plus NODE_NAME, NODE_IP, KUBECONFIG) < CLI
 * flags. Parsed and validated once, then frozen; a bad value stops start-up with
 * one line naming where the value came from, the value and what is allowed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { readCatalog, resolveModel } from './models.js';
import { DETECTOR_OPTIONS_SCHEMA, type DetectorOptions } from './detectors/index.js';
import { CodedError } from './errors.js';

/** Where the HTTP API listens. */
export type Listen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** How the daemon finds the cluster. */
export type Mode = 'in-cluster' | 'kubeconfig' | 'host';

/** How API callers are authenticated. */
export type AuthMode = 'kubernetes' | 'token-file' | 'none';

/** The validated, frozen configuration. */
export interface Config {
  /** Detected from the environment: in-cluster service account, KUBECONFIG, or none (host). */
  mode: Mode;
  /** This node's name. Defaults to NODE_NAME, else the host name. */
  nodeName: string;
  /** Prefix for host paths (/var/log/pods, journal dirs, /dev/kmsg, /proc, /sys). Defaults to "/". */
  hostRoot: string;
  /** The kubelet's URL. Defaults to https://$NODE_IP:10250 when NODE_IP is set, else none. */
  kubeletUrl: string | null;
  /** Skip TLS verification of the kubelet (logged at every start). Defaults to false. */
  kubeletInsecureSkipTlsVerify: boolean;
  /** Bearer token file for the kubelet. Defaults to the service-account token. */
  kubeletTokenFile: string;
  /** CA bundle of the kubelet's serving certificate. Defaults to the service-account ca.crt. */
  kubeletCaFile: string;
  /** Path of a kubeconfig file. Defaults to $KUBECONFIG. */
  kubeconfig: string | null;
  /** Never contact the API server. Defaults to false. */
  standalone: boolean;
  /** Where the HTTP API listens. Defaults to 127.0.0.1:8877. */
  listen: Listen;
  /** State folder (SQLite). Defaults to /var/lib/nodesage in cluster, ./.nodesage otherwise. */
  dataDir: string;
  /** A GGUF path or a catalog id; null = rules-only. Defaults to null. */
  model: string | null;
  /** pino level. Defaults to info. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Seconds between detection cycles. Defaults to 10. */
  detectIntervalSeconds: number;
  /** Seconds between host metric samples. Defaults to 30. */
  hostIntervalSeconds: number;
  /** Seconds between kubelet polls. Defaults to 30. */
  kubeletIntervalSeconds: number;
  /** Minutes an event-type finding stays open after it was last seen. Defaults to 30. */
  quietPeriodMinutes: number;
  /** Storage retention. */
  retention: {
    /** Resolved findings and samples older than this are deleted. Defaults to 30. */
    maxAgeDays: number;
    /** The database is pruned (oldest history first) above this size. Defaults to 256. */
    maxSizeMB: number;
  };
  /** Which sources run. Each defaults to true (kube sources only outside host mode). */
  sources: { host: boolean; podLogs: boolean; journald: boolean; kmsg: boolean; kubelet: boolean; kubeApi: boolean };
  /** journald units read. Defaults to kubelet, containerd, crio, docker, the time-sync units, the k3s, RKE2, k0s and MicroK8s units, smartd, kdump and abrtd. */
  journaldUnits: string[];
  /** Network filesystem mount points (NFS, CIFS, Ceph...) the host source measures; others are skipped, since statfs on a dead server hangs. Defaults to none. */
  networkMounts: string[];
  /** Detector thresholds. */
  detectors: DetectorOptions;
  /** Extra redaction regexes applied to evidence. Defaults to none. */
  redactPatterns: string[];
  /** Folder of markdown runbooks. Defaults to none. */
  runbooksDir: string | null;
  /** LLM settings. */
  llm: {
    /** Memory the model may use (weights, KV cache, compute buffers, llama.cpp runtime), MiB: fits Qwen2.5-1.5B Q4_K_M (estimate 1,649) under the DaemonSet's 2 GiB limit with the daemon beside it. Defaults to 1792. */
    memoryBudgetMB: number;
    /** Context size in tokens; system prompt, evidence and answer must fit (KV cache memory grows with it). Defaults to 4096. */
    contextSize: number;
    /** Threads; 0 = from the container's CPU quota. Defaults to 0. */
    threads: number;
    /** GPU backend. Defaults to auto. */
    gpu: 'auto' | 'cuda' | 'vulkan' | 'off';
    /** Layers offloaded to the GPU; -1 = as many as fit. Defaults to -1. */
    gpuLayers: number;
    /** Unload the model after this many idle seconds. Defaults to 600. */
    idleUnloadSeconds: number;
    /** Maximum generated tokens of an `ask` answer or chat completion. Defaults to 384. */
    maxTokens: number;
    /** Token budget of a diagnosis prompt's per-finding part (evidence is trimmed to fit). Defaults to 320. */
    promptTokens: number;
    /** Wall-clock limit of one diagnosis, seconds. Defaults to 120. */
    timeoutSeconds: number;
    /** Expected sha256 of the GGUF file; checked when set. Defaults to none (a catalog id brings the catalog's, when known). */
    sha256: string | null;
    /** Folder where a `model` given as a catalog id is looked for. Defaults to /var/lib/nodesage/models. */
    modelsDir: string;
    /** LoRA adapter GGUFs applied to the model when its context is created, each verified like the model. Defaults to none. */
    loras: LoraConfig[];
    /** Opt-in site backend: an OpenAI-compatible server inside the site diagnoses instead of a local model, and redacted evidence leaves the node. Defaults to null (off: nothing is sent). */
    backend: SiteBackendConfig | null;
  };
  /** Opt-in writers to the API server. Both default to false. */
  exporters: { conditions: boolean; events: boolean };
  /** Who may call the API (README "Access"). */
  auth: {
    /** kubernetes (TokenReview + SubjectAccessReview), token-file, or none. Defaults to kubernetes in cluster and kubeconfig modes, token-file when tokenFile is set, else none. */
    mode: AuthMode;
    /** File of `<sha256 hex> <name>` lines for token-file mode (`nodesage token create`). Defaults to none. */
    tokenFile: string | null;
    /** Serve a listen address other than loopback without any auth (an explicit opt-out). Defaults to false. */
    allowUnauthenticated: boolean;
    /** Serve `<dataDir>/nodesage.sock` (mode 0600) without a token, for people on the node. Defaults to true. */
    socket: boolean;
    /** Seconds an allowed TokenReview/SubjectAccessReview answer is reused. Defaults to 60. */
    allowTtlSeconds: number;
    /** Seconds a rejected or denied answer is reused. Defaults to 10. */
    denyTtlSeconds: number;
    /** With the API server unreachable, cached answers up to this old still apply. Defaults to 3600. */
    staleSeconds: number;
    /** Time limit of one TokenReview or SubjectAccessReview call, seconds. Defaults to 5. */
    reviewTimeoutSeconds: number;
  };
  /** Request limits of the HTTP API. */
  limits: {
    /** Seconds a client has to send the request headers. Defaults to 10. */
    headersTimeoutSeconds: number;
    /** Seconds a client has to send the whole request, body included. Defaults to 20. */
    requestTimeoutSeconds: number;
    /** Open connections at most (more are refused). Defaults to 256. */
    maxConnections: number;
    /** Sustained requests per second per identity (and failed authentications per client address). Defaults to 20. */
    requestsPerSecond: number;
    /** Requests an identity may send at once above the sustained rate. Defaults to 60. */
    burst: number;
    /** Model requests (`/v1/ask` with a model, `/v1/chat/completions`) one identity may have running at once. Defaults to 1. */
    modelRequestsPerIdentity: number;
  };
  /** Bearer token the CLI sends to the daemon (NODESAGE_TOKEN). Defaults to none. */
  clientToken: string | null;
  /** Path of the config file that was read, if any. */
  configFile: string | null;
}

/** One LoRA adapter (`llm.loras[]`). */
export interface LoraConfig {
  /** Adapter GGUF file. */
  path: string;
  /** Strength; 1 applies it as trained. Defaults to 1. */
  scale: number;
  /** Expected sha256. Defaults to the `<path>.sha256` sidecar written by `nodesage model import`, else no check. */
  sha256: string | null;
}

/** `llm.backend`: an OpenAI-compatible server inside the site (llama-server, vLLM, Ollama, LocalAI, another nodesage's /v1). */
export interface SiteBackendConfig {
  /** Base URL up to `/v1`, e.g. https://llm.site.internal/v1; https, or http to a loopback address only. */
  url: string;
  /** `model` field of the requests. Defaults to null (the server's default model). */
  model: string | null;
  /** CA bundle of the server's certificate. Defaults to null (the system's CAs). */
  caFile: string | null;
  /** File holding a bearer token, read at each request so rotation needs no restart. Defaults to null (no token). */
  tokenFile: string | null;
}

/** A bad configuration value; the CLI prints `message` and exits 2. */
export class ConfigError extends CodedError {
  readonly code = 'CONFIG_INVALID';
  constructor(
    /** Where the value came from: an env var, a flag or `file:key`. */
    readonly origin: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`invalid configuration ${origin}=${JSON.stringify(value)}: ${allowed}`);
  }
}

/** Parses `host:port`, `[v6]:port`, `:port` or `unix:/path`. Returns null when invalid. */
export function parseListen(s: string): Listen | null {
  if (s.startsWith('unix:')) {
    const path = s.slice(5);
    return path.startsWith('/') || path.startsWith('.') ? { kind: 'unix', path } : null;
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 0 || port > 65535) return null;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { kind: 'tcp', host, port };
}

/**
 * The daemon a client command (status, findings, ask, mcp) was pointed at:
 * `--url`, else NODESAGE_URL; null when neither is given (the CLI then looks
 * for the node-local socket, then the listen address). A URL is
 * `http://host:port` or `unix:/path/to.sock`.
 */
export function clientTarget(flagUrl: string | undefined, env: Record<string, string | undefined> = process.env): Listen | null {
  const [value, from] = flagUrl ? [flagUrl, '--url'] : env.NODESAGE_URL ? [env.NODESAGE_URL, 'NODESAGE_URL'] : [null, ''];
  if (value === null) return null;
  const allowed = 'http://host:port (e.g. http://127.0.0.1:8877) or unix:/path/to.sock';
  if (value.startsWith('unix:')) {
    const l = parseListen(value);
    if (!l) throw new ConfigError(from, value, allowed);
    return l;
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(from, value, allowed);
  }
  if (u.protocol !== 'http:' || (u.pathname !== '/' && u.pathname !== '')) throw new ConfigError(from, value, allowed);
  return { kind: 'tcp', host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 80 };
}

/** Formats a Listen back to its string form. */
export function formatListen(l: Listen): string {
  return l.kind === 'unix' ? `unix:${l.path}` : `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
}

/** Values given on the command line (they win over everything else). */
export interface ConfigFlags {
  config?: string;
  nodeName?: string;
  hostRoot?: string;
  kubeletUrl?: string;
  kubeconfig?: string;
  standalone?: boolean;
  listen?: string;
  dataDir?: string;
  model?: string;
  logLevel?: string;
}

type Raw = Record<string, unknown>;

const ENV_KEYS: [string, string, 'string' | 'bool' | 'number' | 'list'][] = [
  ['NODESAGE_NODE_NAME', 'nodeName', 'string'],
  ['NODESAGE_HOST_ROOT', 'hostRoot', 'string'],
  ['NODESAGE_KUBELET_URL', 'kubeletUrl', 'string'],
  ['NODESAGE_KUBELET_INSECURE_SKIP_TLS_VERIFY', 'kubeletInsecureSkipTlsVerify', 'bool'],
  ['NODESAGE_KUBELET_TOKEN_FILE', 'kubeletTokenFile', 'string'],
  ['NODESAGE_KUBELET_CA_FILE', 'kubeletCaFile', 'string'],
  ['NODESAGE_KUBELET_INTERVAL_SECONDS', 'kubeletIntervalSeconds', 'number'],
  ['NODESAGE_STANDALONE', 'standalone', 'bool'],
  ['NODESAGE_LISTEN', 'listen', 'string'],
  ['NODESAGE_DATA_DIR', 'dataDir', 'string'],
  ['NODESAGE_MODEL', 'model', 'string'],
  ['NODESAGE_LOG_LEVEL', 'logLevel', 'string'],
  ['NODESAGE_DETECT_INTERVAL_SECONDS', 'detectIntervalSeconds', 'number'],
  ['NODESAGE_HOST_INTERVAL_SECONDS', 'hostIntervalSeconds', 'number'],
  ['NODESAGE_RUNBOOKS_DIR', 'runbooksDir', 'string'],
  ['NODESAGE_DISK_WARN_PERCENT', 'detectors.disk.warnPercent', 'number'],
  ['NODESAGE_DISK_CRITICAL_PERCENT', 'detectors.disk.criticalPercent', 'number'],
  ['NODESAGE_DETECTORS_DISABLED', 'detectors.disabled', 'list'],
  ['NODESAGE_LLM_MEMORY_BUDGET_MB', 'llm.memoryBudgetMB', 'number'],
  ['NODESAGE_LLM_THREADS', 'llm.threads', 'number'],
  ['NODESAGE_LLM_GPU', 'llm.gpu', 'string'],
  ['NODESAGE_LLM_CONTEXT_SIZE', 'llm.contextSize', 'number'],
  ['NODESAGE_LLM_MAX_TOKENS', 'llm.maxTokens', 'number'],
  ['NODESAGE_LLM_PROMPT_TOKENS', 'llm.promptTokens', 'number'],
  ['NODESAGE_LLM_TIMEOUT_SECONDS', 'llm.timeoutSeconds', 'number'],
  ['NODESAGE_LLM_IDLE_UNLOAD_SECONDS', 'llm.idleUnloadSeconds', 'number'],
  ['NODESAGE_LLM_SHA256', 'llm.sha256', 'string'],
  ['NODESAGE_LLM_MODELS_DIR', 'llm.modelsDir', 'string'],
  ['NODESAGE_LLM_BACKEND_URL', 'llm.backend.url', 'string'],
  ['NODESAGE_LLM_BACKEND_MODEL', 'llm.backend.model', 'string'],
  ['NODESAGE_LLM_BACKEND_CA_FILE', 'llm.backend.caFile', 'string'],
  ['NODESAGE_LLM_BACKEND_TOKEN_FILE', 'llm.backend.tokenFile', 'string'],
  ['NODESAGE_EXPORT_CONDITIONS', 'exporters.conditions', 'bool'],
  ['NODESAGE_EXPORT_EVENTS', 'exporters.events', 'bool'],
  ['NODESAGE_AUTH_MODE', 'auth.mode', 'string'],
  ['NODESAGE_AUTH_TOKEN_FILE', 'auth.tokenFile', 'string'],
  ['NODESAGE_AUTH_ALLOW_UNAUTHENTICATED', 'auth.allowUnauthenticated', 'bool'],
  ['NODESAGE_AUTH_SOCKET', 'auth.socket', 'bool'],
];

function setPath(obj: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Raw;
  }
  cur[keys[keys.length - 1]!] = value;
}

function flatten(obj: Raw, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && !['detectors'].includes(p)) out.push(...flatten(v as Raw, p));
    else out.push([p, v]);
  }
  return out;
}

const num = (min: number, max: number) => z.number().min(min).max(max);
const positive = z.number().positive();

// One schema per leaf key, so an error names exactly one key.
const LEAVES: Record<string, [z.ZodType, string]> = {
  nodeName: [z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/), 'a DNS-1123 node name'],
  hostRoot: [z.string().startsWith('/').or(z.string().startsWith('.')), 'an absolute or relative folder path'],
  kubeletUrl: [z.string().url().regex(/^https?:\/\//).nullable(), 'an http(s) URL such as https://10.0.0.5:10250'],
  kubeletInsecureSkipTlsVerify: [z.boolean(), 'true or false'],
  kubeletTokenFile: [z.string().min(1), 'a file path'],
  kubeletCaFile: [z.string().min(1), 'a file path'],
  kubeconfig: [z.string().min(1).nullable(), 'a kubeconfig file path'],
  standalone: [z.boolean(), 'true or false'],
  listen: [z.string(), 'host:port (e.g. 127.0.0.1:8877) or unix:/path/to.sock'],
  dataDir: [z.string().min(1), 'a folder path'],
  model: [z.string().min(1).nullable(), 'a GGUF file path or a catalog id'],
  logLevel: [z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'one of fatal, error, warn, info, debug, trace, silent'],
  detectIntervalSeconds: [num(0.05, 3600), 'a number of seconds from 0.05 to 3600'],
  hostIntervalSeconds: [num(0.05, 3600), 'a number of seconds from 0.05 to 3600'],
  kubeletIntervalSeconds: [num(0.05, 3600), 'a number of seconds from 0.05 to 3600'],
  quietPeriodMinutes: [num(0, 10080), 'a number of minutes from 0 to 10080'],
  'retention.maxAgeDays': [num(0.01, 3650), 'a number of days from 0.01 to 3650'],
  'retention.maxSizeMB': [num(1, 1_000_000), 'a size in MiB from 1'],
  'sources.host': [z.boolean(), 'true or false'],
  'sources.podLogs': [z.boolean(), 'true or false'],
  'sources.journald': [z.boolean(), 'true or false'],
  'sources.kmsg': [z.boolean(), 'true or false'],
  'sources.kubelet': [z.boolean(), 'true or false'],
  'sources.kubeApi': [z.boolean(), 'true or false'],
  journaldUnits: [z.array(z.string().min(1)), 'a list of systemd unit names'],
  networkMounts: [z.array(z.string().startsWith('/')), 'a list of absolute mount points'],
  redactPatterns: [z.array(z.string()), 'a list of regular expressions'],
  runbooksDir: [z.string().min(1).nullable(), 'a folder path'],
  'llm.memoryBudgetMB': [positive, 'a positive number of MiB'],
  'llm.contextSize': [z.number().int().min(256).max(131072), 'an integer from 256 to 131072'],
  'llm.threads': [z.number().int().min(0).max(256), 'an integer from 0 (auto) to 256'],
  'llm.gpu': [z.enum(['auto', 'cuda', 'vulkan', 'off']), 'one of auto, cuda, vulkan, off'],
  'llm.gpuLayers': [z.number().int().min(-1), 'an integer, -1 for all that fit'],
  'llm.idleUnloadSeconds': [z.number().min(0), 'a number of seconds (0 = never unload)'],
  'llm.maxTokens': [z.number().int().min(16).max(8192), 'an integer from 16 to 8192'],
  'llm.promptTokens': [z.number().int().min(64).max(8192), 'an integer from 64 to 8192'],
  'llm.timeoutSeconds': [positive, 'a positive number of seconds'],
  'llm.sha256': [z.string().regex(/^[0-9a-f]{64}$/).nullable(), 'a 64-character hex sha256'],
  'llm.modelsDir': [z.string().min(1), 'a folder path'],
  'llm.loras': [
    z.array(z.object({ path: z.string().min(1), scale: z.number().finite().optional(), sha256: z.string().regex(/^[0-9a-f]{64}$/).optional() }).strict()),
    'a list of {path, scale?, sha256?} LoRA adapter files',
  ],
  'llm.backend.url': [z.string().url().regex(/^https?:\/\//), 'an https URL of an OpenAI-compatible /v1 base, e.g. https://llm.site.internal/v1'],
  'llm.backend.model': [z.string().min(1).nullable(), 'a model name'],
  'llm.backend.caFile': [z.string().min(1).nullable(), 'a CA bundle file path'],
  'llm.backend.tokenFile': [z.string().min(1).nullable(), 'a file path'],
  'exporters.conditions': [z.boolean(), 'true or false'],
  'exporters.events': [z.boolean(), 'true or false'],
  'auth.mode': [z.enum(['kubernetes', 'token-file', 'none']).nullable(), 'one of kubernetes, token-file, none'],
  'auth.tokenFile': [z.string().min(1).nullable(), 'a file path'],
  'auth.allowUnauthenticated': [z.boolean(), 'true or false'],
  'auth.socket': [z.boolean(), 'true or false'],
  'auth.allowTtlSeconds': [num(0, 3600), 'a number of seconds from 0 to 3600'],
  'auth.denyTtlSeconds': [num(0, 3600), 'a number of seconds from 0 to 3600'],
  'auth.staleSeconds': [num(0, 7 * 86400), 'a number of seconds from 0 to 604800'],
  'auth.reviewTimeoutSeconds': [num(0.1, 60), 'a number of seconds from 0.1 to 60'],
  'limits.headersTimeoutSeconds': [num(0.1, 600), 'a number of seconds from 0.1 to 600'],
  'limits.requestTimeoutSeconds': [num(0.1, 600), 'a number of seconds from 0.1 to 600'],
  'limits.maxConnections': [z.number().int().min(1).max(100_000), 'an integer from 1 to 100000'],
  'limits.requestsPerSecond': [z.number().positive().max(1_000_000), 'a positive number'],
  'limits.burst': [z.number().int().min(1).max(1_000_000), 'an integer from 1'],
  'limits.modelRequestsPerIdentity': [z.number().int().min(1).max(64), 'an integer from 1 to 64'],
};

function defaults(): Raw {
  return {
    hostRoot: '/',
    kubeletUrl: null,
    kubeletInsecureSkipTlsVerify: false,
    kubeletTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    kubeletCaFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
    kubeconfig: null,
    standalone: false,
    listen: '127.0.0.1:8877',
    model: null,
    logLevel: 'info',
    detectIntervalSeconds: 10,
    hostIntervalSeconds: 30,
    kubeletIntervalSeconds: 30,
    quietPeriodMinutes: 30,
    retention: { maxAgeDays: 30, maxSizeMB: 256 },
    sources: { host: true, podLogs: true, journald: true, kmsg: true, kubelet: true, kubeApi: true },
    networkMounts: [],
    // Edge distributions run the kubelet (and containerd) inside their own units; smartd, kdump and ABRT report disk health and kernel crashes.
    journaldUnits: ['kubelet', 'containerd', 'crio', 'docker', 'chronyd', 'chrony', 'systemd-timesyncd', 'k3s', 'k3s-agent', 'rke2-server', 'rke2-agent', 'k0sworker', 'k0scontroller', 'snap.microk8s.daemon-kubelite', 'snap.microk8s.daemon-containerd', 'smartd', 'smartmontools', 'kdump', 'kdump-tools', 'systemd-pstore', 'abrtd'],
    detectors: {},
    redactPatterns: [],
    runbooksDir: null,
    llm: {
      memoryBudgetMB: 1792,
      contextSize: 4096,
      threads: 0,
      gpu: 'auto',
      gpuLayers: -1,
      idleUnloadSeconds: 600,
      maxTokens: 384,
      promptTokens: 320,
      timeoutSeconds: 120,
      sha256: null,
      modelsDir: '/var/lib/nodesage/models',
      loras: [],
      backend: null,
    },
    exporters: { conditions: false, events: false },
    auth: {
      mode: null,
      tokenFile: null,
      allowUnauthenticated: false,
      socket: true,
      allowTtlSeconds: 60,
      denyTtlSeconds: 10,
      staleSeconds: 3600,
      reviewTimeoutSeconds: 5,
    },
    limits: { headersTimeoutSeconds: 10, requestTimeoutSeconds: 20, maxConnections: 256, requestsPerSecond: 20, burst: 60, modelRequestsPerIdentity: 1 },
  };
}

function parseEnvValue(origin: string, v: string, kind: 'string' | 'bool' | 'number' | 'list'): unknown {
  if (kind === 'string') return v;
  if (kind === 'list') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (kind === 'bool') {
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    throw new ConfigError(origin, v, 'true or false');
  }
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(origin, v, 'a number');
  return n;
}

function readConfigFile(path: string, origin: string): Raw {
  if (!existsSync(path)) throw new ConfigError(origin, path, 'an existing YAML or JSON file');
  const text = readFileSync(path, 'utf8');
  let data: unknown;
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(origin, path, `a valid YAML or JSON file (${(err as Error).message.split('\n')[0]})`);
  }
  if (data == null) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(origin, path, 'a YAML/JSON mapping of keys');
  return data as Raw;
}

/** Inputs of loadConfig; tests pass their own env and files. */
export interface LoadConfigInput {
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  flags?: ConfigFlags;
  /** Folder for relative paths. Defaults to process.cwd(). */
  cwd?: string;
  /** Service-account folder, to detect in-cluster mode. Defaults to /var/run/secrets/kubernetes.io/serviceaccount. */
  serviceAccountDir?: string;
}

/** Reads, validates and freezes the configuration. Throws ConfigError. */
export function loadConfig(input: LoadConfigInput = {}): Readonly<Config> {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const cwd = input.cwd ?? process.cwd();
  const saDir = input.serviceAccountDir ?? '/var/run/secrets/kubernetes.io/serviceaccount';

  const raw = defaults();
  const origin = new Map<string, string>();
  const put = (key: string, value: unknown, from: string) => {
    setPath(raw, key, value);
    origin.set(key, from);
  };

  const configFile = flags.config ?? env.NODESAGE_CONFIG ?? null;
  if (configFile) {
    const from = flags.config ? '--config' : 'NODESAGE_CONFIG';
    const file = readConfigFile(resolve(cwd, configFile), from);
    for (const [k, v] of flatten(file)) {
      if (!(k in LEAVES) && k !== 'detectors') {
        throw new ConfigError(`${configFile}:${k}`, v, `not a known key (known: ${Object.keys(LEAVES).join(', ')})`);
      }
      put(k, v, `${configFile}:${k}`);
    }
  }

  if (env.NODE_NAME) put('nodeName', env.NODE_NAME, 'NODE_NAME');
  if (env.KUBECONFIG) put('kubeconfig', env.KUBECONFIG.split(':')[0], 'KUBECONFIG');
  for (const [envKey, key, kind] of ENV_KEYS) {
    const v = env[envKey];
    if (v !== undefined && v !== '') put(key, parseEnvValue(envKey, v, kind), envKey);
  }
  const flagNames: [keyof ConfigFlags, string, string][] = [
    ['nodeName', 'nodeName', '--node-name'],
    ['hostRoot', 'hostRoot', '--host-root'],
    ['kubeletUrl', 'kubeletUrl', '--kubelet-url'],
    ['kubeconfig', 'kubeconfig', '--kubeconfig'],
    ['standalone', 'standalone', '--standalone'],
    ['listen', 'listen', '--listen'],
    ['dataDir', 'dataDir', '--data-dir'],
    ['model', 'model', '--model'],
    ['logLevel', 'logLevel', '--log-level'],
  ];
  for (const [flag, key, name] of flagNames) {
    if (flags[flag] !== undefined) put(key, flags[flag], name);
  }

  // Validate every leaf.
  for (const [key, [schema, allowed]] of Object.entries(LEAVES)) {
    const value = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Raw)[k] : undefined), raw);
    if (value === undefined) continue;
    const r = schema.safeParse(value);
    if (!r.success) throw new ConfigError(origin.get(key) ?? key, value, allowed);
  }
  const detectors = DETECTOR_OPTIONS_SCHEMA.safeParse(raw.detectors);
  if (!detectors.success) throw detectorError(detectors.error.issues[0]!, raw.detectors, origin);
  const listen = parseListen(raw.listen as string);
  if (!listen) throw new ConfigError(origin.get('listen') ?? 'listen', raw.listen, LEAVES.listen![1]);

  const inCluster = Boolean(env.KUBERNETES_SERVICE_HOST) && existsSync(join(saDir, 'token'));
  const mode: Mode = raw.kubeconfig ? 'kubeconfig' : inCluster ? 'in-cluster' : 'host';
  const nodeName = (raw.nodeName as string | undefined) ?? hostname().toLowerCase();
  if (!LEAVES.nodeName![0].safeParse(nodeName).success) {
    throw new ConfigError('nodeName (from the host name)', nodeName, 'a DNS-1123 node name; set NODE_NAME');
  }
  let kubeletUrl = raw.kubeletUrl as string | null;
  if (!kubeletUrl && env.NODE_IP) {
    kubeletUrl = `https://${env.NODE_IP.includes(':') ? `[${env.NODE_IP}]` : env.NODE_IP}:10250`;
  }
  const dataDir = resolve(cwd, (raw.dataDir as string | undefined) ?? (mode === 'in-cluster' ? '/var/lib/nodesage' : '.nodesage'));
  const sources = raw.sources as Config['sources'];
  if (mode === 'host') {
    // With no cluster there is no kubelet or API server to ask, unless a kubelet URL is given.
    if (!origin.has('sources.kubeApi')) sources.kubeApi = false;
    if (!origin.has('sources.kubelet') && !kubeletUrl) sources.kubelet = false;
  }
  if (raw.standalone) sources.kubeApi = false;

  // A catalog id names a file staged under llm.modelsDir (never downloaded).
  let model = raw.model ? String(raw.model) : null;
  const llm = raw.llm as Config['llm'];
  if (model) {
    const modelsDir = resolve(cwd, llm.modelsDir);
    const resolved = resolveModel(model, modelsDir);
    if (!resolved) {
      const ids = readCatalog().map((m) => m.id);
      throw new ConfigError(origin.get('model') ?? 'model', model, `a GGUF file path or a catalog id (${ids.join(', ') || 'no catalog found'})`);
    }
    if (resolved.id) model = resolved.path;
    llm.modelsDir = modelsDir;
    if (resolved.sha256 && !llm.sha256) llm.sha256 = resolved.sha256;
  }

  llm.loras = (llm.loras as { path: string; scale?: number; sha256?: string }[]).map((l) => ({ path: resolve(cwd, l.path), scale: l.scale ?? 1, sha256: l.sha256 ?? null }));
  llm.backend = siteBackend(llm.backend as Partial<SiteBackendConfig> | null, origin, cwd, model);
  // Kubernetes modes check callers with the API server; elsewhere a token file, when given, is the way in.
  const auth = raw.auth as Omit<Config['auth'], 'mode'> & { mode: AuthMode | null };
  const kubeAuthPossible = mode !== 'host' && !raw.standalone;
  auth.mode ??= auth.tokenFile ? 'token-file' : kubeAuthPossible ? 'kubernetes' : 'none';
  if (auth.mode === 'token-file' && !auth.tokenFile) {
    throw new ConfigError(origin.get('auth.mode') ?? 'auth.mode', auth.mode, 'token-file needs auth.tokenFile (NODESAGE_AUTH_TOKEN_FILE); create one with `nodesage token create`');
  }
  if (auth.mode === 'kubernetes' && !kubeAuthPossible) {
    throw new ConfigError(origin.get('auth.mode') ?? 'auth.mode', auth.mode, 'kubernetes needs the API server (in-cluster or kubeconfig mode, not standalone); use token-file');
  }
  if (auth.tokenFile) auth.tokenFile = resolve(cwd, auth.tokenFile);

  const cfg: Config = {
    ...(raw as unknown as Config),
    auth: auth as Config['auth'],
    clientToken: env.NODESAGE_TOKEN ? env.NODESAGE_TOKEN.trim() : null,
    mode,
    nodeName,
    hostRoot: resolve(cwd, raw.hostRoot as string),
    kubeletUrl,
    listen,
    dataDir,
    sources,
    model,
    configFile: configFile ? resolve(cwd, configFile) : null,
  };
  return deepFreeze(cfg);
}

/**
 * The first problem of the `detectors` section as a ConfigError naming the full
 * key (`detectors.disk.warnPercnt`) and where it came from: the env var that set
 * it, else the config file.
 */
function detectorError(issue: z.core.$ZodIssue, section: unknown, origin: Map<string, string>): ConfigError {
  const path = ['detectors', ...issue.path.map(String)];
  let value: unknown = path.slice(1).reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Raw)[k] : undefined), section);
  let allowed = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    value = (value as Raw)[key];
    allowed = `not a known key (known: ${knownKeys(path.slice(1)).join(', ')})`;
    path.push(key);
  } else if (issue.code === 'invalid_type' && issue.expected === 'object') {
    allowed = `a mapping of options (known: ${knownKeys(path.slice(1)).join(', ')})`;
  }
  // A bad list item is named by its list: `detectors.disabled="nope"`.
  while (/^\d+$/.test(path.at(-1)!)) path.pop();
  const key = path.join('.');
  let from = key;
  for (let i = path.length; i > 0; i--) {
    const o = origin.get(path.slice(0, i).join('.'));
    if (o === undefined) continue;
    // A file origin names the key it set (`file:detectors`); name the full key instead.
    from = o.includes(':') ? `${o.slice(0, o.lastIndexOf(':'))}:${key}` : o;
    break;
  }
  return new ConfigError(from, value, allowed);
}

/** Option names the detectors schema knows at a path (`[]`: detector keys, `['disk']`: disk options). */
function knownKeys(path: string[]): string[] {
  let s: z.ZodType = DETECTOR_OPTIONS_SCHEMA;
  for (const k of path) {
    while (s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
    if (!(s instanceof z.ZodObject)) return [];
    s = (s.shape as Record<string, z.ZodType>)[k]!;
    if (!s) return [];
  }
  while (s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** `llm.backend` checked across its fields: a URL is required, plain http only to loopback, and no local model beside it. */
function siteBackend(b: Partial<SiteBackendConfig> | null, origin: Map<string, string>, cwd: string, model: string | null): SiteBackendConfig | null {
  if (!b || Object.values(b).every((v) => v == null)) return null;
  const from = (k: string) => origin.get(`llm.backend.${k}`) ?? `llm.backend.${k}`;
  if (!b.url) throw new ConfigError(from('url'), b.url ?? null, 'an https URL: llm.backend needs a url when any of its keys is set');
  const u = new URL(b.url);
  if (u.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    throw new ConfigError(from('url'), b.url, 'https (evidence leaves the node), or http to a loopback address only');
  }
  if (model) throw new ConfigError(from('url'), b.url, 'leave `model` unset when llm.backend is set: a node diagnoses with one or the other');
  return {
    url: b.url.replace(/\/+$/, ''),
    model: b.model ?? null,
    caFile: b.caFile ? resolve(cwd, b.caFile) : null,
    tokenFile: b.tokenFile ? resolve(cwd, b.tokenFile) : null,
  };
}

/** The node-local socket the daemon serves without a token (`auth.socket`). */
export function localSocketPath(config: Pick<Config, 'dataDir'>): string {
  return join(config.dataDir, 'nodesage.sock');
}

/** True when the address is reachable from this host only (loopback or a unix socket). */
export function isLocalListen(l: Listen): boolean {
  if (l.kind === 'unix') return true;
  return l.host === 'localhost' || l.host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(l.host);
}

/**
 * The daemon refuses to serve everyone by accident: a listen address other than
 * loopback needs an auth method, or `auth.allowUnauthenticated: true` said on
 * purpose. Throws ConfigError naming `auth.mode`.
 */
export function assertListenProtected(config: Readonly<Config>): void {
  if (config.auth.mode !== 'none' || config.auth.allowUnauthenticated || isLocalListen(config.listen)) return;
  throw new ConfigError(
    'auth.mode',
    config.auth.mode,
    `listen ${formatListen(config.listen)} is reachable from other hosts: set auth.mode (kubernetes, or token-file with auth.tokenFile), listen on 127.0.0.1, or set auth.allowUnauthenticated: true`,
  );
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Proxy settings for `nodesage model pull` (the only command that uses the network): HTTPS_PROXY, HTTP_PROXY, NO_PROXY, either case. */
export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): { httpsProxy?: string; httpProxy?: string; noProxy?: string } {
  const pick = (name: string) => env[name] || env[name.toLowerCase()] || undefined;
  const out: { httpsProxy?: string; httpProxy?: string; noProxy?: string } = {};
  const https = pick('HTTPS_PROXY');
  const http = pick('HTTP_PROXY');
  const no = pick('NO_PROXY');
  if (https) out.httpsProxy = https;
  if (http) out.httpProxy = http;
  if (no) out.noProxy = no;
  return out;
}
