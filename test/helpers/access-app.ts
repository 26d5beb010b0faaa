/**
 * The daemon's HTTP API in process, listening on loopback for real sockets:
 * buildApi with a store, the access hook and the servers' limits, as the
 * daemon wires them.
 */
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Registry } from '../../daemon/api/prometheus.js';
import type { AccessOptions } from '../../daemon/api/auth/access.js';
import { ApiServing, type ServingLimits } from '../../daemon/api/auth/serve.js';
import { buildApi } from '../../daemon/api/server.js';
import type { Status } from '../../daemon/core/contract.js';
import { Store } from '../../daemon/store/store.js';
import { tempDir } from './daemon-process.js';

/** A served API. */
export interface ServedApi {
  app: FastifyInstance;
  serving: ApiServing;
  store: Store;
  url: string;
  port: number;
  close(): Promise<void>;
}

const STATUS: Status = {
  mode: 'kubeconfig',
  nodeName: 'edge-node-1',
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
  sources: [],
  model: { state: 'none', id: null, reason: 'no model configured' },
  store: { path: '/var/lib/nodesage/nodesage.db', sizeBytes: 0, recoveredFrom: null, writeFailure: null },
  rulesOnly: true,
};

/** Builds and serves the API on 127.0.0.1 (and on `socket` when given). */
export async function serveApi(opts: { access?: AccessOptions; limits?: ServingLimits; socket?: string; extraRoutes?: (app: FastifyInstance) => void } = {}): Promise<ServedApi> {
  const store = Store.open({ dir: tempDir() });
  const serving = new ApiServing(opts.limits);
  const metrics = new Registry();
  const app = buildApi({
    store,
    status: () => STATUS,
    ready: () => true,
    metrics,
    serving,
    ...(opts.access ? { access: opts.access } : {}),
    ...(opts.extraRoutes ? { extraRoutes: opts.extraRoutes } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  if (opts.socket) await serving.listenSocket(opts.socket);
  const port = (app.server.address() as AddressInfo).port;
  return {
    app,
    serving,
    store,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await serving.closeSocket();
      store.close();
    },
  };
}

/** One HTTP request over a real socket, the path sent as written (no client-side normalisation). */
export function raw(
  target: { port: number } | { socketPath: string },
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...('port' in target ? { host: '127.0.0.1', port: target.port } : target), method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
