/**
 * The MCP server (Model Context Protocol): read-only tools over this node's
 * findings for AI assistants and IDEs. The same server runs over stdio
 * (`nodesage mcp`, talking to the daemon through its HTTP client) and over
 * streamable HTTP at `/mcp` on the daemon.
 *
 * Every tool is a call to one of the daemon's own routes, so it answers with
 * the same shapes, the same validation and, over HTTP, the same
 * authentication as the REST API: `/mcp` replays the caller's Authorization
 * header on each inner call (mcp-route.ts). No tool changes anything.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { SINCE_HELP } from '../core/since.js';
import { CATEGORIES, SEVERITIES } from '../core/types.js';

/** One call to a daemon route; rejects with the API's error message. */
export type DaemonCall = (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<unknown>;

/** Every tool only reads. */
const readOnly = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;

/** Builds an MCP server whose tools call the daemon through `call`. */
export function createMcpServer(call: DaemonCall, version: string): McpServer {
  const server = new McpServer({ name: 'nodesage', version });
  const run = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    try {
      const value = await call(method, path, body);
      return { content: [{ type: 'text' as const, text: JSON.stringify(value, null, 2) }] };
    } catch (err) {
      // A failed call is the tool's answer (isError), not a transport failure.
      return { isError: true, content: [{ type: 'text' as const, text: (err as Error).message }] };
    }
  };
  const since = z.string().max(40).optional().describe(`only what was seen since: ${SINCE_HELP}`);

  server.registerTool(
    'list_findings',
    {
      title: 'List findings',
      description: 'Problems detected on this Kubernetes node (newest first), each with its diagnosis: summary, probable cause, next steps, read-only commands.',
      inputSchema: {
        status: z.enum(['open', 'resolved', 'all']).optional().describe('which findings; defaults to open'),
        severity: z.enum(SEVERITIES).optional(),
        category: z.enum(CATEGORIES).optional(),
        since,
        limit: z.number().int().min(1).max(500).optional().describe('page size; defaults to 50'),
      },
      annotations: readOnly,
    },
    async (a) => {
      const q = new URLSearchParams();
      if (a.status !== 'all') q.set('status', a.status ?? 'open');
      if (a.severity) q.set('severity', a.severity);
      if (a.category) q.set('category', a.category);
      if (a.since) q.set('since', a.since);
      q.set('limit', String(a.limit ?? 50));
      return run('GET', `/v1/findings?${q}`);
    },
  );
  server.registerTool(
    'get_finding',
    {
      title: 'Get a finding',
      description: 'One finding by id: its evidence lines, the findings that cause it, and its diagnosis.',
      inputSchema: { id: z.string().regex(/^[0-9a-f]{16}$/).describe('finding id (16 hex characters)') },
      annotations: readOnly,
    },
    async (a) => run('GET', `/v1/findings/${a.id}`),
  );
  server.registerTool(
    'ask',
    {
      title: 'Ask about this node',
      description: 'A question in plain words, answered from this node\'s findings, log templates and runbooks, with citations.',
      inputSchema: { question: z.string().min(1).max(2000), since },
      annotations: readOnly,
    },
    async (a) => run('POST', '/v1/ask', { question: a.question, ...(a.since ? { since: a.since } : {}) }),
  );
  server.registerTool(
    'timeline',
    {
      title: 'Timeline',
      description: 'What happened on this node, newest first: findings opened, resolved, reopened and diagnosed.',
      inputSchema: { since, limit: z.number().int().min(1).max(1000).optional().describe('events; defaults to 200') },
      annotations: readOnly,
    },
    async (a) => {
      const q = new URLSearchParams();
      if (a.since) q.set('since', a.since);
      if (a.limit) q.set('limit', String(a.limit));
      return run('GET', `/v1/timeline?${q}`);
    },
  );
  server.registerTool(
    'node_status',
    {
      title: 'Node status',
      description: 'The agent\'s view of itself: node name, mode, each source\'s health, the model and the store.',
      inputSchema: {},
      annotations: readOnly,
    },
    async () => run('GET', '/v1/status'),
  );
  return server;
}
