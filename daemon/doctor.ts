/**
 * `nodesage doctor`: checks what the daemon needs on this node, one line per
 * check with a fix: host paths (mounted, readable), the kubelet (reachable,
 * allowed), the API server (reachable, allowed to read this node), journald,
 * the model against the memory budget, free disk of the data dir, the clock.
 * Read-only; every check has a time limit.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statfsSync } from 'node:fs';
import type https from 'node:https';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { kubeClient } from './collectors/kube/client.js';
import type { Config } from './config.js';
import type { Style } from './cli/format.js';
import { assertWithinBudget, estimateMemory, inspectGguf } from './diagnoser/gguf-check.js';

/** The outcome of one check. */
export interface DoctorCheck {
  /** Stable id: `host-path`, `kubelet`, `apiserver`, `journald`, `model`, `disk`, `clock`. */
  id: string;
  /** What was checked, for a person. */
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  /** What was found. */
  detail: string;
  /** What to do about it; null when nothing is needed. */
  fix: string | null;
}

type Check = Omit<DoctorCheck, 'id' | 'name'>;
const ok = (detail: string): Check => ({ status: 'ok', detail, fix: null });
const TIMEOUT_MS = 4_000;

function readable(path: string, dir: boolean): string | null {
  try {
    accessSync(path, dir ? constants.R_OK | constants.X_OK : constants.R_OK);
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unreadable';
  }
}

function hostPaths(config: Readonly<Config>): DoctorCheck[] {
  const root = config.hostRoot;
  const kube = config.mode !== 'host';
  const paths: { path: string; dir: boolean; needed: boolean; mount: string }[] = [
    { path: join(root, 'proc/meminfo'), dir: false, needed: true, mount: `${root}/proc` },
    { path: join(root, 'var/log/pods'), dir: true, needed: kube && config.sources.podLogs, mount: `${root}/var/log/pods (hostPath, read-only)` },
    { path: join(root, 'dev/kmsg'), dir: false, needed: false, mount: `${root}/dev/kmsg (needs the kmsg-privileged component)` },
  ];
  const out: DoctorCheck[] = [];
  for (const p of paths) {
    const name = `host path ${p.path}`;
    if (!existsSync(p.path)) {
      out.push({ id: 'host-path', name, status: p.needed ? 'fail' : 'skip', detail: 'missing', fix: p.needed ? `mount ${p.mount} into the container, or set hostRoot` : null });
      continue;
    }
    const why = readable(p.path, p.dir);
    out.push(
      why
        ? { id: 'host-path', name, status: p.needed ? 'fail' : 'warn', detail: `not readable (${why})`, fix: `run as a user that may read ${p.path} (the DaemonSet runs as uid 0)` }
        : { id: 'host-path', name, ...ok('readable') },
    );
  }
  return out;
}

function httpsGet(url: string, options: https.RequestOptions): Promise<{ status: number; date: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ...options, method: 'GET', timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, date: res.headers.date }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

async function kubelet(config: Readonly<Config>): Promise<Check> {
  if (!config.kubeletUrl) return { status: config.mode === 'host' ? 'skip' : 'warn', detail: 'no kubelet URL', fix: config.mode === 'host' ? null : 'set NODE_IP (downward API status.hostIP) or kubeletUrl' };
  let token: string | undefined;
  let ca: Buffer | undefined;
  try {
    token = readFileSync(config.kubeletTokenFile, 'utf8').trim();
  } catch {
    return { status: 'fail', detail: `cannot read the token file ${config.kubeletTokenFile}`, fix: 'mount the service-account token or set kubeletTokenFile' };
  }
  if (!config.kubeletInsecureSkipTlsVerify) {
    try {
      ca = readFileSync(config.kubeletCaFile);
    } catch {
      return { status: 'fail', detail: `cannot read the CA file ${config.kubeletCaFile}`, fix: 'set kubeletCaFile, or kubeletInsecureSkipTlsVerify for self-signed kubelet certificates' };
    }
  }
  const base = config.kubeletUrl.replace(/\/$/, '');
  try {
    const r = await httpsGet(`${base}/stats/summary?only_cpu_and_memory=true`, {
      headers: { authorization: `Bearer ${token}` },
      ...(ca ? { ca } : {}),
      rejectUnauthorized: !config.kubeletInsecureSkipTlsVerify,
    });
    if (r.status === 200) return ok(`${base} answers /stats/summary`);
    if (r.status === 401) return { status: 'fail', detail: `${base} refuses the token (401)`, fix: 'the kubelet needs webhook authentication (authentication.webhook.enabled: true)' };
    if (r.status === 403) return { status: 'fail', detail: `${base} forbids /stats/summary (403)`, fix: 'grant the service account get on nodes/stats (the ClusterRole in daemonset/base)' };
    return { status: 'warn', detail: `${base} answered ${r.status}`, fix: 'check the kubelet log' };
  } catch (err) {
    const msg = (err as Error).message;
    const tls = /certificate|self[- ]signed|CERT/i.test(msg);
    return { status: 'fail', detail: `${base}: ${msg}`, fix: tls ? 'enable serverTLSBootstrap on the kubelet, or set kubeletInsecureSkipTlsVerify' : 'check NODE_IP and that the NetworkPolicy allows port 10250' };
  }
}

