#!/usr/bin/env node
/**
 * The `nodesage` command line: `daemon` runs the agent; the other commands talk
 * to a running daemon or work offline on a bundle. Every failure is one plain
 * line on stderr and a non-zero exit code.
 */
// First: on an unsupported Node, one line saying what to do, before any dependency loads.
import './node-version.js';
import { Command, Option } from 'commander';
import { assertListenProtected, type Config, ConfigError, type ConfigFlags, clientTarget, formatListen, loadConfig, proxyFromEnv } from './config.js';
import { callDaemon, type DaemonTarget, daemonTarget } from './cli/client.js';
import { createStyle, formatFindingDetail, formatFindingsTable, formatStatus, wantsColor } from './cli/format.js';
import { prettyStream } from './cli/pretty-log.js';
import { failingTo, UsageError } from './cli/action.js';
import { SINCE_HELP, parseSince } from './core/since.js';
import { CATEGORIES, type Finding, SEVERITIES, type Status } from './core/types.js';
import { createLogger } from './logger.js';
import { VERSION } from './version.js';
import { registerModelCommands } from './models/commands.js';

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (a refused model too). */
const EXIT_CONFIG = 2;

function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (YAML or JSON); env NODESAGE_CONFIG')
    .option('--node-name <name>', 'this node\'s name; env NODE_NAME')
    .option('--host-root <dir>', 'prefix of host paths (/var/log/pods, /dev/kmsg, /proc...); env NODESAGE_HOST_ROOT')
    .option('--kubelet-url <url>', 'kubelet URL; env NODESAGE_KUBELET_URL (default https://$NODE_IP:10250)')
    .option('--kubeconfig <file>', 'kubeconfig file; env KUBECONFIG')
    .option('--standalone', 'never contact the API server; env NODESAGE_STANDALONE')
    .option('--listen <addr>', 'host:port or unix:/path; env NODESAGE_LISTEN (default 127.0.0.1:8877)')
    .option('--data-dir <dir>', 'state folder; env NODESAGE_DATA_DIR')
    .option('--model <file>', 'GGUF model file or catalog id; env NODESAGE_MODEL')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent; env NODESAGE_LOG_LEVEL');
}

/** Options of the commands that talk to a running daemon. */
function addClientOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'the daemon: http://host:port or unix:/path; env NODESAGE_URL (default: the node-local socket when there is one, else http://127.0.0.1:8877)')
    .option('--token-file <file>', 'file holding a bearer token for the daemon (else NODESAGE_TOKEN); not needed over the node-local socket');
}

function flagsOf(opts: Record<string, unknown>): ConfigFlags {
  const f: ConfigFlags = {};
  for (const k of ['config', 'nodeName', 'hostRoot', 'kubeletUrl', 'kubeconfig', 'standalone', 'listen', 'dataDir', 'model', 'logLevel'] as const) {
    if (opts[k] !== undefined) (f as Record<string, unknown>)[k] = opts[k];
  }
  return f;
}

