/**
 * `POST /mcp`: the MCP server over streamable HTTP, stateless (each request
 * gets its own server and transport). The MCP SDK loads on the first request,
 * so a daemon nobody asks over MCP does not carry it.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { delegationHeaders } from './auth/access.js';
import type { DaemonCall } from './mcp.js';
import { sendError } from './server.js';

/** Adds `POST /mcp` (and 405 for GET: a stateless server opens no stream of its own; without sessions no DELETE comes). */
export function registerMcpRoute(app: FastifyInstance, version: () => string): void {
  app.post('/mcp', async (req, reply) => {
    const [{ createMcpServer }, { StreamableHTTPServerTransport }] = await Promise.all([
      import('./mcp.js'),
      import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
    ]);
    // Each tool is an inner request to the daemon's own route, made as the caller (socket callers included).
    const headers: Record<string, string> = { accept: 'application/json', ...delegationHeaders(app, req) };
    const call: DaemonCall = async (method, path, body) => {
      const r = await app.inject({ method, url: path, headers, ...(body === undefined ? {} : { payload: body as object }) });
      const json = r.json() as { error?: { message?: string } };
      if (r.statusCode >= 400) throw new Error(json.error?.message ?? `HTTP ${r.statusCode}`);
      return json;
    };
    const server = createMcpServer(call, version());
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    reply.hijack();
    reply.raw.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req.raw, reply.raw, req.body);
  });
  const notAllowed = async (_req: unknown, reply: FastifyReply) => {
    reply.header('allow', 'POST');
    return sendError(reply, 405, 'METHOD_NOT_ALLOWED', 'the MCP endpoint is stateless: POST JSON-RPC messages to /mcp');
  };
  app.get('/mcp', notAllowed);
}
