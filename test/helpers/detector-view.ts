/**
 * What detector tests share: a fixed "now", times before it, an empty node
 * view to fill in, and the fixture bundles folder.
 */
import type { NodeView } from '../../daemon/core/types.js';

/** Fixture bundles (test/fixtures/bundles/<name>). */
export const FIXTURES = new URL('../fixtures/bundles/', import.meta.url).pathname;

/** The detection time of every hand-built view. */
export const NOW = '2025-04-01T12:00:00.000Z';

/** `minutes` before {@link NOW}, as an ISO time. */
export function ago(minutes: number): string {
  return new Date(Date.parse(NOW) - minutes * 60_000).toISOString();
}

/** A node view at {@link NOW} with nothing in it but `parts`. */
export function view(parts: Partial<NodeView> = {}): NodeView {
  return { nodeName: 'edge-test', now: NOW, events: [], logs: [], containerLogTail: new Map(), templates: [], ...parts };
}
