/**
 * Build step after tsc: copies the dashboard's plain files (daemon/api/web)
 * next to the compiled API in dist/, and the data files modules read at load
 * (detectors/npd-mapping.json), so the package and the image carry them, and marks the two executables (`nodesage`, `kubectl-nodesage`)
 * executable, so either works when put on PATH as is.
 */
import { chmodSync, cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
cpSync(`${root}daemon/api/web`, `${root}dist/daemon/api/web`, { recursive: true });
cpSync(`${root}daemon/detectors/npd-mapping.json`, `${root}dist/daemon/detectors/npd-mapping.json`);
for (const bin of ['dist/daemon/cli.js', 'dist/daemon/kubectl-plugin.js']) chmodSync(`${root}${bin}`, 0o755);
