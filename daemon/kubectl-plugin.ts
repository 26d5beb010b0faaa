#!/usr/bin/env node
/**
 * `kubectl-nodesage`: a kubectl plugin (any executable named kubectl-<x> on
 * PATH) that reaches the nodesage agents through the Kubernetes API: a
 * port-forward to the agent pod over the API server's WebSocket, like
 * `kubectl port-forward`. It never uses `nodes/proxy` (which grants far more
 * than reading one agent). Your kubeconfig decides where and as whom.
 *
 *   kubectl nodesage --node N findings | show ID | ask "question" | status
 *   kubectl nodesage findings --all-nodes     fleet view: bounded fan-out, a time limit per node
 */
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { CoreV1Api, KubeConfig, PortForward } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { failingTo, UsageError } from './cli/action.js';
import { callDaemon } from './cli/client.js';
import { createStyle, formatFindingDetail, formatFindingsTable, formatStatus, wantsColor } from './cli/format.js';
import { SINCE_HELP, parseSince } from './core/since.js';
import { CATEGORIES, type Finding, SEVERITIES, type Status } from './core/types.js';
import type { Listen } from './config.js';
import { VERSION } from './version.js';

/** Options shared by every subcommand. */
interface Global {
  node?: string;
  namespace: string;
  selector: string;
  port: string;
  kubeconfig?: string;
  context?: string;
  tokenFile?: string;
  timeout: string;
  concurrency: string;
}

function kubeConfig(g: Global): KubeConfig {
  const kc = new KubeConfig();
  if (g.kubeconfig) kc.loadFromFile(g.kubeconfig);
  else kc.loadFromDefault();
  if (g.context) kc.setCurrentContext(g.context);
  return kc;
}

