/**
 * How the image runs Node, shared by the benchmarks that start the daemon, so
 * they measure it as deployed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * How the image runs Node, read from the Dockerfile so memory is measured as
 * deployed: the memory-related environment (NODE_OPTIONS, MALLOC_*) of its
 * final ENV, and the V8 flags its ENTRYPOINT passes to node (flags NODE_OPTIONS
 * does not accept, such as --optimize-for-size).
 */
export function imageRuntime(root: string): { env: Record<string, string>; flags: string[] } {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/\b(NODE_OPTIONS|MALLOC_[A-Z_]+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text);
  const argv = entry ? (JSON.parse(entry[1]!) as string[]) : [];
  const node = argv.indexOf('node');
  const flags = node < 0 ? [] : argv.slice(node + 1).filter((a) => a.startsWith('--'));
  return { env, flags };
}

/** The image's runtime settings as a markdown list of code spans, for a report. */
export function describeImageRuntime(image: { env: Record<string, string>; flags: string[] }): string {
  return [...Object.entries(image.env).map(([k, v]) => `${k}=${v}`), ...(image.flags.length > 0 ? [`node ${image.flags.join(' ')}`] : [])].map((x) => `\`${x}\``).join(', ');
}