function configOrExit(opts: Record<string, unknown>): Readonly<Config> {
  try {
    return loadConfig({ flags: flagsOf(opts) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`nodesage: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

/**
 * The daemon a client command talks to: `--url` or NODESAGE_URL when given,
 * else the node-local socket when this user may use it, else the listen
 * address; with the token of `--token-file` or NODESAGE_TOKEN.
 */
function targetOf(opts: { url?: string; tokenFile?: string }): DaemonTarget {
  const config = configOrExit({});
  const url = clientTarget(opts.url);
  const tokenFile = typeof opts.tokenFile === 'string' ? { tokenFile: opts.tokenFile } : {};
  return url ? daemonTarget({ ...config, listen: url }, { listenFlag: true, ...tokenFile }) : daemonTarget(config, tokenFile);
}

const color = () => wantsColor(process.stdout, process.env);
const width = () => process.stdout.columns || 120;

async function runDaemon(opts: Record<string, unknown>): Promise<void> {
  const config = configOrExit(opts);
  try {
    assertListenProtected(config);
  } catch (err) {
    fail(err);
  }
  const tty = process.stdout.isTTY === true;
  // A person at a terminal reads lines; everything else (kubectl logs, collectors) gets JSON.
  // The daemon's parts load only for the daemon: client commands stay small and quick.
  const { createDaemon } = await import('./main.js');
  const logger = createLogger(config, tty ? prettyStream(process.stdout, color()) : undefined);
  let daemon: Awaited<ReturnType<typeof createDaemon>>;
  try {
    daemon = await createDaemon(config, logger);
  } catch (err) {
    fail(err);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // A stuck native call must not keep the pod in Terminating: hard exit after 9 s.
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, 9_000);
    force.unref();
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await daemon.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.debug({ err }, 'nodesage could not start');
    // The one line below says it all; the shutdown's own log lines would only repeat it.
    logger.level = 'silent';
    await daemon.stop().catch(() => undefined);
    const where = formatListen(config.listen);
    const line =
      e.code === 'EADDRINUSE'
        ? `cannot listen on ${where}: the address is already in use (is another nodesage running? set --listen or NODESAGE_LISTEN)`
        : e.code === 'EACCES'
          ? `cannot listen on ${where}: permission denied`
          : `could not start: ${e.message}`;
    process.stderr.write(`nodesage: ${line}\n`);
    process.exit(1);
  }
  if (tty) {
    const web = daemon.address.startsWith('http') ? `${daemon.address}/` : daemon.address;
    process.stdout.write(`\n  ${createStyle(color()).bold(web)}\n\n`);
  }
}

async function client<T>(opts: { url?: string; tokenFile?: string }, path: string): Promise<T> {
  return JSON.parse(await callDaemon(targetOf(opts), path)) as T;
}

/** Start-up problems that are the operator's to fix (exit 2): a bad token file, an unusable data folder. */
const SETUP_ERRORS = new Set(['TOKEN_FILE_INVALID', 'DIR_UNUSABLE']);

function exitCodeOf(err: unknown): number {
  if (err instanceof ConfigError) return EXIT_CONFIG;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && SETUP_ERRORS.has(code)) return EXIT_CONFIG;
  return (err as { exitCode?: number }).exitCode ?? 1;
}

function fail(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`nodesage: ${msg.split('\n')[0]}\n`);
  process.exit(exitCodeOf(err));
}

const act = failingTo(fail);

function sinceOrFail(since: string | undefined): string | undefined {
  if (since === undefined) return undefined;
  try {
    return parseSince(since);
  } catch {
    throw new UsageError(`--since must be ${SINCE_HELP}, not "${since}"`);
  }
}

const program = new Command()
  .name('nodesage')
  .description('On-node AI agent for Kubernetes: finds node and pod problems and explains them with a local model. Nothing leaves the node.')
  .version(VERSION)
  .enablePositionalOptions()
  .showSuggestionAfterError()
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'nodesage: ')) })
  .exitOverride((err) => {
    // Usage mistakes exit 2; --help and --version exit 0.
    process.exit(err.exitCode === 0 ? 0 : EXIT_CONFIG);
  });

addConfigOptions(program.command('daemon').description('run the agent (what `npm start` runs)')).action((opts) => runDaemon(opts));

addClientOptions(program.command('status').description('show the daemon\'s sources, model and store'))
  .option('--json', 'print the JSON body')
  .action(act(async (opts) => {
    const s = await client<Status>(opts, '/v1/status');
    process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
  }));

const findings = addClientOptions(program.command('findings').description('list findings (open by default); `findings show ID` tells one finding\'s whole story'))
  .option('--json', 'print JSON (the API page body)')
  .addOption(new Option('--status <status>', 'which findings').choices(['open', 'resolved', 'all']).default('open'))
  .addOption(new Option('--severity <severity>', 'only this severity').choices([...SEVERITIES]))
  .addOption(new Option('--category <category>', 'only this problem category').choices([...CATEGORIES]))
  .option('--since <time>', `only findings seen since: ${SINCE_HELP}`)
  .option('--limit <n>', 'page size (1-500)', '100')
  .action(act(async (opts) => {
    const q = new URLSearchParams();
    if (opts.status !== 'all') q.set('status', opts.status);
    if (opts.severity) q.set('severity', opts.severity);
    if (opts.category) q.set('category', opts.category);
    const since = sinceOrFail(opts.since);
    if (since) q.set('since', since);
    q.set('limit', String(opts.limit));
    const page = await client<{ items: Finding[]; nextCursor: string | null }>(opts, `/v1/findings?${q}`);
    process.stdout.write(
      opts.json ? `${JSON.stringify(page, null, 2)}\n` : formatFindingsTable(page.items, { width: width(), style: createStyle(color()) }),
    );
  }));

addClientOptions(findings.command('show').description('one finding: its evidence, what caused it and what it causes, and its diagnosis'))
  .argument('<id>', 'the finding id (16 hex characters, the ID column of `nodesage findings`)')
  .option('--json', 'print the finding and its links as JSON')
  .action(act(async (id: string, opts) => {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new UsageError(`a finding id is 16 hex characters (the ID column of \`nodesage findings\`), not "${id}"`);
    const { showFinding } = await import('./cli/show.js');
    const story = await showFinding(targetOf(opts), id);
    process.stdout.write(
      opts.json ? `${JSON.stringify(story, null, 2)}\n` : formatFindingDetail(story.finding, story, { width: width(), style: createStyle(color()) }),
    );
  }));

addConfigOptions(program.command('capture').description('write a node snapshot bundle (redacted) from the live sources, for offline analysis'))
  .requiredOption('--out <dir>', 'new folder for the bundle')
  .option('--seconds <n>', 'how long to collect', '5')
  .action(act(async (opts) => {
    const config = configOrExit(opts);
    const { capture } = await import('./capture.js');
    const seconds = Number(opts.seconds);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new UsageError(`--seconds must be a number from 0 to 600, got ${opts.seconds}`);
    const logger = createLogger({ ...config, logLevel: opts.logLevel ?? 'warn' }, process.stderr);
    const r = await capture(config, logger, opts.out, { durationMs: seconds * 1000 });
    process.stdout.write(`bundle written to ${opts.out} (${r.signals} signals; parts: ${r.parts.join(', ')})\n`);
    for (const s of r.sources) process.stdout.write(`  ${s.name.padEnd(9)} ${s.state.padEnd(9)} ${s.signals} signals${s.lastError ? `  ${s.lastError}` : ''}\n`);
    for (const [part, n] of Object.entries(r.truncated)) process.stdout.write(`  ${part}: ${n} older lines left out (size cap)\n`);
  }));

addClientOptions(program.command('ask').description('ask the daemon a question about this node; prints the answer as it is generated, then its citations'))
  .argument('<question>', 'the question, in plain words')
  .option('--since <time>', `only findings and log templates seen since: ${SINCE_HELP}`)
  .option('--json', 'print the JSON body (no streaming)')
  .action(act(async (question: string, opts) => {
    const { runAsk } = await import('./cli/ask.js');
    const since = sinceOrFail(opts.since);
    await runAsk(targetOf(opts), question, { ...(since ? { since } : {}), json: opts.json === true }, process.stdout);
  }));

addClientOptions(program.command('mcp').description('serve the daemon\'s findings to an MCP client over stdio (read-only tools)')).action(act(async (opts) => {
  const { runMcpStdio } = await import('./cli/mcp-stdio.js');
  await runMcpStdio(targetOf(opts));
}));

addConfigOptions(program.command('doctor').description('check this node for what nodesage needs: host paths, kubelet, API server, journald, model, disk, clock'))
  .option('--json', 'print the checks as JSON')
  .action(act(async (opts) => {
    const config = configOrExit(opts);
    const { runDoctor, formatDoctor } = await import('./doctor.js');
    const checks = await runDoctor(config);
    process.stdout.write(opts.json ? `${JSON.stringify({ checks }, null, 2)}\n` : formatDoctor(checks, createStyle(color())));
    if (checks.some((c) => c.status === 'fail')) process.exitCode = 1;
  }));

const token = program.command('token').description('static bearer tokens (auth.mode token-file)');
token
  .command('create')
  .description('make a new token: prints it once and appends its sha256 and name to the token file (created 0600)')
  .requiredOption('--token-file <file>', 'the token file the daemon reads (auth.tokenFile)')
  .requiredOption('--name <name>', 'who the token is for (shown as the caller\'s identity)')
  .option('--scope <roles>', 'what it may use: all, or roles reader, model-user, metrics (comma-separated)', 'all')
  .action(act(async (opts: { tokenFile: string; name: string; scope: string }) => {
    const { createToken } = await import('./api/auth/static-tokens.js');
    process.stdout.write(`${createToken(opts.tokenFile, opts.name, opts.scope)}\n`);
    process.stderr.write(`token "${opts.name}" (scope ${opts.scope}) added to ${opts.tokenFile}; it is shown only this once\n`);
  }));

const logs = program.command('logs').description('log tools');
logs
  .command('mine')
  .description('read log lines on stdin, print one JSON line {"templateId","template"} per input line (lines are redacted first, as the daemon does)')
  .option('--no-redact', 'mine the lines as they are, secrets included')
  .action(act(async (opts: { redact: boolean }) => {
    const [{ mineStream }, { createRedactor }] = await Promise.all([import('./detectors/templates/mine-cli.js'), import('./redact.js')]);
    await mineStream(process.stdin, process.stdout, opts.redact ? { redact: createRedactor() } : {});
  }));

program
  .command('analyze')
  .description('analyse a node snapshot bundle offline and print its findings, each with a diagnosis (the rule hint, or the model\'s with --model)')
  .requiredOption('--bundle <dir>', 'bundle folder (meta.json, node.json, pods.json, logs/...)')
  .addOption(new Option('--format <format>', 'output format').choices(['json', 'text']).default('json'))
  .option('--model <file>', 'explain each warning/critical finding with this GGUF model (on this machine\'s CPU/GPU)')
  .action(act(async (opts: { bundle: string; format: 'json' | 'text'; model?: string }) => {
    const { analyzeBundle, formatFindingsText, publicFindings } = await import('./analyze.js');
    const config = configOrExit({ ...(opts.model ? { model: opts.model } : {}), logLevel: 'silent' });
    // The configured detector options apply offline too (thresholds, detectors.disabled).
    const result = await analyzeBundle(opts.bundle, { detectors: config.detectors });
    const { diagnoseAll } = await import('./diagnoser/offline.js');
    const { progressLine } = await import('./cli/progress.js');
    const { isUnusableModel } = await import('./diagnoser/errors.js');
    // Commands in the hints name the bundle's node, not this machine.
    const bundleConfig = { ...config, model: opts.model ? config.model : null, nodeName: result.meta.nodeName };
    const progress = progressLine(process.stderr);
    try {
      await diagnoseAll(result.findings, bundleConfig, createLogger({ ...bundleConfig, logLevel: 'silent' }, process.stderr), {
        onProgress: opts.model ? progress.update : undefined,
      });
    } catch (err) {
      // A model that cannot be used is a usage error here: the user named the wrong file.
      throw isUnusableModel(err) ? new UsageError(err.message) : err;
    } finally {
      progress.done();
    }
    process.stdout.write(
      opts.format === 'json' ? `${JSON.stringify(publicFindings(result.findings), null, 2)}\n` : formatFindingsText(result.findings, { style: createStyle(color()) }),
    );
  }));

registerModelCommands(program, { addConfigOptions, config: configOrExit, proxy: () => proxyFromEnv(), fail });

program.parseAsync(process.argv).catch(fail);
