/**
 * node-llama-cpp, loaded on first use. Importing it costs ~45 MiB of resident
 * memory before any model is opened, which a rules-only daemon on a small edge
 * node never needs; only code paths that open a model await this.
 */
type NodeLlamaCpp = typeof import('node-llama-cpp');

let loading: Promise<NodeLlamaCpp> | undefined;

/** The node-llama-cpp module (imported once). */
export function llamaCpp(): Promise<NodeLlamaCpp> {
  loading ??= import('node-llama-cpp');
  return loading;
}
