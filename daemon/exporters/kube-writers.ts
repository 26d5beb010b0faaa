/**
 * The exporters' writes through @kubernetes/client-node: a strategic-merge
 * patch of the Node's status conditions (merged by condition type, so other
 * owners' conditions are untouched) and core/v1 Event creation.
 */
import { type CoreV1Event, CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { ExportedCondition, NodeStatusWriter } from './conditions.js';
import type { EventBody, EventWriter } from './events.js';

/** Writes node conditions and events with one API client. */
export class KubeWriters implements NodeStatusWriter, EventWriter {
  private readonly api: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(CoreV1Api);
  }

  async patchConditions(nodeName: string, conditions: ExportedCondition[]): Promise<void> {
    await this.api.patchNodeStatus(
      { name: nodeName, body: { status: { conditions } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  }

  async createEvent(e: EventBody): Promise<void> {
    // The generated types want Date objects; RFC3339 strings serialise unchanged.
    await this.api.createNamespacedEvent({ namespace: e.metadata.namespace, body: e as unknown as CoreV1Event });
  }
}
