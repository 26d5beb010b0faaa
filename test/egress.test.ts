/**
 * Egress proof: the built daemon (`node dist/daemon/cli.js daemon`) with
 * every collector on (kubelet, kube-api, pod logs, journald from real journal
 * files, kmsg from a file, host), the Events and NodeConditions exporters on,
 * and the tiny generated model loaded, serves one `/v1/ask` and one
 * `/v1/chat/completions` while a preload (test/helpers/egress-preload.ts)
 * records every outbound connection attempt and name lookup it makes. The
 * only peers may be the fake kubelet, the fake API server and the daemon's
 * own listeners; no name is resolved (a lookup of an IP literal, which
 * answers from the literal, is listed but allowed).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Status } from '../daemon/core/contract.js';
import { FakeApiServer } from './harness/fake-apiserver.js';
import { FakeKubelet } from './harness/fake-kubelet.js';
import { daemonRequest as request, fakeNodeEnv, operatorAccess, Started, startDaemon, tempDir, waitFor } from './helpers/daemon-process.js';
import { appendJournal, appendKmsg, ContainerLogDir, journalRemoteBinary, kmsgRecord, makeHostRoot, writeBoot } from './helpers/host-root.js';
import { ensureTinyModel } from './helpers/test-model.js';

const BUNDLE = join(import.meta.dirname, 'fixtures/kube');
const PRELOAD = join(import.meta.dirname, 'helpers/egress-preload.ts');
const NODE = 'edge-node-1';
const SOURCES = ['kubelet', 'kube-api', 'pod-logs', 'journald', 'kmsg', 'host'];

const started = new Started();
afterEach(() => started.stop());

interface Recorded {
  pid: number;
  kind: string;
  host?: string;
  port?: number;
  path?: string;
  name?: string;
  call?: string;
  address?: { address: string; port: number } | string | null;
}

/** Runs a script under the preload and returns what it recorded. */
function recordScript(dir: string, script: string): Recorded[] {
  const file = join(dir, 'probe.jsonl');
  spawnSync(process.execPath, ['--import', PRELOAD, '-e', script], { env: { ...process.env, EGRESS_RECORD_FILE: file }, timeout: 30_000 });
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Recorded);
}

