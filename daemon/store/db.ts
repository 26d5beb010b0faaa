/**
 * The one SQLite connection every repository of the store shares: opening
 * (with recovery from a corrupt file), pragmas, migrations, WAL checkpoints,
 * size on disk, and the generation counters that tell readers what changed.
 */
import { existsSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { DirError, makeDirs } from '../core/dirs.js';
import { MIGRATIONS } from './migrations.js';

/** Database file name inside dataDir. */
export const DB_FILE = 'nodesage.db';

/**
 * The WAL is truncated back to this size once checkpointed (`journal_size_limit`), and a commit that finds it
 * larger tries a truncating checkpoint.
 */
export const WAL_LIMIT_BYTES = 4 * 1024 * 1024;

/**
 * Page cache of each connection, in KiB. SQLite's default is 2 MiB; reads of a page of findings touch a few
 * dozen pages, and every MiB here is resident memory the node pays for (the search worker has its own).
 */
export const CACHE_KIB = 2048;

/** Lets timers and I/O run between two slices of store work. */
export const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/** quick_check did not say ok. */
export class CorruptDatabaseError extends Error {
  readonly code = 'DB_CORRUPT';
  override readonly name = 'CorruptDatabaseError';
}

function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT');
}

/** The shared connection and what every repository needs besides it. */
export class StoreDb {
  readonly path: string;
  readonly db: Database.Database;
  /** Where a corrupt database was moved at start, or null. */
  readonly recoveredFrom: string | null;
  /**
   * Bumped whenever a finding, its evidence or its diagnosis may have changed (commit, diagnosis, retention,
   * redaction): a response built from findings at one generation is still true at the same generation.
   */
  findingsGeneration = 0;
  /** Bumped whenever the full-text index or the runbooks change: ranked search rows are reusable until then. */
  searchGeneration = 0;
  /** Bumped whenever host metric samples are added or deleted. */
  samplesGeneration = 0;
  /** Bumped whenever host metric samples are deleted (retention): text kept of older buckets may be gone. */
  samplesPrunes = 0;
  /** Bumped whenever a feedback row is added (rows are never changed or deleted). */
  feedbackGeneration = 0;

  private constructor(path: string, db: Database.Database, recoveredFrom: string | null) {
    this.path = path;
    this.db = db;
    this.recoveredFrom = recoveredFrom;
  }

  /**
   * Opens (or creates) the database in `dir`. A database that fails `PRAGMA quick_check`
   * or cannot be opened is moved aside with a timestamp and a fresh one created.
   */
  static open(dir: string, logger?: Logger): StoreDb {
    try {
      makeDirs(dir);
    } catch (err) {
      throw new DirError(`the data folder cannot be used: ${(err as Error).message}`);
    }
    const path = join(dir, DB_FILE);
    let recoveredFrom: string | null = null;
    let db: Database.Database;
    try {
      db = openChecked(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY') {
        throw new DirError(`the database ${path} cannot be opened for writing (${code}): check the folder's permissions`);
      }
      if (!isCorruptionError(err) && !(err instanceof CorruptDatabaseError)) throw err;
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      recoveredFrom = `${path}.corrupt-${stamp}`;
      renameSync(path, recoveredFrom);
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(path + suffix)) renameSync(path + suffix, recoveredFrom + suffix);
      }
      logger?.error({ err, movedTo: recoveredFrom }, 'database was corrupt; moved it aside and started a fresh one');
      db = openChecked(path);
    }
    return new StoreDb(path, db, recoveredFrom);
  }

  /** Runs `fn` in one transaction. */
  tx<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
    return this.db.transaction(fn);
  }

  /** Bytes of the WAL file (0 when there is none). */
  walBytes(): number {
    const wal = `${this.path}-wal`;
    return existsSync(wal) ? statSync(wal).size : 0;
  }

  /** Database size on disk (main file + WAL). */
  sizeBytes(): number {
    let n = 0;
    for (const p of [this.path, `${this.path}-wal`]) if (existsSync(p)) n += statSync(p).size;
    return n;
  }

  /**
   * Copies the WAL into the database file and truncates it, without waiting for readers: one holding an older
   * snapshot would otherwise stall the event loop for the whole busy timeout. What it cannot copy yet stays in
   * the WAL for the next attempt. Returns whether the WAL was emptied.
   */
  checkpoint(): boolean {
    this.db.pragma('busy_timeout = 0');
    try {
      const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      return r?.busy === 0;
    } finally {
      this.db.pragma('busy_timeout = 5000');
    }
  }

  /** Checkpoints the WAL into the main file and closes. */
  close(): void {
    if (!this.db.open) return;
    try {
      this.checkpoint();
    } finally {
      this.db.close();
    }
  }
}

/** What every repository of the store stands on: the shared connection. */
export abstract class Repo {
  protected readonly s: StoreDb;

  constructor(s: StoreDb) {
    this.s = s;
  }

  /** The shared connection's database handle. */
  protected get db(): Database.Database {
    return this.s.db;
  }
}

function openChecked(path: string): Database.Database {
  const db = new Database(path);
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new CorruptDatabaseError(String(check));
    if (db.pragma('user_version', { simple: true }) === 0) db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode loses at most the last transactions on power loss, never consistency.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma(`cache_size = -${CACHE_KIB}`);
    // Reads go through the page cache only: a memory map of a 100+ MiB history would count as resident.
    db.pragma('mmap_size = 0');
    // Without it a WAL that grew while a reader held it (a long search, sqlite3 or a backup on the node) keeps
    // its largest size on disk after the checkpoint.
    db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this nodesage (${MIGRATIONS.length}); refusing to downgrade`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
