/**
 * Loads the parts of @kubernetes/client-node the daemon uses without the
 * client's generated API. config.js (KubeConfig) imports two names
 * (createConfiguration, ServerConfiguration) from gen/index.js, and
 * evaluating that index loads every generated API class and model: ~22 MB of
 * JavaScript whose source and functions stay resident, ~26 MiB of idle RSS in
 * cluster mode (test/bench/RESULTS.md, "Footprint") for an agent that calls
 * six REST paths. A resolve hook points that one import at a module that
 * re-exports the same two names from the client's own files
 * (gen/configuration.js, gen/servers.js).
 *
 * Every part of the client the daemon uses is loaded through kubeClient(), so
 * the hook is in place before config.js resolves its imports. KubeConfig, its
 * authentication (token files, exec plugins, client certificates, in-cluster
 * service account) and its TLS stay the client's code; requests go through
 * collectors/kube/transport.ts, Node's HTTPS client with the options
 * KubeConfig.applyToHTTPSOptions gives. Code that imports the package index (kubectl-nodesage)
 * still gets the whole client: the hook only changes what config.js itself
 * imports. Should a client upgrade make config.js import another name from
 * gen/index.js, linking fails at the first load with a SyntaxError naming it
 * (the cluster-mode tests load the client through here), never silently.
 */
import nodeModule from 'node:module';
import { pathToFileURL } from 'node:url';
import type * as ConfigModule from '@kubernetes/client-node/dist/config.js';

let hooked = false;
let loading: Promise<KubeClient> | undefined;

/** The parts of @kubernetes/client-node the daemon uses. */
export interface KubeClient {
  /** Kubeconfig loading, authentication and TLS. */
  KubeConfig: typeof ConfigModule.KubeConfig;
}

/** Installs the resolve hook, once per process. Without module.registerHooks (Node < 22.15) the whole client loads. */
function installHooks(): void {
  if (hooked || typeof nodeModule.registerHooks !== 'function') return;
  hooked = true;
  // The package has no "exports" map, so CommonJS resolution finds the same file the ESM import will.
  const configUrl = pathToFileURL(nodeModule.createRequire(import.meta.url).resolve('@kubernetes/client-node/dist/config.js')).href;
  const from = (file: string) => JSON.stringify(new URL(file, configUrl).href);
  // A data: module may import absolute URLs only, hence the resolved ones.
  const source = `export { createConfiguration } from ${from('./gen/configuration.js')};\nexport { ServerConfiguration } from ${from('./gen/servers.js')};\n`;
  const configDeps = `data:text/javascript,${encodeURIComponent(source)}`;
  nodeModule.registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === './gen/index.js' && context.parentURL === configUrl) return { url: configDeps, format: 'module', shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}

/** The parts of the client the daemon uses, loaded once, without the generated API. */
export function kubeClient(): Promise<KubeClient> {
  installHooks();
  loading ??= import('@kubernetes/client-node/dist/config.js').then((config) => ({ KubeConfig: config.KubeConfig }));
  return loading;
}
