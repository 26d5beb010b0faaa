/**
 * Build step: copies the dashboard's plain files (daemon/api/web) next to the
 * compiled API in dist/, so the package and the image carry them.
 */
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
cpSync(`${root}daemon/api/web`, `${root}dist/daemon/api/web`, { recursive: true });
