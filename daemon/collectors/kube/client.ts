/**
 * Loads @kubernetes/client-node's KubeConfig without the client's generated
 * API. config.js imports two names (createConfiguration,
 * ServerConfiguration) from gen/index.js, and evaluating that index loads
 * every generated API class and model: ~22 MB of JavaScript whose source and
 * functions stay resident, ~25 MiB of RSS for an agent that calls six REST
 * paths (test/bench/RESULTS.md, "Footprint"). A resolve hook points that one
 * import at a module that re-exports the same two names from the client's own
 * files (gen/configuration.js, gen/servers.js); KubeConfig, its
 * authentication (token files, exec plugins, client certificates, in-cluster
 * service account) and its TLS stay the client's code. Requests go through
 * collectors/kube/transport.ts, which uses the client's request context, fetch
 * library and Watch.
 *
 * Code that imports the package index (kubectl-nodesage) still gets the whole
 * client: the hook only changes what config.js itself imports. Should a client
 * upgrade make config.js import another name from gen/index.js, linking fails
 * at the first load with a SyntaxError naming it (the cluster-mode tests load
 * KubeConfig through here), never silently.
 */
import { createRequire, registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';
import type * as ConfigModule from '@kubernetes/client-node/dist/config.js';

const CONFIG_SPECIFIER = '@kubernetes/client-node/dist/config.js';
let hooked = false;

/** Points config.js's import of the generated API's index at the two files it needs, once per process. */
function skipGeneratedApi(): void {
  if (hooked) return;
  hooked = true;
  // The package has no "exports" map, so CommonJS resolution finds the same file the ESM import will.
  const configUrl = pathToFileURL(createRequire(import.meta.url).resolve(CONFIG_SPECIFIER)).href;
  const from = (file: string) => JSON.stringify(new URL(file, configUrl).href);
  // A data: module may import absolute URLs only, hence the resolved ones.
  const source = `export { createConfiguration } from ${from('./gen/configuration.js')};\nexport { ServerConfiguration } from ${from('./gen/servers.js')};\n`;
  const depsUrl = `data:text/javascript,${encodeURIComponent(source)}`;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === './gen/index.js' && context.parentURL === configUrl) return { url: depsUrl, format: 'module', shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}

/** The client's config.js (KubeConfig), loaded without its generated API. */
export async function kubeConfigModule(): Promise<typeof ConfigModule> {
  skipGeneratedApi();
  return import(CONFIG_SPECIFIER);
}
