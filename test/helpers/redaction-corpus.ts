/**
 * The redaction corpus (test/fixtures/redaction): fake secrets in real log
 * shapes, with their values marked `«…»`, and look-alikes that must stay
 * byte-identical. Shared by the redactor's unit test, the end-to-end sink
 * test and the benchmark.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Folder of the corpus files. */
export const CORPUS_DIR = join(import.meta.dirname, '../fixtures/redaction');

/** One positive: a line holding secrets. */
export interface Positive {
  kind: string;
  /** `pod`, `journald:<unit>`, `event`, `termination` or `podenv`. */
  source: string;
  /** The line with the markers removed. */
  line: string;
  /** The secret values (every one must be gone from every sink). */
  secrets: string[];
}

/** One look-alike line. */
export interface LookAlike {
  source: string;
  line: string;
}

function rows(file: string): string[][] {
  return readFileSync(join(CORPUS_DIR, file), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split('\t'));
}

/** The positives of positives.tsv. */
export function loadPositives(): Positive[] {
  return rows('positives.tsv').map(([kind, source, marked]) => {
    const secrets = [...marked!.matchAll(/«([^»]+)»/g)].map((m) => m[1]!);
    if (secrets.length === 0) throw new Error(`positive without a marked secret: ${marked}`);
    return { kind: kind!, source: source!, line: marked!.replace(/[«»]/g, ''), secrets };
  });
}

/** The look-alikes of lookalikes.tsv. */
export function loadLookAlikes(): LookAlike[] {
  return rows('lookalikes.tsv').map(([source, line]) => ({ source: source!, line: line! }));
}
