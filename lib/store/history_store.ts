// Owns the SQLite file that makes channel history survive a crash: one table of publications,
// one of channel heads (epoch, top offset), one of metadata. Through node:sqlite (DatabaseSync,
// built into Deno: no dependency). Every call is synchronous, so a batch is durable when
// `append` returns.
//
// Durability: journal_mode=WAL. With synchronous=NORMAL (the default) a commit is in the WAL
// file when `append` returns: it survives a crash of the process (kill -9, OOM kill, a panic),
// and the file is never corrupt, but the last commits may roll back on a power loss or a kernel
// crash (the WAL is fsynced only at checkpoints). channel_log.ts covers that case by changing
// every epoch after a reboot. synchronous=FULL fsyncs the WAL on every commit: a commit then
// also survives a power loss, at the price of one fsync per FIFO batch.

import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import type { HistoryLimits, Publication } from "../channels/history.ts";

/** The file name inside the state directory. */
export const HISTORY_FILE = "history.sqlite";

/** SQLite's synchronous levels this store offers (see the file comment). */
export type Synchronous = "normal" | "full";

/** The schema version written in the meta table. */
const SCHEMA_VERSION = "1";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
  name TEXT PRIMARY KEY, epoch TEXT NOT NULL, top INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS publications (
  channel TEXT NOT NULL, offset INTEGER NOT NULL, time INTEGER NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (channel, offset)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS publications_time ON publications (time);
`;

/** A channel's head as stored. */
export interface StoredHead {
  readonly channel: string;
  readonly epoch: string;
  readonly top: number;
}

export type StoreResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The history file of one state directory. */
export class HistoryStore {
  readonly #db: DatabaseSync;
  readonly #maxCount: number;
  readonly #insert: StatementSync;
  readonly #head: StatementSync;
  readonly #trimCount: StatementSync;
  readonly #read: StatementSync;
  readonly #trimAge: StatementSync;
  #open = true;

  private constructor(db: DatabaseSync, limits: HistoryLimits) {
    this.#db = db;
    this.#maxCount = limits.maxCount;
    this.#insert = db.prepare(
      "INSERT OR REPLACE INTO publications (channel, offset, time, data) VALUES (?, ?, ?, ?)",
    );
    this.#head = db.prepare("INSERT OR REPLACE INTO channels (name, epoch, top) VALUES (?, ?, ?)");
    this.#trimCount = db.prepare("DELETE FROM publications WHERE channel = ? AND offset <= ?");
    this.#read = db.prepare(
      "SELECT offset, time, data FROM publications " +
        "WHERE channel = ? AND offset >= ? AND offset <= ? AND time >= ? ORDER BY offset",
    );
    this.#trimAge = db.prepare("DELETE FROM publications WHERE time < ?");
  }

  /**
   * Opens (creating it and the directory if needed) the history file in `dir`. Fails as a value
   * when the directory or file cannot be written, e.g. without --allow-write for it.
   */
  static open(
    dir: string,
    options: { readonly limits: HistoryLimits; readonly synchronous?: Synchronous },
  ): { readonly ok: true; readonly store: HistoryStore } | { readonly ok: false; reason: string } {
    let db: DatabaseSync | undefined;
    try {
      Deno.mkdirSync(dir, { recursive: true });
      db = new DatabaseSync(`${dir.replace(/\/$/, "")}/${HISTORY_FILE}`);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
      db.exec("PRAGMA busy_timeout = 1000");
      db.exec(SCHEMA);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)").run(
        SCHEMA_VERSION,
      );
      return { ok: true, store: new HistoryStore(db, options.limits) };
    } catch (e) {
      try {
        db?.close();
      } catch {
        // Already failing; the first error is the one to report.
      }
      return { ok: false, reason: `cannot open ${dir}/${HISTORY_FILE}: ${message(e)}` };
    }
  }

  /** Every channel's epoch and top offset. */
  heads(): StoredHead[] {
    return this.#db.prepare("SELECT name, epoch, top FROM channels").all().map((row) => ({
      channel: String(row.name),
      epoch: String(row.epoch),
      top: Number(row.top),
    }));
  }

  /** A metadata value, or undefined. */
  meta(key: string): string | undefined {
    const row = this.#db.prepare("SELECT value FROM meta WHERE key = ?").get(key);
    return row === undefined ? undefined : String(row.value);
  }

  setMeta(key: string, value: string): void {
    this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(key, value);
  }

  /**
   * Commits a batch of publications in ONE transaction, with the channels' new heads, and trims
   * each channel to its count limit. Either all of the batch is stored or none of it.
   */
  append(pubs: readonly Publication[]): StoreResult {
    if (pubs.length === 0) return { ok: true };
    const heads = new Map<string, Publication>();
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      for (const pub of pubs) {
        this.#insert.run(pub.channel, pub.offset, pub.time, pub.data);
        heads.set(pub.channel, pub);
      }
      for (const pub of heads.values()) {
        this.#head.run(pub.channel, pub.epoch, pub.offset);
        if (pub.offset > this.#maxCount) {
          this.#trimCount.run(pub.channel, pub.offset - this.#maxCount);
        }
      }
      this.#db.exec("COMMIT");
      return { ok: true };
    } catch (e) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // No transaction left to roll back.
      }
      return { ok: false, reason: `history write failed: ${message(e)}` };
    }
  }

  /** The stored publications of `channel` with offsets in [from, to], not older than
   * `notBefore`, oldest first. A hole shows as a missing offset (see coversRange). */
  read(
    channel: string,
    range: { readonly from: number; readonly to: number; readonly notBefore: number },
  ): Publication[] {
    const epoch = this.#db.prepare("SELECT epoch FROM channels WHERE name = ?").get(channel);
    if (epoch === undefined) return [];
    return this.#read.all(channel, range.from, range.to, range.notBefore).map((row) => ({
      channel,
      offset: Number(row.offset),
      epoch: String(epoch.epoch),
      time: Number(row.time),
      data: String(row.data),
    }));
  }

  /** Deletes publications older than `notBefore`; returns how many. */
  trimAge(notBefore: number): number {
    return Number(this.#trimAge.run(notBefore).changes);
  }

  /** History was lost: every channel moves to `epoch`, and what was stored is deleted. */
  renewEpoch(epoch: string): void {
    this.#db.exec("BEGIN IMMEDIATE");
    this.#db.prepare("UPDATE channels SET epoch = ?").run(epoch);
    this.#db.exec("DELETE FROM publications");
    this.#db.exec("COMMIT");
  }

  /** Closes the file (a checkpoint folds the WAL back in). Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#db.close();
  }
}
