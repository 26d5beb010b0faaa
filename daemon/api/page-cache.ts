/**
 * Serialised response bodies of read routes, reused while the store's
 * generation is unchanged: a dashboard, a fleet view and a few scripts
 * polling the same page make the same query many times between two detection
 * cycles. Bounded in entries and bytes; the least recently used goes first.
 * It holds only bodies already served (redacted, schema-projected), and the
 * access check still runs on every request, in front of the route.
 */

/** Options of a PageCache. */
export interface PageCacheOptions {
  /** Most bodies kept. Defaults to 64. */
  maxEntries?: number;
  /** Most bytes of bodies kept. Defaults to 4 MiB. */
  maxBytes?: number;
}

/**
 * A small LRU of serialised bodies, each valid for one store generation. Bodies are kept as UTF-8 bytes: encoding
 * a page of findings again for every response was most of what serving it from here cost.
 */
export class PageCache {
  private readonly entries = new Map<string, { generation: number; body: Buffer }>();
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private bytes = 0;

  constructor(opts: PageCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  }

  /** The body stored for `key` at `generation`, else the one `build` makes (stored for the next caller). */
  get(key: string, generation: number, build: () => string): Buffer {
    const hit = this.peek(key, generation);
    if (hit) return hit;
    const body = Buffer.from(build());
    this.set(key, generation, body);
    return body;
  }

  /** The body stored for `key` at `generation`, or undefined (a body of another generation is dropped). */
  peek(key: string, generation: number): Buffer | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.drop(key, hit.body);
    if (hit.generation !== generation) return undefined;
    this.put(key, hit);
    return hit.body;
  }

  /** Stores a body for `key` at `generation`. */
  set(key: string, generation: number, body: Buffer): void {
    const old = this.entries.get(key);
    if (old) this.drop(key, old.body);
    // A body larger than a quarter of the budget would evict most of what is useful.
    if (body.length <= this.maxLength) this.put(key, { generation, body });
  }

  /** Bytes of the largest body kept. */
  get maxLength(): number {
    return this.maxBytes / 4;
  }

  private put(key: string, e: { generation: number; body: Buffer }): void {
    this.entries.set(key, e);
    this.bytes += e.body.length;
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const [oldest, old] = this.entries.entries().next().value as [string, { body: Buffer }];
      this.drop(oldest, old.body);
    }
  }

  private drop(key: string, body: Buffer): void {
    this.entries.delete(key);
    this.bytes -= body.length;
  }
}
