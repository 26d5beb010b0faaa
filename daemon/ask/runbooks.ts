/**
 * Operator runbooks: markdown files in `runbooksDir` (in a cluster, a
 * ConfigMap mounted as a volume), indexed into the store's full-text search
 * at start and again whenever the folder changes.
 *
 * A ConfigMap volume is a folder of symlinks into a timestamped `..data`
 * folder that the kubelet swaps atomically on update, so: entries starting
 * with a dot are skipped, files are read through their symlinks, and a file
 * counts as changed when its inode, size or mtime differs. `fs.watch` gives
 * fast updates; a periodic rescan covers file systems and mounts where watch
 * events never arrive (or the watch itself fails). Changes are debounced so a
 * burst of events costs one scan.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RunbookRecord, Store } from '../store/store.js';

/** Options of {@link RunbookIndexer}. */
export interface RunbookIndexerOptions {
  /** Folder of `*.md` files (not read recursively). */
  dir: string;
  /** Where runbooks are indexed. */
  store: Pick<Store, 'applyRunbooks' | 'listRunbooks'>;
  logger: Logger;
  /** Larger files are skipped with a warning. Defaults to 262144 (256 KiB). */
  maxFileBytes?: number;
  /** Runbooks indexed at most, in file-name order; the rest are skipped with a warning. Defaults to 500. */
  maxFiles?: number;
  /** Rescan interval: the fallback when watch events do not arrive. Defaults to 30000. */
  pollIntervalMs?: number;
  /** Quiet time after a change event before the rescan. Defaults to 300. */
  debounceMs?: number;
}

/** What one scan did. */
export interface RunbookScan {
  /** Runbooks present in the folder after the scan. */
  runbooks: number;
  upserted: number;
  removed: number;
  /** Files left out (too big, over the count cap, unreadable). */
  skipped: number;
}

/** The indexer's health, for logs and tests. */
export interface RunbookIndexerStatus {
  dir: string;
  runbooks: number;
  /** True while fs.watch delivers events; false means polling only. */
  watching: boolean;
  lastScanAt: string | null;
  lastError: string | null;
}

