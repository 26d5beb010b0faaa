/**
 * Serialised response bodies of read routes, reused while the store's
 * generation is unchanged: a dashboard, a fleet view and a few scripts
 * polling the same page make the same query many times between two detection
 * cycles. Bounded in entries and bytes; the least recently used goes first.
 * It holds only bodies already served (redacted, schema-projected), and the
 * access check still runs on every request, in front of the route.
 *
 * A body served more than once is also kept gzip-compressed for clients that
 * accept it: the browser, Node's fetch and Prometheus all do. A day of disk
 * history for four filesystems is 230 KB as JSON and 17 KB compressed; at a
 * few hundred requests a second, copying plain bodies, not building them, was
 * what made those routes slow. Level 1 compresses that day in about 0.4 ms
 * on the event loop, with the same ratio as the default level: cheaper than
 * sending the plain body even once, so it is done at once rather than on
 * another thread while plain bodies go out.
 */
import { gzipSync } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Options of a PageCache. */
export interface PageCacheOptions {
  /** Most bodies kept. Defaults to 64. */
  maxEntries?: number;
  /** Most bytes of bodies kept, compressed copies included. Defaults to 4 MiB. */
  maxBytes?: number;
}

/** Bodies shorter than this are sent as they are: compressing them saves less than it costs. */
const GZIP_MIN_BYTES = 1024;

/** One kept body, and its gzip form once it has been made. */
export class CachedBody {
  /** How many responses this body has served. */
  uses = 0;
  /** Built again for a key whose earlier body was served more than once: compressed from its first use. */
  hot = false;
  private gz: Buffer | undefined;
  /** Called when the gzip form lands, with its size (the cache counts it). */
  onCompressed: ((bytes: number) => void) | undefined;

  constructor(
    readonly body: Buffer,
    readonly generation: number,
  ) {}

  /** Bytes held: the body and its gzip form. */
  get bytes(): number {
    return this.body.length + (this.gz?.length ?? 0);
  }

  /**
   * The gzip form, made at the second use of a body (or the first, when it is hot); undefined before and for a
   * small body. A body served once (a listing with a `since` of its own) is not worth compressing.
   */
  gzipped(): Buffer | undefined {
    if (this.gz || (this.uses < 2 && !this.hot) || this.body.length < GZIP_MIN_BYTES) return this.gz;
    this.gz = gzipSync(this.body, { level: 1 });
    this.onCompressed?.(this.gz.length);
    return this.gz;
  }
}

/**
 * Whether an Accept-Encoding header admits gzip (RFC 9110 §12.5.3): `gzip`
 * or `*` with a non-zero weight, unless gzip itself has weight 0.
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (!header) return false;
  let gzipQ: number | undefined;
  let anyQ: number | undefined;
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (coding === 'gzip' || coding === 'x-gzip') gzipQ = weight;
    else if (coding === '*') anyQ = weight;
  }
  return (gzipQ ?? anyQ ?? 0) > 0;
}

/** Sends a kept body with its content type: gzip-encoded when the client accepts that and the encoded form is ready. */
export function sendCached(req: FastifyRequest, reply: FastifyReply, page: CachedBody, type: string): FastifyReply {
  reply.type(type).header('vary', 'accept-encoding');
  const gz = acceptsGzip(req.headers['accept-encoding']) ? page.gzipped() : undefined;
  return gz ? reply.header('content-encoding', 'gzip').send(gz) : reply.send(page.body);
}

/**
 * A small LRU of serialised bodies, each valid for one store generation. Bodies are kept as UTF-8 bytes: encoding
 * a page of findings again for every response was most of what serving it from here cost.
 */
export class PageCache {
  private readonly entries = new Map<string, CachedBody>();
  /** Keys a body was built for once and not kept, oldest first (see admits). */
  private readonly askedOnce = new Set<string>();
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private bytes = 0;

  constructor(opts: PageCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  }

  /** The body stored for `key` at `generation`, else the one `build` makes (stored for the next caller). */
  get(key: string, generation: number, build: () => string): CachedBody {
    return this.peek(key, generation) ?? this.set(key, generation, Buffer.from(build()));
  }

  /**
   * The body stored for `key` at `generation`, counted as one more response; undefined when there is none. A body of
   * another generation stays until {@link set} replaces it (it tells whether the key is served often) or it is evicted.
   */
  peek(key: string, generation: number): CachedBody | undefined {
    const hit = this.entries.get(key);
    if (!hit || hit.generation !== generation) return undefined;
    this.drop(key, hit);
    this.put(key, hit);
    hit.uses++;
    return hit;
  }

  /**
   * Stores the body a response was just built with for `key` at `generation` and returns it, counted as that
   * response (kept from the second time the key is asked for, unless it is over {@link maxLength}). It is hot when
   * the body it replaces was served more than once.
   */
  set(key: string, generation: number, body: Buffer): CachedBody {
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    const page = new CachedBody(body, generation);
    page.hot = old !== undefined && (old.uses >= 2 || old.hot);
    page.uses = 1;
    // A body larger than a quarter of the budget would evict most of what is useful.
    if (body.length <= this.maxLength && this.admits(key, old)) this.put(key, page);
    return page;
  }

  /**
   * Whether a body built for `key` is kept: when the key was kept before or was asked for once recently. A body
   * asked for once (a page at a cursor of its own, a query after every change) is never kept: kept, it lived
   * long enough to reach V8's old space, and at a few hundred such pages a second the full collections that
   * churn caused (one every 0.3 s, pauses of 3-7 ms) were the listing's slowest responses.
   */
  private admits(key: string, old: CachedBody | undefined): boolean {
    if (old || this.askedOnce.delete(key)) return true;
    this.askedOnce.add(key);
    if (this.askedOnce.size > this.maxEntries * 4) this.askedOnce.delete(this.askedOnce.values().next().value as string);
    return false;
  }

  /** Bytes of the largest body kept. */
  get maxLength(): number {
    return this.maxBytes / 4;
  }

  private put(key: string, page: CachedBody): void {
    this.entries.set(key, page);
    this.bytes += page.bytes;
    page.onCompressed = (n) => {
      this.bytes += n;
      this.evict();
    };
    this.evict();
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [oldest, old] = this.entries.entries().next().value as [string, CachedBody];
      this.drop(oldest, old);
    }
  }

  private drop(key: string, page: CachedBody): void {
    this.entries.delete(key);
    page.onCompressed = undefined;
    this.bytes -= page.bytes;
  }
}
