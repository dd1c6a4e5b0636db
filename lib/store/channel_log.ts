// Owns channel history as the server uses it: offsets assigned by the pure History, written to
// the SQLite store before anyone is sent them ("write before send"), resumes served from memory
// and, past memory, from the store. Falls back to memory only (one warning) when the state
// directory cannot be written, and changes epochs whenever stored history may be incomplete.

import { History } from "../channels/history.ts";
import type { HistoryLimits, Publication, PublishItem } from "../channels/history.ts";
import { DEFAULT_HISTORY_LIMITS } from "../channels/history.ts";
import { coversRange, decideRecovery } from "../channels/recovery.ts";
import type { RecoveryDecision } from "../channels/recovery.ts";
import type { StreamPosition } from "../channels/protocol.ts";
import { HistoryStore } from "./history_store.ts";
import type { Synchronous } from "./history_store.ts";

/** The default state directory, relative to the working directory (git-ignored). */
export const DEFAULT_STATE_DIR = "./.push-state";

/** How the warning line and the readiness flag begin when history is not written to disk. */
export const MEMORY_ONLY = "history kept in memory only";

/** Two boot times closer than this (seconds) are the same boot (clock steps, rounding). */
const SAME_BOOT_TOLERANCE_S = 10;
const EPOCH_BYTES = 6;

