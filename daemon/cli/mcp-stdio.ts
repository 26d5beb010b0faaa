/**
 * `nodesage mcp`: the MCP server over stdio, for assistants that start a
 * command (Claude Desktop, IDEs). Its tools call the daemon through the CLI's
 * HTTP client, so it needs a running daemon and shows what the daemon shows.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from '../api/mcp.js';
import type { Listen } from '../config.js';
import { VERSION } from '../version.js';
import { callDaemon } from './client.js';

/** Serves MCP on stdin/stdout until stdin closes. */
export async function runMcpStdio(target: Listen): Promise<void> {
  const server = createMcpServer(async (method, path, body) => {
    const text = await callDaemon(target, path, { method, ...(body === undefined ? {} : { body }), timeoutMs: 600_000 });
    return JSON.parse(text) as unknown;
  }, VERSION);
  const transport = new StdioServerTransport();
  await server.connect(transport);
  await new Promise<void>((resolve) => {
    server.server.onclose = () => resolve();
    process.stdin.on('end', () => resolve());
  });
}
