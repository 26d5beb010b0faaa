/**
 * The daemon's HTTP API in process, listening on loopback for real sockets:
 * buildApi with a store, the access hook and the servers' limits, as the
 * daemon wires them.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import type { AccessOptions } from '../../daemon/api/auth/access.js';
import { ApiServing, type ServingLimits } from '../../daemon/api/auth/serve.js';
import { buildApi, type StatusBody } from '../../daemon/api/server.js';
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

const STATUS: StatusBody = {
  mode: 'kubeconfig',
  nodeName: 'edge-node-1',
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
  sources: [],
  model: { state: 'none', id: null, reason: 'no model configured' },
  store: { path: '/var/lib/nodesage/nodesage.db', sizeBytes: 0, recoveredFrom: null },
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