async function apiServer(config: Readonly<Config>): Promise<{ check: Check; date?: string }> {
  if (config.mode === 'host' || config.standalone) return { check: { status: 'skip', detail: config.standalone ? 'standalone: never contacted' : 'host mode: no cluster', fix: null } };
  try {
    // The Kubernetes client loads only when there is a cluster to ask.
    const { KubeConfig } = await kubeClient();
    const kc = new KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
    const cluster = kc.getCurrentCluster();
    if (!cluster) return { check: { status: 'fail', detail: 'the kubeconfig names no cluster', fix: 'fix KUBECONFIG / --kubeconfig' } };
    const url = `${cluster.server.replace(/\/$/, '')}/api/v1/nodes/${encodeURIComponent(config.nodeName)}`;
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const res = await httpsGet(url, opts);
    const date = res.date;
    if (res.status === 200) return { check: ok(`${cluster.server} lets this node's agent read node ${config.nodeName}`), ...(date ? { date } : {}) };
    if (res.status === 403) return { check: { status: 'fail', detail: `reading node ${config.nodeName} is forbidden (403)`, fix: 'apply the ClusterRole of daemonset/base (get/list/watch nodes, pods, events)' } };
    if (res.status === 404) return { check: { status: 'fail', detail: `node ${config.nodeName} does not exist`, fix: 'set NODE_NAME from spec.nodeName (downward API)' } };
    return { check: { status: 'fail', detail: `${cluster.server} answered ${res.status}`, fix: 'check the service-account token' } };
  } catch (err) {
    return { check: { status: 'fail', detail: `API server unreachable: ${(err as Error).message}`, fix: 'check the NetworkPolicy (egress 443/6443) and KUBERNETES_SERVICE_HOST' } };
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: TIMEOUT_MS }, (err, stdout) => {
      resolve({ code: err ? ((err as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 1) : 0, out: String(stdout) });
    });
  });
}

async function journald(config: Readonly<Config>): Promise<Check> {
  if (!config.sources.journald) return { status: 'skip', detail: 'source disabled', fix: null };
  const dirs = ['var/log/journal', 'run/log/journal'].map((d) => join(config.hostRoot, d)).filter((d) => existsSync(d));
  const v = await run('journalctl', ['--version']);
  if (v.code === 127) return { status: 'warn', detail: 'journalctl is not installed', fix: 'install systemd (journalctl) or use the nodesage image; kernel messages then come from /dev/kmsg only' };
  if (dirs.length === 0) return { status: 'warn', detail: `no journal under ${config.hostRoot} (var/log/journal, run/log/journal)`, fix: 'mount /var/log/journal and /run/log/journal read-only' };
  const bad = dirs.find((d) => readable(d, true));
  if (bad) return { status: 'fail', detail: `${bad} not readable`, fix: 'run as uid 0 or in the systemd-journal group' };
  return ok(`${v.out.split('\n')[0]?.trim() ?? 'journalctl'}; journal at ${dirs.join(', ')}`);
}

