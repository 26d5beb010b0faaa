/**
 * The MCP server through the SDK's own Client: over streamable HTTP at /mcp
 * on the agent, and over stdio (`nodesage mcp --url`, the built CLI talking to
 * the agent). Both list the five read-only tools and answer each with the
 * agent's data; a bad argument is an isError result, not a transport failure.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, readTokenFile, StaticTokens } from '../daemon/api/auth/static-tokens.js';
import { toPublicFinding } from '../daemon/tracker/tracker.js';
import { serveApi } from './helpers/access-app.js';
import { CLI, tempDir } from './helpers/daemon-process.js';
import { IDS, seededFindings, type SurfaceNode, startSurfaceNode } from './helpers/surface-node.js';

let node: SurfaceNode;
beforeAll(async () => {
  node = await startSurfaceNode('edge-07');
});
afterAll(async () => node?.close());

type ToolResult = { isError?: boolean; content: { type: string; text: string }[] };
const json = (r: ToolResult) => JSON.parse(r.content[0]!.text) as Record<string, unknown>;

async function exercise(client: Client): Promise<void> {
  const tools = await client.listTools();
  expect(tools.tools.map((t) => t.name).sort()).toEqual(['ask', 'get_finding', 'list_findings', 'node_status', 'timeline']);
  for (const t of tools.tools) expect(t.annotations?.readOnlyHint, t.name).toBe(true);
  const getFinding = tools.tools.find((t) => t.name === 'get_finding')!;
  expect(getFinding.inputSchema.required).toEqual(['id']);

  const list = json((await client.callTool({ name: 'list_findings', arguments: { severity: 'warning' } })) as ToolResult) as { items: { id: string; diagnosis: { diagnoser: string } }[] };
  expect(list.items.map((f) => f.id).sort()).toEqual([IDS.probe, IDS.crash].sort());
  expect(list.items[0]!.diagnosis.diagnoser).toBe('rule-hint');

  const one = json((await client.callTool({ name: 'get_finding', arguments: { id: IDS.probe } })) as ToolResult) as { causes: string[]; evidence: { text: string }[] };
  expect(one.causes).toEqual([IDS.disk]);
  expect(one.evidence[1]!.text).toContain('failed liveness probe');

  const answer = json((await client.callTool({ name: 'ask', arguments: { question: 'why is the disk full?' } })) as ToolResult) as {
    answer: string;
    citations: { findings: string[] };
  };
  expect(answer.citations.findings).toContain(IDS.disk);

  const timeline = json((await client.callTool({ name: 'timeline', arguments: { since: '2h' } })) as ToolResult) as { items: { kind: string }[] };
  expect(timeline.items.map((e) => e.kind)).toContain('diagnosed');

  const status = json((await client.callTool({ name: 'node_status', arguments: {} })) as ToolResult);
  expect(status).toMatchObject({ nodeName: 'edge-07', rulesOnly: true });

  const missing = (await client.callTool({ name: 'get_finding', arguments: { id: '0000000000000000' } })) as ToolResult;
  expect(missing.isError).toBe(true);
  expect(missing.content[0]!.text).toBe('no finding with id 0000000000000000');
  const badSince = (await client.callTool({ name: 'timeline', arguments: { since: 'last tuesday' } })) as ToolResult;
  expect(badSince.isError).toBe(true);
  expect(badSince.content[0]!.text).toMatch(/since must be an RFC3339 time .* or an age such as 30m/);
}

describe('MCP', () => {
  it('over streamable HTTP at /mcp: lists the tools and calls each', async () => {
    const client = new Client({ name: 'nodesage-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}/mcp`)));
    try {
      await exercise(client);
    } finally {
      await client.close();
    }
    const get = await fetch(`${node.url}/mcp`);
    expect(get.status).toBe(405);
  });

  it('over stdio (`nodesage mcp --url`): lists the tools and calls each', async () => {
    const client = new Client({ name: 'nodesage-test', version: '1.0.0' });
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp', '--url', node.url], stderr: 'pipe' });
    await client.connect(transport);
    try {
      await exercise(client);
    } finally {
      await client.close();
    }
  });
});

describe('MCP behind the API\'s authentication', () => {
  it('over HTTP: 401 without a token; with one, the tools answer (their inner calls carry the caller\'s token)', async () => {
    const file = join(tempDir(), 'tokens');
    const token = createToken(file, 'assistant');
    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)) } });
    const findings = seededFindings('edge-node-1');
    api.store.commit({ at: new Date().toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map() });
    try {
      const bare = await fetch(`${api.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(bare.status).toBe(401);
      expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
      const anonymous = new Client({ name: 'nodesage-test', version: '1.0.0' });
      await expect(anonymous.connect(new StreamableHTTPClientTransport(new URL(`${api.url}/mcp`)))).rejects.toThrow(/UNAUTHENTICATED/);

      const client = new Client({ name: 'nodesage-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${api.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      try {
        expect((await client.listTools()).tools).toHaveLength(5);
        const one = json((await client.callTool({ name: 'get_finding', arguments: { id: IDS.disk } })) as ToolResult);
        expect(one).toMatchObject(toPublicFinding(findings[0]!) as unknown as Record<string, unknown>);
        expect(json((await client.callTool({ name: 'node_status', arguments: {} })) as ToolResult)).toMatchObject({ nodeName: 'edge-node-1' });
      } finally {
        await client.close();
      }
    } finally {
      await api.close();
    }
  });

  it('over the node-local socket: no token needed, and the tools\' inner calls answer as the socket caller', async () => {
    const dir = tempDir();
    const file = join(dir, 'tokens');
    createToken(file, 'someone');
    const socket = join(dir, 'nodesage.sock');
    const api = await serveApi({ access: { authenticator: new StaticTokens(readTokenFile(file)) }, socket });
    const findings = seededFindings('edge-node-1');
    api.store.commit({ at: new Date().toISOString(), findings, checkpoints: [], gaps: [], lineCounts: new Map() });
    const dispatcher = new Agent({ connect: { socketPath: socket } });
    const overSocket = ((url: string | URL, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
    const client = new Client({ name: 'nodesage-test', version: '1.0.0' });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL('http://localhost/mcp'), { fetch: overSocket }));
      const one = (await client.callTool({ name: 'get_finding', arguments: { id: IDS.disk } })) as ToolResult;
      expect(one.isError, one.content[0]?.text).toBeFalsy();
      expect(json(one)).toMatchObject(toPublicFinding(findings[0]!) as unknown as Record<string, unknown>);
      expect(json((await client.callTool({ name: 'node_status', arguments: {} })) as ToolResult)).toMatchObject({ nodeName: 'edge-node-1' });
      // The same handle trick does not work from outside: a TCP caller sending the header is still asked for a token.
      const forged = await fetch(`${api.url}/v1/status`, { headers: { 'x-nodesage-delegation': 'anything' } });
      expect(forged.status).toBe(401);
    } finally {
      await client.close();
      await dispatcher.close();
      await api.close();
    }
  });
});