describe('egress', () => {
  it('the recorder sees TCP, TLS, fetch, UDP and every kind of name lookup', () => {
    const seen = recordScript(
      tempDir(),
      `const net = require('node:net'); const tls = require('node:tls'); const dgram = require('node:dgram'); const dns = require('node:dns');
       net.connect(9, '192.0.2.7').on('error', () => {});
       tls.connect({ host: '192.0.2.8', port: 443 }).on('error', () => {});
       fetch('http://192.0.2.9:8080/x').catch(() => {});
       const u = dgram.createSocket('udp4'); u.send('x', 53, '192.0.2.10', () => u.close());
       dns.lookup('telemetry.example.invalid', () => {}); dns.promises.resolve4('update.example.invalid').catch(() => {}); new dns.Resolver().resolveTxt('x.example.invalid', () => {});
       setTimeout(() => process.exit(0), 500);`,
    );
    const peers = seen.map((r) => (r.kind === 'dns' ? `${r.call} ${r.name}` : `${r.kind} ${r.host}:${r.port}`));
    for (const want of ['connect 192.0.2.7:9', 'tls 192.0.2.8:443', 'connect 192.0.2.9:8080', 'udp-send 192.0.2.10:53', 'lookup telemetry.example.invalid', 'resolve4 update.example.invalid', 'resolveTxt x.example.invalid']) {
      expect(peers).toContain(want);
    }
  });

  it('contacts only the kubelet, the API server and its own listeners, and resolves no name', async () => {
    const remote = journalRemoteBinary();
    if (!remote) throw new Error('systemd-journal-remote is needed to write real journal files (Debian package systemd-journal-remote)');
    const model = await ensureTinyModel();
    const api = await FakeApiServer.create({ bundleDir: BUNDLE, ...operatorAccess() });
    const kubelet = await FakeKubelet.create({ bundleDir: BUNDLE });
    started.servers.push(api, kubelet);
    const dir = tempDir();
    const host = makeHostRoot().root;
    new ContainerLogDir(host, { namespace: 'shop', pod: 'checkout-6f9c7d8b5-q2xlm', uid: '7f3a9c1e-5b2d-4e8f-a6c0-1d9b3e5f7a2c', container: 'checkout' }).write(20);
    writeBoot(host, '5b8f0c2a-3d4e-4f60-9a1b-2c3d4e5f6a7b', Math.floor(Date.now() / 1000) - 3600);
    appendKmsg(host, [kmsgRecord(6, 1, 1_000_000, 'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)')]);
    appendJournal(remote, join(host, 'var/log/journal/0123456789abcdef0123456789abcdef'), [
      {
        realtimeUsec: (Date.now() - 5000) * 1000,
        fields: { MESSAGE: 'Started kubelet: The Kubernetes Node Agent.', _SYSTEMD_UNIT: 'kubelet.service', SYSLOG_IDENTIFIER: 'kubelet', PRIORITY: '6' },
      },
    ]);
    const recordFile = join(dir, 'egress.jsonl');
    const daemon = await startDaemon({
      nodeArgs: ['--import', PRELOAD],
      env: {
        ...fakeNodeEnv(dir, { api, kubelet }, { nodeName: NODE, hostRoot: host }),
        EGRESS_RECORD_FILE: recordFile,
        NODESAGE_KUBELET_INTERVAL_SECONDS: '0.5',
        NODESAGE_HOST_INTERVAL_SECONDS: '1',
        NODESAGE_DETECT_INTERVAL_SECONDS: '0.5',
        NODESAGE_EXPORT_EVENTS: 'true',
        NODESAGE_EXPORT_CONDITIONS: 'true',
        NODESAGE_MODEL: model,
        NODESAGE_LLM_CONTEXT_SIZE: '4096',
        NODESAGE_LLM_MAX_TOKENS: '24',
      },
    });
    started.daemon = daemon;
    const url = daemon.url;
    await waitFor(
      async () => {
        const s = (await (await request(url, '/v1/status')).json()) as Status;
        return SOURCES.every((name) => s.sources.some((x) => x.name === name && x.state === 'healthy' && x.signals > 0)) ? s : null;
      },
      60_000,
      250,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await (await request(url, '/v1/status')).text()}\nstdout:\n${daemon.stdout().slice(-3000)}`);
    });

    const ask = await request(url, '/v1/ask', { question: 'why is the checkout pod restarting?' });
    expect(ask.status).toBe(200);
    const answer = (await ask.json()) as { rulesOnly: boolean; diagnoser: string };
    expect(answer.rulesOnly).toBe(false);
    expect(answer.diagnoser).toMatch(/^llm:tiny-/);
    const chat = await request(url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Explain exit code 137' }], max_tokens: 8 });
    expect(chat.status).toBe(200);
    expect(((await chat.json()) as { choices: unknown[] }).choices.length).toBe(1);
    // The exporters wrote to the API server too (a connection this test allows).
    await waitFor(async () => api.requests.some((r) => r.method === 'PATCH' || r.method === 'POST'), 30_000, 250);
    await daemon.kill('SIGTERM');

    const recorded = readFileSync(recordFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Recorded);
    expect(recorded.some((r) => r.kind === 'preload')).toBe(true);
    // TCP listeners as host:port, the node-local socket as unix:<path> (the form a connection to it is recorded in).
    const own = recorded.filter((r) => r.kind === 'listen').map((r) => (typeof r.address === 'object' && r.address ? `${r.address.address}:${r.address.port}` : `unix:${String(r.address)}`));
    const apiPeer = new URL(api.url);
    const kubeletPeer = new URL(kubelet.url);
    const allowed = new Set([`${apiPeer.hostname}:${apiPeer.port}`, `${kubeletPeer.hostname}:${kubeletPeer.port}`, ...own]);
    const peers = recorded.filter((r) => r.kind === 'connect' || r.kind === 'tls' || r.kind.startsWith('udp-')).map((r) => (r.path ? `unix:${r.path}` : `${r.host}:${r.port}`));
    const lookups = recorded.filter((r) => r.kind === 'dns').map((r) => `${r.call} ${r.name}`);
    // dns.lookup of an IP literal answers from the literal itself: no resolver is asked.
    const nameLookups = recorded.filter((r) => r.kind === 'dns' && isIP(r.name ?? '') === 0).map((r) => `${r.call} ${r.name}`);
    const contacted = [...new Set(peers)].sort();
    console.log(
      [
        `egress: ${peers.length} connection attempts from ${new Set(recorded.map((r) => r.pid)).size} processes, ${lookups.length} lookups (${nameLookups.length} of a name)`,
        `contacted: ${contacted.join(', ')}`,
        `fake API server ${apiPeer.host}, fake kubelet ${kubeletPeer.host}, own listeners ${own.join(', ')}`,
        `lookups: ${lookups.length === 0 ? 'none' : lookups.join(', ')}`,
      ].join('\n'),
    );
    expect(contacted).toContain(`${apiPeer.hostname}:${apiPeer.port}`);
    expect(contacted).toContain(`${kubeletPeer.hostname}:${kubeletPeer.port}`);
    expect(contacted.filter((p) => !allowed.has(p))).toEqual([]);
    expect(nameLookups).toEqual([]);
  }, 240_000);
});
