import { createHash } from 'node:crypto';
import type { Category, Subject } from './types.js';

/**
 * Stable id of a finding: the same problem on the same subject always gets the
 * same id, across restarts and across nodes' bundles.
 */
export function fingerprint(category: Category, subject: Subject, detail?: string): string {
  const key = [category, subject.kind, subject.namespace ?? '', subject.name, subject.container ?? '', detail ?? ''].join('\u0000');
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** Key of a container in NodeView.containerLogTail: `<ns>/<pod>/<container>`. */
export function containerKey(namespace: string, pod: string, container: string): string {
  return `${namespace}/${pod}/${container}`;
}
