/**
 * `nodesage findings show ID`: one finding with the findings that cause it
 * and those it causes, fetched from the daemon.
 */
import type { Listen } from '../config.js';
import type { Finding } from '../core/types.js';
import { ClientError, callDaemon } from './client.js';

/** A finding and its links. */
export interface FindingStory {
  finding: Finding;
  /** Findings this one is explained by (still stored). */
  causes: Finding[];
  /** Findings this one explains. */
  consequences: Finding[];
}

/** Fetches a finding and its causes and consequences (the 500 most recent findings are searched for those). */
export async function showFinding(target: Listen, id: string, opts: { headers?: Record<string, string> } = {}): Promise<FindingStory> {
  const get = async (path: string) => JSON.parse(await callDaemon(target, path, opts.headers ? { headers: opts.headers } : {})) as unknown;
  let finding: Finding;
  try {
    finding = (await get(`/v1/findings/${id}`)) as Finding;
  } catch (err) {
    if (err instanceof ClientError && err.status === 404) throw new ClientError(`no finding with id ${id} (see \`nodesage findings --status all\`)`, err.code, 404);
    throw err;
  }
  const causes: Finding[] = [];
  for (const c of finding.causes ?? []) {
    try {
      causes.push((await get(`/v1/findings/${c}`)) as Finding);
    } catch (err) {
      if (!(err instanceof ClientError && err.status === 404)) throw err;
    }
  }
  const page = (await get('/v1/findings?limit=500')) as { items: Finding[] };
  const consequences = page.items.filter((f) => (f.causes ?? []).includes(id));
  return { finding, causes, consequences };
}
