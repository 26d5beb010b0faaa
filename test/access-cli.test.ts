/**
 * Access and bad paths as an operator meets them, with the built CLI as a
 * child process: `nodesage token create`, a daemon on a token file, the CLI
 * finding the node-local socket by itself or sending a token, the refusal to
 * serve everyone on a non-loopback address, an unusable data folder, and
 * SIGTERM honoured from the first moment.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, type DaemonProcess, PROJECT_ROOT, getJson, runCli, startDaemon, tempDir } from './helpers/daemon-process.js';

let running: DaemonProcess | undefined;
afterEach(async () => {
  if (running) await running.kill('SIGKILL');
  running = undefined;
});

/** Host mode on an empty host root: nothing of this machine is read. */
function quietEnv(dataDir: string): Record<string, string> {
  return { NODESAGE_DATA_DIR: dataDir, NODESAGE_HOST_ROOT: tempDir(), NODESAGE_LOG_LEVEL: 'info' };
}

describe('static tokens and the socket, end to end', () => {
  it('token create → daemon on the token file → CLI with the token over TCP, or with none over the socket', async () => {
    const dir = tempDir();
    const tokens = join(dir, 'tokens');
    const created = await runCli(['token', 'create', '--token-file', tokens, '--name', 'site-admin']);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^nst_[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(tokens, 'utf8')).not.toContain(token);

    const dataDir = join(dir, 'data');
    running = await startDaemon({ env: { ...quietEnv(dataDir), NODESAGE_AUTH_TOKEN_FILE: tokens } });
    const listen = running.url.replace('http://', '');
    expect((await getJson(`${running.url}/v1/status`)).status).toBe(401);
    expect((await getJson(`${running.url}/v1/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

    // --url points the CLI at TCP: a token is needed, from NODESAGE_TOKEN or --token-file.
    const denied = await runCli(['status', '--url', running.url], { env: { NODESAGE_DATA_DIR: dataDir } });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^nodesage: a bearer token is required.*--token-file or NODESAGE_TOKEN/);
    const viaEnv = await runCli(['status', '--json'], { env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_TOKEN: token, NODESAGE_URL: running.url } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout).mode).toBe('host');
    const tokenFile = join(dir, 'my-token');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const viaFile = await runCli(['findings', '--json', '--url', `http://${listen}`, '--token-file', tokenFile], { env: { NODESAGE_DATA_DIR: dataDir } });
    expect(viaFile.code, viaFile.stderr).toBe(0);
    expect(JSON.parse(viaFile.stdout).items).toEqual([]);

    // On the node (same data folder), the CLI finds the socket by itself and needs no token:
    // what `kubectl exec … nodesage status` does in the pod.
    const local = await runCli(['status', '--json'], { env: { NODESAGE_DATA_DIR: dataDir, NODESAGE_LISTEN: '127.0.0.1:1' } });
    expect(local.code, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout).nodeName).toBeTruthy();

    const stop = await running.kill('SIGTERM');
    expect(stop.code).toBe(0);
    running = undefined;
  });

  it('refuses to start with a token file others may write (exit 2, naming the file)', async () => {
    const dir = tempDir();
    const tokens = join(dir, 'tokens');
    await runCli(['token', 'create', '--token-file', tokens, '--name', 'x']);
    const { chmodSync } = await import('node:fs');
    chmodSync(tokens, 0o666);
    const r = await runCli(['daemon'], { env: { ...quietEnv(join(dir, 'data')), NODESAGE_AUTH_TOKEN_FILE: tokens, NODESAGE_LISTEN: '127.0.0.1:0' }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`nodesage: ${tokens} is writable by group or others (chmod 600 it)`);
  });
});

describe('kubeconfig mode without a usable kubeconfig', () => {
  it('serves nobody over TCP (503 with the reason), the socket still works', async () => {
    const dataDir = tempDir();
    running = await startDaemon({ env: { ...quietEnv(dataDir), KUBECONFIG: join(dataDir, 'missing-kubeconfig'), NODE_NAME: 'edge-node-1' } });
    const r = await getJson<{ error: { code: string; message: string } }>(`${running.url}/v1/status`, { headers: { authorization: 'Bearer anything' } });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('AUTH_UNAVAILABLE');
    expect(r.body.error.message).toContain('the kubeconfig cannot be loaded');
    const local = await getJson<{ mode: string }>('/v1/status', { socketPath: join(dataDir, 'nodesage.sock') });
    expect(local.body.mode).toBe('kubeconfig');
  });
});

describe('a listener other hosts can reach', () => {
  it('refuses to start without an auth method: exit 2 and one line naming auth.mode', async () => {
    const r = await runCli(['daemon', '--listen', '0.0.0.0:0'], { env: quietEnv(tempDir()), timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^nodesage: invalid configuration auth\.mode="none": listen 0\.0\.0\.0:0 is reachable from other hosts/);
  });

  it('starts when the operator says so explicitly (auth.allowUnauthenticated)', async () => {
    running = await startDaemon({ env: { ...quietEnv(tempDir()), NODESAGE_LISTEN: '0.0.0.0:0', NODESAGE_AUTH_ALLOW_UNAUTHENTICATED: 'true' } });
    const port = new URL(running.url.replace('0.0.0.0', '127.0.0.1')).port;
    expect((await getJson(`http://127.0.0.1:${port}/v1/status`)).status).toBe(200);
  });
});

describe('bad paths and signals', () => {
  it('a data folder that cannot be created exits 2 with the reason, instead of spinning', async () => {
    // Before the fix this never returned (killed after 20 s: code null).
    const r = await runCli(['daemon'], { env: { ...quietEnv('/proc/nodesage'), NODESAGE_LISTEN: '127.0.0.1:0' }, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('nodesage: the data folder cannot be used: cannot create /proc/nodesage: ENOENT');
    // A data folder under a file.
    const file = join(tempDir(), 'file');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'x');
    const under = await runCli(['daemon'], { env: { ...quietEnv(join(file, 'data')), NODESAGE_LISTEN: '127.0.0.1:0' }, timeoutMs: 20_000 });
    expect(under.code).toBe(2);
    expect(under.stderr.trim()).toBe(`nodesage: the data folder cannot be used: cannot use ${file}/data: ENOTDIR`);
  });

  it('SIGTERM stops the daemon in every phase of its start', async () => {
    for (const delayMs of [50, 300, 800, 1500]) {
      const p = spawn(process.execPath, [CLI, 'daemon'], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...quietEnv(tempDir()), NODESAGE_LISTEN: '127.0.0.1:0' },
        stdio: 'ignore',
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
      await new Promise((r) => setTimeout(r, delayMs));
      const t0 = Date.now();
      p.kill('SIGTERM');
      const killer = setTimeout(() => p.kill('SIGKILL'), 15_000);
      const { code, signal } = await exited;
      clearTimeout(killer);
      // Before the handler is installed the default action ends it (signal); after, a clean exit 0.
      expect(signal === 'SIGTERM' || code === 0, `after ${delayMs} ms: code ${code} signal ${signal}`).toBe(true);
      expect(Date.now() - t0, `after ${delayMs} ms`).toBeLessThan(10_000);
    }
  });
});