/** Title of a markdown document: its first `# ` heading outside code fences, else `fallback`. */
export function runbookTitle(markdown: string, fallback: string): string {
  let fenced = false;
  for (const line of markdown.split(/\r?\n/)) {
    if (/^\s{0,3}(?:```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const m = /^\s{0,3}#[ \t]+(.+?)[ \t]*#*[ \t]*$/.exec(line);
    if (m?.[1]) return m[1].slice(0, 200);
  }
  return fallback;
}

interface Known {
  signature: string;
  sha256: string;
}

const MD = /\.md$/i;

/** Keeps the store's runbook index equal to the markdown files of one folder. */
export class RunbookIndexer {
  readonly #o: Required<Omit<RunbookIndexerOptions, 'logger' | 'store'>>;
  readonly #store: RunbookIndexerOptions['store'];
  readonly #log: Logger;
  /** Files as last read, by runbook id. */
  #known = new Map<string, Known>();
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #scanning: Promise<RunbookScan> | null = null;
  #again = false;
  #stopped = false;
  #lastScanAt: string | null = null;
  #lastError: string | null = null;
  /** Skip warnings already logged, so a poll does not repeat them. */
  #warned = new Set<string>();

  constructor(options: RunbookIndexerOptions) {
    this.#o = Object.freeze({
      dir: options.dir,
      maxFileBytes: options.maxFileBytes ?? 256 * 1024,
      maxFiles: options.maxFiles ?? 500,
      pollIntervalMs: options.pollIntervalMs ?? 30_000,
      debounceMs: options.debounceMs ?? 300,
    });
    this.#store = options.store;
    this.#log = options.logger.child({ component: 'runbooks', dir: options.dir });
  }

  /** Indexes the folder now, then watches it. Resolves after the first scan. */
  async start(): Promise<RunbookScan> {
    for (const r of this.#store.listRunbooks()) this.#known.set(r.id, { signature: '', sha256: r.sha256 });
    const first = await this.scan();
    if (this.#stopped) return first;
    this.#watch();
    this.#poll = setInterval(() => {
      // A failed watch is retried at each poll (the folder may have been mounted since).
      if (!this.#watcher) this.#watch();
      void this.scan();
    }, this.#o.pollIntervalMs);
    this.#poll.unref();
    return first;
  }

  /** Stops watching and polling. */
  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#poll = null;
    this.#debounce = null;
  }

  /** Current state. */
  status(): RunbookIndexerStatus {
    return {
      dir: this.#o.dir,
      runbooks: this.#known.size,
      watching: this.#watcher !== null,
      lastScanAt: this.#lastScanAt,
      lastError: this.#lastError,
    };
  }

  /** Rescans the folder; concurrent calls share one scan (and one more runs after it if asked meanwhile). */
  scan(): Promise<RunbookScan> {
    if (this.#scanning) {
      this.#again = true;
      return this.#scanning;
    }
    this.#scanning = this.#scanOnce()
      .catch((err: unknown) => {
        this.#lastError = err instanceof Error ? err.message : String(err);
        this.#log.warn({ err }, 'runbook scan failed; keeping the current index');
        return { runbooks: this.#known.size, upserted: 0, removed: 0, skipped: 0 };
      })
      .finally(() => {
        this.#scanning = null;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          void this.scan();
        }
      });
    return this.#scanning;
  }

  #watch(): void {
    if (this.#stopped || this.#watcher) return;
    try {
      const w = watch(this.#o.dir, { persistent: false }, () => this.#changed());
      w.on('error', (err) => {
        this.#log.warn({ err }, 'watching the runbook folder failed; polling only');
        w.close();
        if (this.#watcher === w) this.#watcher = null;
        this.#changed();
      });
      this.#watcher = w;
    } catch (err) {
      // ENOENT (not mounted yet), ENOSPC (inotify watches exhausted), unsupported file systems.
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const key = `watch:${code}`;
      if (!this.#warned.has(key)) {
        this.#warned.add(key);
        this.#log.warn({ code }, `cannot watch the runbook folder (${code || String(err)}); rescanning every ${this.#o.pollIntervalMs} ms`);
      }
    }
  }

  #changed(): void {
    if (this.#stopped) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.scan();
    }, this.#o.debounceMs);
    this.#debounce.unref();
  }

  #warnOnce(key: string, obj: Record<string, unknown>, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn(obj, msg);
  }

  async #scanOnce(): Promise<RunbookScan> {
    const dir = this.#o.dir;
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => !n.startsWith('.') && MD.test(n)).sort();
      this.#warned.delete('missing');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // The folder is the truth: no folder, no runbooks. A watch on the deleted folder would
      // never see it come back: drop it, the next poll watches the new one.
      this.#watcher?.close();
      this.#watcher = null;
      this.#warnOnce('missing', {}, 'runbook folder does not exist; no runbooks until it appears');
      names = [];
    }
    let skipped = 0;
    if (names.length > this.#o.maxFiles) {
      skipped += names.length - this.#o.maxFiles;
      this.#warnOnce(`count:${names.length}`, { files: names.length, maxFiles: this.#o.maxFiles }, 'too many runbooks; indexing the first ones by file name');
      names = names.slice(0, this.#o.maxFiles);
    }
    const upsert: RunbookRecord[] = [];
    const present = new Map<string, Known>();
    for (const name of names) {
      const id = name.replace(MD, '');
      const path = join(dir, name);
      try {
        const st = await stat(path);
        if (!st.isFile()) continue;
        if (st.size > this.#o.maxFileBytes) {
          skipped++;
          this.#warnOnce(`size:${id}:${st.size}`, { runbook: id, sizeBytes: st.size, maxFileBytes: this.#o.maxFileBytes }, 'runbook too large; skipped');
          continue;
        }
        const signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
        const known = this.#known.get(id);
        if (known && known.signature === signature) {
          present.set(id, known);
          continue;
        }
        const buf = await readFile(path);
        // The file may have grown between stat and read.
        const body = buf.subarray(0, this.#o.maxFileBytes).toString('utf8').replace(/^\uFEFF/, '');
        const sha256 = createHash('sha256').update(body).digest('hex');
        present.set(id, { signature, sha256 });
        if (known?.sha256 !== sha256) {
          upsert.push({ id, title: runbookTitle(body, id), body, path, size: buf.length, mtimeMs: st.mtimeMs, sha256 });
        }
      } catch (err) {
        // Vanished between readdir and read (a ConfigMap swap): the next scan sees the new state.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        skipped++;
        this.#warnOnce(`read:${id}:${(err as NodeJS.ErrnoException).code ?? ''}`, { runbook: id, err }, 'runbook unreadable; skipped');
        const known = this.#known.get(id);
        // An unreadable file keeps its last indexed version rather than vanishing.
        if (known) present.set(id, known);
      }
    }
    const remove = [...this.#known.keys()].filter((id) => !present.has(id));
    const r = this.#store.applyRunbooks({ upsert, remove });
    this.#known = present;
    this.#lastScanAt = new Date().toISOString();
    this.#lastError = null;
    if (r.upserted > 0 || r.removed > 0) {
      this.#log.info({ runbooks: present.size, updated: r.upserted, removed: r.removed }, 'runbooks indexed');
    }
    return { runbooks: present.size, upserted: r.upserted, removed: r.removed, skipped };
  }
}
