/**
 * Ranking a question over a history larger than the ranking budget (1,000
 * findings): words that are in every finding are dropped by their document
 * frequency, and the findings the other words point to are still found and
 * cited, with the scores an exhaustive bm25 ranking gives them.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AskService } from '../daemon/ask/service.js';
import { registerAskRoutes } from '../daemon/api/ask-routes.js';
import { buildApi } from '../daemon/api/server.js';
import { EngineGate } from '../daemon/ask/gate.js';
import type { Status } from '../daemon/core/contract.js';
import { toFtsQuery } from '../daemon/store/fts-query.js';
import { SEARCH_SQL } from '../daemon/store/search-worker.js';
import { DB_FILE, Store } from '../daemon/store/store.js';
import type { TrackedFinding } from '../daemon/tracker/tracker.js';
import { tempDir } from './helpers/daemon-process.js';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const N = 1500;

/** Every finding is in namespace "shop" and "failed"; most say "connection refused", a third name postgres. */
function finding(i: number): TrackedFinding {
  const at = iso(T0 + i * 1000);
  return {
    id: i.toString(16).padStart(16, '0'),
    category: 'CrashLoop',
    severity: 'warning',
    subject: { kind: 'Container', name: `api-${i}`, namespace: 'shop', container: 'app' },
    title: `Container app of pod shop/api-${i} failed`,
    message: 'back-off restarting failed container',
    evidence: [{ source: 'podLog', at, text: i % 3 === 0 ? 'dial postgres:5432: connection refused' : 'dial tcp 10.0.0.7:80: connection refused' }],
    firstSeen: at,
    lastSeen: at,
    count: 1,
    status: 'resolved',
    diagnosis: null,
    detector: 'crashloop',
    lifecycle: 'condition',
  };
}

/** A finding written before all the others (so outside any window of the newest matches). */
function older(id: string, pod: string, text: string, ageMs: number): TrackedFinding {
  const at = iso(T0 - ageMs);
  return { ...finding(0), id, title: `Container app of pod shop/${pod} failed`, evidence: [{ source: 'podLog', at, text }], firstSeen: at, lastSeen: at };
}
// The only certificate error, and the only finding holding every word of "postgres connection refused timeout".
const CERT = older('cccccccccccccccc', 'api-cert', 'x509: certificate signed by unknown authority', 1000);
const TIMEOUT = older('dddddddddddddddd', 'api-slow', 'dial postgres:5432: connection refused after timeout', 500);

function seeded(dir = tempDir()): Store {
  const store = Store.open({ dir });
  store.commit({ at: iso(T0), findings: [CERT, TIMEOUT], checkpoints: [], gaps: [], lineCounts: new Map() });
  const rest = Array.from({ length: N }, (_, i) => finding(i + 1));
  store.commit({ at: iso(T0 + N * 1000), findings: rest, checkpoints: [], gaps: [], lineCounts: new Map() });
  // What the daemon's index maintenance does after a cycle (a search alone indexes at most 1,000 changes).
  store.refreshSearchIndex();
  return store;
}

/** The exhaustive ranking: every match scored by bm25, on a connection of the test's own. */
function exhaustive(dir: string, question: string, limit = 6): { id: string; score: number }[] {
  const db = new Database(join(dir, DB_FILE), { readonly: true });
  try {
    return db.prepare(SEARCH_SQL.findings).all({ q: toFtsQuery(question), since: null, limit }) as { id: string; score: number }[];
  } finally {
    db.close();
  }
}

const hits = (r: { findings: { finding: { id: string }; score: number }[] }) => r.findings.map((h) => ({ id: h.finding.id, score: h.score }));

describe('ranking with words common to the whole history', () => {
  it('finds the finding the rare words point to, with the exhaustive ranking\'s scores, on and off the event loop', async () => {
    const dir = tempDir();
    const store = seeded(dir);
    try {
      for (const q of ['which shop container failed on an unknown certificate authority?', 'why did shop fail with an unknown authority?', 'postgres connection refused timeout', 'shop failed', 'postgres connection refused']) {
        const want = exhaustive(dir, q);
        const sync = hits(store.search(q, { limit: 6 }));
        const off = hits(await store.searchAsync(q, { limit: 6 }));
        // Scores are exact (equal up to the 1e-6 idf FTS5 gives a word in more than half of the documents).
        expect(sync.map((h) => h.score), q).toEqual(want.map((h) => expect.closeTo(h.score, 3)));
        expect(off).toEqual(sync);
      }
      expect(hits(store.search('why did shop fail with an unknown authority?'))[0]!.id).toBe(CERT.id);
      expect(hits(store.search('postgres connection refused timeout'))[0]!.id).toBe(TIMEOUT.id);
      // "shop" and "fail" are in every finding: alone, they still find (the newest) findings.
      expect(store.search('shop failed', { limit: 6 }).findings).toHaveLength(6);
    } finally {
      store.close();
    }
  });

  it('POST /v1/ask cites the finding the rare words point to, not one of the findings every word matches', async () => {
    const store = seeded();
    const ask = new AskService({ store, nodeName: 'edge-1', maxTokens: 64, timeoutMs: 1000, logger: pino({ level: 'silent' }) });
    const status = { rulesOnly: true } as Status;
    const app = buildApi({ store, status: () => status, ready: () => true, extraRoutes: (a) => registerAskRoutes(a, { ask, gate: new EngineGate() }) });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/ask', payload: { question: 'which shop container failed on an unknown certificate authority?' } });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { citations: { findings: string[] }; sources: { id: string; ref: string }[]; answer: string };
      expect(body.citations.findings[0]).toBe(CERT.id);
      expect(body.answer).toContain('api-cert');
    } finally {
      await app.close();
      store.close();
    }
  });
});
