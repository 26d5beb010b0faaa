/**
 * Preload (`node --import ./test/bench/footprint-imports.ts`) for the
 * footprint benchmark: records every package specifier the daemon's own
 * modules (dist/daemon/) resolve, one per line in $FOOTPRINT_IMPORTS_FILE,
 * so the baseline can import exactly those and nothing else.
 */
import { appendFileSync } from 'node:fs';
import { isBuiltin, registerHooks } from 'node:module';

const out = process.env.FOOTPRINT_IMPORTS_FILE;
const seen = new Set<string>();

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    const bare = !/^(\.|\/|file:|node:|data:)/.test(specifier) && !isBuiltin(specifier);
    if (out && bare && context.parentURL?.includes('/dist/daemon/') && !seen.has(specifier)) {
      seen.add(specifier);
      appendFileSync(out, `${specifier}\n`);
    }
    return resolved;
  },
});
