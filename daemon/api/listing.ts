/**
 * Bodies of the findings listing (`GET /v1/findings`).
 *
 * A page narrowed by `since` is cut from the page of the same query without
 * it, so `since` costs no query of its own. That matters because a relative
 * `since` (`1h`) is another instant on every request: a dashboard or script
 * polling "the last hour" could never be answered from a kept body, and paid
 * a full page of SQLite and serialisation each time.
 *
 * Why a cut is exact: the listing is ordered by lastSeen (then id), newest
 * first, and `since` keeps the findings last seen at or after it. Those are
 * therefore the first findings of the unnarrowed order: either all of the
 * page and possibly more (the next cursor stays when the finding past the
 * page is also that new), or a prefix of the page, and then there is no next
 * page. test/history-scale.test.ts compares cuts with SQLite's own answer.
 */
import type { JsonPage } from '../store/store.js';
import type { CachedBody, PageCache } from './page-cache.js';

/** Where each finding of a listing body lies, for the pages cut from it. */
export interface ListingIndex {
  /** Byte offset in the body just past each finding's JSON. */
  ends: number[];
  /** Each finding's lastSeen, in the page's order (newest first). */
  lastSeen: string[];
  /** lastSeen of the first finding past the page, or null when there is none. */
  pastLastSeen: string | null;
}

const HEAD = Buffer.from('{"items":[');
const LAST_PAGE_TAIL = Buffer.from('],"nextCursor":null}');

/**
 * The listing body of a store page, and its index. `diagnosis` turns a stored
 * diagnosis (JSON text) into the JSON the contract shows.
 */
export function listingBody(found: JsonPage, diagnosis: (stored: string) => string): { body: Buffer; index: ListingIndex } {
  const items = found.items.map((r) => `${r.head},"diagnosis":${r.diagnosis === null ? 'null' : diagnosis(r.diagnosis)}}`);
  const ends: number[] = [];
  let at = HEAD.length;
  for (const item of items) {
    at += (ends.length > 0 ? 1 : 0) + Buffer.byteLength(item);
    ends.push(at);
  }
  const body = Buffer.from(`${HEAD}${items.join(',')}],"nextCursor":${JSON.stringify(found.nextCursor)}}`);
  return { body, index: { ends, lastSeen: found.items.map((r) => r.last_seen), pastLastSeen: found.pastLastSeen } };
}

/** The index of each kept listing body, for as long as the cache keeps the body. */
const indexes = new WeakMap<CachedBody, ListingIndex>();

/**
 * The listing body kept for `key` at `generation`, else one built from the
 * store page `read` gives (kept as the page cache decides), with its index.
 */
export function listingPage(
  pages: PageCache,
  key: string,
  generation: number,
  read: () => JsonPage,
  diagnosis: (stored: string) => string,
): { page: CachedBody; index: ListingIndex } {
  const kept = pages.peek(key, generation);
  const keptIndex = kept && indexes.get(kept);
  if (kept && keptIndex) return { page: kept, index: keptIndex };
  const { body, index } = listingBody(read(), diagnosis);
  const page = pages.set(key, generation, body);
  indexes.set(page, index);
  return { page, index };
}

/**
 * The body of `page`'s query narrowed to the findings last seen at or after
 * `since` (a normalised ISO time, compared as text as SQLite compares it):
 * `page` itself when the narrowing leaves it whole, else a new body.
 */
export function cutSince(page: CachedBody, index: ListingIndex, since: string): CachedBody | Buffer {
  let kept = 0;
  while (kept < index.lastSeen.length && (index.lastSeen[kept] as string) >= since) kept++;
  if (kept === index.lastSeen.length && (index.pastLastSeen === null || index.pastLastSeen >= since)) return page;
  const items = kept === 0 ? Buffer.alloc(0) : page.body.subarray(HEAD.length, index.ends[kept - 1]);
  return Buffer.concat([HEAD, items, LAST_PAGE_TAIL]);
}