async function model(config: Readonly<Config>): Promise<Check> {
  if (!config.model) return { status: 'skip', detail: 'no model: rules-only mode', fix: null };
  try {
    const summary = await inspectGguf(config.model);
    const ctx = Math.min(config.llm.contextSize, summary.trainedContextLength ?? config.llm.contextSize);
    const estimate = estimateMemory(summary, ctx, Math.min(512, ctx));
    assertWithinBudget(estimate, config.llm.memoryBudgetMB * 1024 * 1024, ctx);
    return ok(`${summary.architecture}, needs ~${Math.ceil(estimate.totalBytes / 1024 / 1024)} MiB of ${config.llm.memoryBudgetMB} MiB`);
  } catch (err) {
    return { status: 'fail', detail: (err as Error).message, fix: 'stage a model from models/catalog.json that fits llm.memoryBudgetMB, or raise the budget and the pod memory limit' };
  }
}

function disk(config: Readonly<Config>): Check {
  let dir = config.dataDir;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (dir === config.dataDir && readable(dir, true) === null) {
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      return { status: 'fail', detail: `${dir} is not writable`, fix: 'mount /var/lib/nodesage read-write (hostPath) for the state' };
    }
  }
  try {
    const s = statfsSync(dir);
    const free = s.bavail * s.bsize;
    const need = config.retention.maxSizeMB * 1024 * 1024;
    const mib = (n: number) => `${Math.floor(n / 1024 / 1024)} MiB`;
    if (free < Math.min(need, 64 * 1024 * 1024)) return { status: 'fail', detail: `${mib(free)} free under ${dir}`, fix: `free space, or move dataDir (retention.maxSizeMB is ${config.retention.maxSizeMB})` };
    if (free < need) return { status: 'warn', detail: `${mib(free)} free under ${dir}, less than retention.maxSizeMB`, fix: 'lower retention.maxSizeMB or free space' };
    return ok(`${mib(free)} free under ${dir}`);
  } catch (err) {
    return { status: 'fail', detail: `cannot stat ${dir}: ${(err as Error).message}`, fix: 'mount /var/lib/nodesage read-write' };
  }
}

async function clock(serverDate: string | undefined): Promise<Check> {
  const t = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
  if (t.code === 0 && t.out.trim() === 'yes') return ok('NTP synchronised (timedatectl)');
  if (serverDate) {
    const skew = Math.abs(Date.now() - Date.parse(serverDate)) / 1000;
    if (skew > 5) return { status: 'fail', detail: `${skew.toFixed(0)} s off the API server's clock`, fix: 'enable chrony or systemd-timesyncd on the node' };
    return ok(`within ${Math.max(1, Math.ceil(skew))} s of the API server's clock`);
  }
  if (t.code === 0 && t.out.trim() === 'no') return { status: 'warn', detail: 'NTP not synchronised (timedatectl)', fix: 'enable chrony or systemd-timesyncd' };
  return { status: 'skip', detail: 'no way to tell here (no timedatectl, no API server)', fix: null };
}

/** Runs every check (in parallel where they are independent). */
export async function runDoctor(config: Readonly<Config>): Promise<DoctorCheck[]> {
  const [kube, api, jd, mdl] = await Promise.all([kubelet(config), apiServer(config), journald(config), model(config)]);
  return [
    ...hostPaths(config),
    { id: 'kubelet', name: 'kubelet', ...kube },
    { id: 'apiserver', name: 'API server', ...api.check },
    { id: 'journald', name: 'journald', ...jd },
    { id: 'model', name: 'model', ...mdl },
    { id: 'disk', name: `disk of ${config.dataDir}`, ...disk(config) },
    { id: 'clock', name: 'clock', ...(await clock(api.date)) },
  ];
}

/** One line per check, with its fix. */
export function formatDoctor(checks: DoctorCheck[], style: Style): string {
  const mark = { ok: style.green('ok  '), warn: style.yellow('warn'), fail: style.red('FAIL'), skip: style.dim('skip') };
  const w = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${mark[c.status]} ${c.name.padEnd(w)}  ${c.detail}${c.fix ? style.dim(`  → ${c.fix}`) : ''}`);
  const failed = checks.filter((c) => c.status === 'fail').length;
  lines.push('', failed ? `${failed} check${failed > 1 ? 's' : ''} failed.` : 'No check failed.');
  return `${lines.join('\n')}\n`;
}
