/**
 * Puts one benchmark's markdown section into RESULTS.md between its
 * `<!-- bench:NAME:start/end -->` markers (the markers `npm run bench` uses),
 * appending it when the file has none yet.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Replaces (or appends) the section `name` of the results file at `path`. */
export function writeResultsSection(path: string, name: string, markdown: string): void {
  const prev = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const block = `<!-- bench:${name}:start -->\n${markdown.trimEnd()}\n<!-- bench:${name}:end -->`;
  const re = new RegExp(`<!-- bench:${name}:start -->[\\s\\S]*?<!-- bench:${name}:end -->`);
  writeFileSync(path, re.test(prev) ? prev.replace(re, () => block) : `${prev.trimEnd()}\n\n${block}\n`);
}