/** The agent's bearer token: --token-file, else the kubeconfig user's token (the agent reviews it with the API server). */
function agentHeaders(g: Global, kc: KubeConfig): Record<string, string> {
  const token = g.tokenFile ? readFileSync(g.tokenFile, 'utf8').trim() : kc.getCurrentUser()?.token;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Agent pods by node name (a Running pod wins over others on the same node). */
async function agentPods(kc: KubeConfig, g: Global, node?: string): Promise<Map<string, string>> {
  const core = kc.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedPod({ namespace: g.namespace, labelSelector: g.selector, ...(node ? { fieldSelector: `spec.nodeName=${node}` } : {}) });
  const byNode = new Map<string, string>();
  for (const p of list.items) {
    const n = p.spec?.nodeName;
    const name = p.metadata?.name;
    if (!n || !name) continue;
    if (!byNode.has(n) || p.status?.phase === 'Running') byNode.set(n, name);
  }
  return byNode;
}

/**
 * Opens a loopback listener whose every connection is port-forwarded to
 * `pod`:`port` through the API server, runs `fn` against it, then closes it.
 */
async function throughPortForward<T>(kc: KubeConfig, g: Global, pod: string, fn: (target: Listen) => Promise<T>): Promise<T> {
  const forward = new PortForward(kc);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // The HTTP client on the other end sees the connection fail; nothing more to do here.
    socket.on('error', () => undefined);
    // The pod's answer to a refused port arrives on the error channel: fail the connection with it.
    const errors = new Writable({
      write(chunk: Buffer, _enc, cb) {
        // The channel opens with the port number, which arrives here as an empty chunk.
        if (chunk.length > 0) socket.destroy(new Error(chunk.toString('utf8').trim()));
        cb();
      },
    });
    forward.portForward(g.namespace, pod, [Number(g.port)], socket, errors, socket).then(
      (ws) => {
        const w = ws as { on?: (ev: string, f: () => void) => void };
        w.on?.('close', () => socket.end());
        socket.on('close', () => (ws as { close?: () => void }).close?.());
      },
      (err: Error) => socket.destroy(new Error(`port-forward to ${g.namespace}/${pod}: ${err.message}`)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await fn({ kind: 'tcp', host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}

/** GETs JSON from one node's agent. */
async function getFromNode<T>(kc: KubeConfig, g: Global, pod: string, path: string): Promise<T> {
  const headers = agentHeaders(g, kc);
  return throughPortForward(kc, g, pod, async (target) => JSON.parse(await callDaemon(target, path, { headers, timeoutMs: seconds(g.timeout) * 1000 })) as T);
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 600) throw new UsageError(`--timeout must be seconds from 1 to 600, not ${v}`);
  return n;
}

/** The one agent pod of `--node`, or a clear error. */
async function podOf(kc: KubeConfig, g: Global): Promise<string> {
  if (!g.node) throw new UsageError('name a node with --node N (or use `findings --all-nodes`)');
  const pods = await agentPods(kc, g, g.node);
  const pod = pods.get(g.node);
  if (!pod) throw new Error(`no nodesage pod on node ${g.node} (namespace ${g.namespace}, selector ${g.selector})`);
  return pod;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A node that did not answer, and why. */
interface Unanswered {
  node: string;
  error: string;
}

/** Every node's open findings, merged; the nodes that did not answer are named. */
async function fleetFindings(kc: KubeConfig, g: Global, query: string): Promise<{ findings: (Finding & { node: string })[]; unanswered: Unanswered[] }> {
  const pods = await agentPods(kc, g);
  const unanswered: Unanswered[] = [];
  // Nodes without an agent pod count too; listing nodes may be forbidden to the user, which only hides them.
  try {
    const nodes = await kc.makeApiClient(CoreV1Api).listNode();
    for (const n of nodes.items) {
      const name = n.metadata?.name;
      if (name && !pods.has(name)) unanswered.push({ node: name, error: 'no nodesage pod' });
    }
  } catch {
    // Not allowed to list nodes: the fleet is the set of agent pods.
  }
  const limitMs = seconds(g.timeout) * 1000;
  const concurrency = Math.max(1, Math.min(64, Number(g.concurrency) || 8));
  const results = await pool([...pods], concurrency, async ([node, pod]) => {
    try {
      const page = await Promise.race([
        getFromNode<{ items: Finding[] }>(kc, g, pod, `/v1/findings?${query}`),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${limitMs / 1000} s`)), limitMs).unref()),
      ]);
      return page.items.map((f) => ({ ...f, node }));
    } catch (err) {
      unanswered.push({ node, error: (err as Error).message.split('\n')[0]! });
      return [];
    }
  });
  unanswered.sort((a, b) => a.node.localeCompare(b.node));
  return { findings: results.flat(), unanswered };
}

function fail(err: unknown): never {
  const e = err as Error & { exitCode?: number; code?: number; body?: unknown };
  // client-node's ApiException carries the HTTP code; say it plainly.
  const msg = typeof e.code === 'number' ? `the API server answered ${e.code}: ${String(e.message).split('\n')[0]}` : String(e.message ?? err).split('\n')[0];
  process.stderr.write(`kubectl-nodesage: ${msg}\n`);
  process.exit(e.exitCode ?? 1);
}

const act = failingTo(fail);

const color = () => wantsColor(process.stdout, process.env);
const width = () => process.stdout.columns || 120;

const program = new Command()
  .name('kubectl nodesage')
  .description('Ask the nodesage agents of your cluster, through the Kubernetes API (port-forward to the agent pod; never nodes/proxy).')
  .version(VERSION)
  .option('--node <name>', 'the node whose agent to ask')
  .option('-n, --namespace <ns>', 'namespace of the nodesage DaemonSet', 'nodesage')
  .option('-l, --selector <labels>', 'label selector of the agent pods', 'app.kubernetes.io/name=nodesage')
  .option('--port <port>', 'the agent\'s port in the pod', '8877')
  .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
  .option('--context <name>', 'kubeconfig context')
  .option('--token-file <file>', 'bearer token for the agents (default: your kubeconfig user\'s token)')
  .option('--timeout <seconds>', 'time limit per node', '15')
  .option('--concurrency <n>', 'nodes asked at once by --all-nodes', '8')
  .enablePositionalOptions()
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'kubectl-nodesage: ')) })
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

const globals = () => program.opts<Global>();

program
  .command('findings')
  .description('open findings of one node (--node) or of every node (--all-nodes), worst first')
  .option('--all-nodes', 'every node: merged, with the nodes that did not answer named')
  .option('--json', 'print JSON')
  .addOption(new Option('--severity <severity>', 'only this severity').choices([...SEVERITIES]))
  .addOption(new Option('--category <category>', 'only this category').choices([...CATEGORIES]))
  .option('--since <time>', `only findings seen since: ${SINCE_HELP}`)
  .action(act(async (opts: { allNodes?: boolean; json?: boolean; severity?: string; category?: string; since?: string }) => {
    const g = globals();
    const kc = kubeConfig(g);
    const q = new URLSearchParams({ status: 'open', limit: '500' });
    if (opts.severity) q.set('severity', opts.severity);
    if (opts.category) q.set('category', opts.category);
    if (opts.since) {
      try {
        q.set('since', parseSince(opts.since));
      } catch (err) {
        throw new UsageError(`--since: ${(err as Error).message}`);
      }
    }
    const style = createStyle(color());
    if (opts.allNodes) {
      if (g.node) throw new UsageError('give either --node or --all-nodes, not both');
      const r = await fleetFindings(kc, g, q.toString());
      if (opts.json) process.stdout.write(`${JSON.stringify({ items: r.findings, unanswered: r.unanswered }, null, 2)}\n`);
      else process.stdout.write(formatFindingsTable(r.findings, { width: width(), style, nodeOf: (f) => (f as Finding & { node: string }).node }));
      if (r.unanswered.length > 0) {
        process.stderr.write(`kubectl-nodesage: ${r.unanswered.length} node(s) did not answer: ${r.unanswered.map((u) => `${u.node} (${u.error})`).join(', ')}\n`);
      }
      return;
    }
    const page = await getFromNode<{ items: Finding[] }>(kc, g, await podOf(kc, g), `/v1/findings?${q}`);
    process.stdout.write(opts.json ? `${JSON.stringify(page, null, 2)}\n` : formatFindingsTable(page.items, { width: width(), style }));
  }));

program
  .command('show')
  .description('one finding of --node: its evidence, links and diagnosis')
  .argument('<id>', 'finding id (16 hex characters)')
  .option('--json', 'print JSON')
  .action(act(async (id: string, opts: { json?: boolean }) => {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new UsageError(`a finding id is 16 hex characters, not "${id}"`);
    const g = globals();
    const kc = kubeConfig(g);
    const { showFinding } = await import('./cli/show.js');
    const story = await throughPortForward(kc, g, await podOf(kc, g), (target) => showFinding(target, id, { headers: agentHeaders(g, kc) }));
    process.stdout.write(opts.json ? `${JSON.stringify(story, null, 2)}\n` : formatFindingDetail(story.finding, story, { width: width(), style: createStyle(color()) }));
  }));

program
  .command('ask')
  .description('ask the agent of --node; the answer streams, then its citations')
  .argument('<question>', 'the question, in plain words')
  .option('--json', 'print the JSON body')
  .action(act(async (question: string, opts: { json?: boolean }) => {
    const g = globals();
    const kc = kubeConfig(g);
    const { runAsk } = await import('./cli/ask.js');
    await throughPortForward(kc, g, await podOf(kc, g), (target) =>
      runAsk(target, question, { json: opts.json === true, headers: agentHeaders(g, kc) }, process.stdout),
    );
  }));

program
  .command('status')
  .description('sources, model and store of the agent of --node')
  .option('--json', 'print JSON')
  .action(act(async (opts: { json?: boolean }) => {
    const g = globals();
    const kc = kubeConfig(g);
    const s = await getFromNode<Status>(kc, g, await podOf(kc, g), '/v1/status');
    process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
  }));

program.parseAsync(process.argv).catch(fail);
