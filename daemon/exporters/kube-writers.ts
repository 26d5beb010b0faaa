/**
 * The exporters' writes to the API server: a strategic-merge patch of the
 * Node's status conditions (merged by condition type, so other owners'
 * conditions are untouched) and core/v1 Event creation, sent as JSON through
 * @kubernetes/client-node's KubeConfig and fetch (collectors/kube/transport.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { KubeTransport } from '../collectors/kube/transport.js';
import type { ExportedCondition, NodeStatusWriter } from './conditions.js';
import type { EventBody, EventWriter } from './events.js';

/** Writes node conditions and events over one KubeConfig. Failures throw HttpStatusError (409 when an event exists). */
export class KubeWriters implements NodeStatusWriter, EventWriter {
  readonly #api: KubeTransport;

  constructor(kc: KubeConfig) {
    this.#api = new KubeTransport(kc);
  }

  async patchConditions(nodeName: string, conditions: ExportedCondition[]): Promise<void> {
    await this.#api.send('PATCH', `/api/v1/nodes/${encodeURIComponent(nodeName)}/status`, { status: { conditions } }, { contentType: 'application/strategic-merge-patch+json' });
  }

  async createEvent(e: EventBody): Promise<void> {
    await this.#api.send('POST', `/api/v1/namespaces/${encodeURIComponent(e.metadata.namespace)}/events`, e);
  }
}