/** A fresh epoch: 12 random hex digits. */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(EPOCH_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** When the machine booted, in seconds since 1970, or null without --allow-sys=osUptime. */
function bootTime(): number | null {
  try {
    return Date.now() / 1000 - Deno.osUptime();
  } catch {
    return null;
  }
}

export interface ChannelLogOptions {
  /** The state directory; null for memory only. */
  readonly stateDir: string | null;
  readonly limits?: HistoryLimits;
  /**
   * SQLite's synchronous level: "normal" survives kill -9, and after a reboot every epoch
   * changes (the last commits may be lost); "full" also survives a power loss. "auto" (the
   * default) is "normal" when the boot time can be read (--allow-sys=osUptime), else "full".
   */
  readonly synchronous?: Synchronous | "auto";
  /** Receives warning lines (history falls back to memory). */
  readonly warn?: (line: string) => void;
  /** Test seam: the boot time in seconds (default: from Deno.osUptime; null when unknown). */
  readonly bootTime?: number | null;
}

/** The result of a resume: the decision (recovered or not) and the publications to replay. */
export interface Resume {
  readonly decision: RecoveryDecision;
  /** When decision.kind is "replay": offsets from..to in order; otherwise empty. */
  readonly replay: readonly Publication[];
}

/** Channel history for one server process. */
export class ChannelLog {
  readonly #history: History;
  readonly #limits: HistoryLimits;
  readonly #warn: (line: string) => void;
  #store: HistoryStore | null;
  /** Why there is no store (one line), or null while there is one. */
  #memoryOnly: string | null;

  private constructor(
    parts: {
      history: History;
      store: HistoryStore | null;
      warn: (line: string) => void;
      memoryOnly?: string;
    },
  ) {
    this.#history = parts.history;
    this.#limits = parts.history.limits;
    this.#store = parts.store;
    this.#warn = parts.warn;
    this.#memoryOnly = parts.store === null ? parts.memoryOnly ?? "no state directory" : null;
  }

  /**
   * Opens the history of `options.stateDir`. When the directory cannot be written, history stays
   * in memory: `warning` then holds the one line the server should log at start.
   */
  static open(
    options: ChannelLogOptions,
  ): { log: ChannelLog; durable: boolean; warning: string | null } {
    const limits = options.limits ?? DEFAULT_HISTORY_LIMITS;
    const warn = options.warn ?? (() => {});
    if (options.stateDir === null) {
      const history = new History({ epoch: newEpoch(), durable: false, limits });
      return { log: new ChannelLog({ history, store: null, warn }), durable: false, warning: null };
    }
    const boot = options.bootTime === undefined ? bootTime() : options.bootTime;
    const level = options.synchronous ?? "auto";
    const synchronous = level === "auto" ? (boot === null ? "full" : "normal") : level;
    const opened = HistoryStore.open(options.stateDir, { limits, synchronous });
    if (!opened.ok) {
      const history = new History({ epoch: newEpoch(), durable: false, limits });
      const log = new ChannelLog({ history, store: null, warn, memoryOnly: opened.reason });
      return { log, durable: false, warning: `${MEMORY_ONLY}: ${opened.reason}` };
    }
    const store = opened.store;
    // If the last run did not fsync each commit (NORMAL) and the machine rebooted since (or we
    // cannot tell), its last commits may be lost while clients saw them: the offsets those
    // clients hold cannot be trusted, so every epoch changes.
    const lastLevel = store.meta("synchronous");
    const lastBoot = Number(store.meta("boot_time") ?? NaN);
    if (
      lastLevel === "normal" &&
      (boot === null || !(Math.abs(boot - lastBoot) <= SAME_BOOT_TOLERANCE_S))
    ) {
      store.renewEpoch(newEpoch());
      store.setMeta("epoch", newEpoch());
    }
    store.setMeta("synchronous", synchronous);
    store.setMeta("boot_time", boot === null ? "" : String(boot));
    // The epoch of channels not yet published to is kept too, so that a client of an empty
    // channel resumes across a restart (its history is complete: there is none).
    let epoch = store.meta("epoch");
    if (epoch === undefined) {
      epoch = newEpoch();
      store.setMeta("epoch", epoch);
    }
    const history = new History({ epoch, durable: true, limits });
    for (const head of store.heads()) history.seed(head.channel, head);
    return { log: new ChannelLog({ history, store, warn }), durable: true, warning: null };
  }

  /** Whether publications are written to disk before they are sent. */
  get durable(): boolean {
    return this.#store !== null;
  }

  /**
   * Why history is kept in memory only, one line (the state directory could not be opened, a
   * write failed, or there is none), or null while publications are written to disk.
   */
  get memoryOnly(): string | null {
    return this.#memoryOnly;
  }

  /** The in-memory part, for metrics (bytes, size). */
  get history(): History {
    return this.#history;
  }

  /** Where a channel stands now: what a fresh subscriber is told. */
  position(channel: string): StreamPosition {
    const view = this.#history.view(channel);
    return { epoch: view.epoch, offset: view.top };
  }

  /**
   * Publishes a batch (one FIFO read): assigns offsets, commits the batch to the store in one
   * transaction, then to memory. Only after this returns may any of them be sent. If the store
   * fails, the server warns once, moves every channel to a new epoch (resuming clients get
   * recovered:false) and goes on in memory only.
   */
  publish(items: readonly PublishItem[], now: number): Publication[] {
    let pubs = this.#history.prepare(items, now);
    if (this.#store !== null) {
      const written = this.#store.append(pubs);
      if (!written.ok) {
        this.#warn(`${written.reason}; ${MEMORY_ONLY} from now on`);
        try {
          this.#store.close();
        } catch {
          // The file is failing already.
        }
        this.#store = null;
        this.#memoryOnly = written.reason;
        this.#history.renewEpoch(newEpoch(), { durable: false });
        pubs = this.#history.prepare(items, now);
      }
    }
    this.#history.commit(pubs);
    return pubs;
  }

  /**
   * Decides a resume for one channel and reads what to replay: from memory, and the older part
   * from the store. A replay that finds a hole (expired in the store) becomes "lost".
   */
  resume(channel: string, since: StreamPosition | null, now: number): Resume {
    const decision = decideRecovery(since, this.#history.view(channel));
    if (decision.kind !== "replay" || decision.from > decision.to) return { decision, replay: [] };
    const { memory, before } = this.#history.read(channel, { ...decision, now });
    let replay = memory;
    if (before !== null && this.#store !== null) {
      const notBefore = now - this.#limits.maxAgeMs;
      replay = this.#store.read(channel, { ...before, notBefore }).concat(memory);
    }
    if (!coversRange(replay, decision)) {
      return {
        decision: { kind: "lost", epoch: decision.epoch, offset: decision.offset },
        replay: [],
      };
    }
    return { decision, replay };
  }

  /** Drops what has expired, in memory and in the store. Call it now and then (e.g. each minute). */
  trim(now: number): void {
    this.#history.trim(now);
    this.#store?.trimAge(now - this.#limits.maxAgeMs);
  }

  /** Closes the store. */
  close(): void {
    this.#store?.close();
    this.#store = null;
  }
}
