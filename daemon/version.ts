/**
 * The package version (a module of its own, so the CLI's client commands need not load the daemon).
 */
import { readFileSync } from 'node:fs';

/** The package version, read once. */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();
