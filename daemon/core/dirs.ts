/**
 * Creating folders without `mkdirSync(…, {recursive: true})`: Node's native
 * recursive mkdir loops forever, synchronously, when a parent exists but
 * refuses children with ENOENT (e.g. under /proc), so the process spins at
 * 100% CPU and cannot even run its SIGTERM handler.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CodedError } from '../errors.js';

/** A folder that cannot be created or is not a folder; `message` says why. */
export class DirError extends CodedError {
  readonly code = 'DIR_UNUSABLE';
}

/** Creates `dir` and its missing parents, one level at a time. Throws DirError. */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      if (!statSync(d).isDirectory()) throw new DirError(`${d} exists and is not a folder`);
      break;
    } catch (err) {
      if (err instanceof DirError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new DirError(`cannot use ${d}: ${code ?? (err as Error).message}`);
      if (dirname(d) === d) throw new DirError(`cannot create ${dir}: no existing parent`);
      missing.push(d);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(d).isDirectory()) continue;
      throw new DirError(`cannot create ${d}: ${code ?? (err as Error).message}`);
    }
  }
}
