/**
 * Kubernetes objects exactly as the server sent them (JSON wire form). List
 * responses omit `apiVersion`/`kind` on their items while watch events and
 * `kubectl get -o json` carry them; adding them back makes a listed object,
 * a watched one and a bundle's copy compare equal.
 */
import type { KubeMeta } from '../../core/kube.js';

/** Any Kubernetes object in wire form. */
export interface WireObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeMeta;
  [k: string]: unknown;
}

/** A v1 list response (PodList, EventList, NodeList...). */
export interface WireList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items?: WireObject[];
}

/** One line of a watch stream. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  object: WireObject;
}

/** A v1 Status object (what the API server sends with errors). */
export interface WireStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

/** Returns the object with `apiVersion` and `kind` set (kept when already there). */
export function withTypeMeta<T extends WireObject>(obj: T, apiVersion: string, kind: string): T {
  if (obj.apiVersion !== undefined && obj.kind !== undefined) return obj;
  return { ...obj, apiVersion: obj.apiVersion ?? apiVersion, kind: obj.kind ?? kind };
}

/** `namespace/name` (or `name` for cluster-scoped objects): the identity within one resource. */
export function objectKey(obj: WireObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Reads a Status message out of an error body, when the body is one. */
export function statusMessage(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as WireStatus;
    if (parsed && typeof parsed === 'object' && typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not JSON: the caller falls back to the raw text.
  }
  return undefined;
}
