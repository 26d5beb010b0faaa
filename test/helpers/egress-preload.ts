/**
 * Loaded with `node --import` into a process under test: records every
 * outbound connection attempt (TCP, TLS, unix socket, UDP), every name lookup
 * (dns.lookup, dns.resolve*, dns.promises, dns.Resolver) and every listener
 * the process opens, as JSON lines appended to the file named by
 * `EGRESS_RECORD_FILE`. Only observes: every wrapped call goes on unchanged.
 *
 * Every TCP client in Node (net, tls, http, https, fetch/undici, http2)
 * ends in `net.Socket.prototype.connect`, so wrapping it sees them all.
 */
import { appendFileSync } from 'node:fs';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';

const FILE = process.env.EGRESS_RECORD_FILE;

function record(entry: Record<string, unknown>): void {
  if (!FILE) return;
  appendFileSync(FILE, `${JSON.stringify({ pid: process.pid, ...entry })}\n`);
}

type AnyFn = (...args: unknown[]) => unknown;

/** Replaces `obj[name]` with a function that records, then calls the original. */
function wrap(obj: Record<string, unknown>, name: string, before: (args: unknown[]) => void): void {
  const original = obj[name];
  if (typeof original !== 'function') return;
  obj[name] = function (this: unknown, ...args: unknown[]) {
    try {
      before(args);
    } catch {
      // Recording must never change what the process does.
    }
    return (original as AnyFn).apply(this, args);
  };
}

/** The peer of a `Socket#connect` call, whatever form its arguments take. */
function peerOf(args: unknown[]): Record<string, unknown> {
  let first = args[0];
  // net.connect() hands the socket its normalized arguments as an array.
  if (Array.isArray(first)) first = first[0];
  if (typeof first === 'object' && first !== null) {
    const o = first as { host?: string; port?: number | string; path?: string };
    // Clients pass `path: null` next to host and port (undici): only a real path means a unix socket.
    if (typeof o.path === 'string') return { path: o.path };
    return { host: o.host ?? 'localhost', port: Number(o.port) };
  }
  if (typeof first === 'string' && Number.isNaN(Number(first))) return { path: first };
  return { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: Number(first) };
}

wrap(net.Socket.prototype as unknown as Record<string, unknown>, 'connect', (args) => record({ kind: 'connect', ...peerOf(args) }));
wrap(tls as unknown as Record<string, unknown>, 'connect', (args) => record({ kind: 'tls', ...peerOf(args) }));

for (const m of ['send', 'connect'] as const) {
  wrap(dgram.Socket.prototype as unknown as Record<string, unknown>, m, (args) => {
    // send(msg, [offset, length,] port, address) / connect(port, address)
    const nums = args.filter((a) => typeof a === 'number') as number[];
    const host = args.find((a, i) => i > 0 && typeof a === 'string');
    record({ kind: `udp-${m}`, host: host ?? 'localhost', port: m === 'send' ? nums[nums.length - 1] : nums[0] });
  });
}

const RESOLVE = ['lookup', 'lookupService', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse'];
for (const target of [dns, dns.promises, dns.Resolver.prototype, dns.promises.Resolver.prototype] as unknown as Record<string, unknown>[]) {
  for (const name of RESOLVE) wrap(target, name, (args) => record({ kind: 'dns', call: name, name: String(args[0]) }));
}

// Listeners are recorded once bound, with the address they got (port 0 picks one).
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
  this.once('listening', () => record({ kind: 'listen', address: this.address() }));
  return (listen as AnyFn).apply(this, args) as net.Server;
} as typeof listen;

syncBuiltinESMExports();
record({ kind: 'preload', argv: process.argv.slice(1) });
