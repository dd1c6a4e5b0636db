// Owns the set of connections and the fan-out: broadcasts framed once per form (plain, and
// compressed for permessage-deflate connections) and shared, the writes of one turn started in windows, the memory budget that sheds the clients holding the most, and
// the flow-control question the FIFO asks ("are most clients behind?").

import type { Logger } from "../api/handlers.ts";
import { SharedBytes } from "../policy/outbound_queue.ts";
import type { BroadcastForms } from "../protocol/compressed_frames.ts";
import type { ClientConnection } from "./connection.ts";

/** Most clients whose writes are started at once (see #flushDirty). */
const FLUSH_WINDOW = 256;
const FLUSH_WINDOW_WAIT_MS = 5;
/**
 * A client with more than this queued is behind. While most open clients are behind, the
 * server itself is the bottleneck and the FIFO reader waits; a minority of slow clients never
 * holds up the rest (they fill their own queue and are closed as slow consumers).
 */
export const BEHIND_BYTES = 64 * 1024;
/**
 * A client whose write has waited this long is not reading (its socket buffer is full). It is
 * left out of the flow-control count: clients that do not read never hold up those that do.
 */
export const STALLED_MS = 1000;

/** Broadcast bytes whose frames carry RSV1 (RFC 7692 §6): only for deflate connections. */
class CompressedBytes extends SharedBytes {
  readonly compressed = true;
}

export interface HubOptions {
  readonly log: Logger;
  /** Bytes queued for all clients, shared bytes counted once; past it the worst are shed. */
  readonly maxQueueTotal: number;
}

/** The registry of connections and everything sent to many of them. */
export class Hub {
  readonly #log: Logger;
  readonly #maxTotal: number;
  readonly #all = new Set<ClientConnection>();
  readonly #open = new Set<ClientConnection>();
  /** Bytes of broadcasts still held by at least one queue. */
  #sharedBytes = 0;
  #dirty: ClientConnection[] = [];
  #flushScheduled = false;
  /** Clients waiting for a flush window; entries before #flushHead are done. */
  #flushQueue: ClientConnection[] = [];
  #flushHead = 0;
  #flushing = false;
  readonly #freeShared = (size: number) => {
    this.#sharedBytes -= size;
  };

  constructor(options: HubOptions) {
    this.#log = options.log;
    this.#maxTotal = options.maxQueueTotal;
  }

  /** Every connection, from accept until its socket is gone. */
  get all(): ReadonlySet<ClientConnection> {
    return this.#all;
  }

  /** The open connections: after the handshake, until closed. */
  get open(): ReadonlySet<ClientConnection> {
    return this.#open;
  }

  add(conn: ClientConnection): void {
    this.#all.add(conn);
  }

  opened(conn: ClientConnection): void {
    this.#open.add(conn);
  }

  /** Returns whether `conn` was open (and so is reported closed now). */
  closed(conn: ClientConnection): boolean {
    return this.#open.delete(conn);
  }

  forget(conn: ClientConnection): void {
    this.#all.delete(conn);
  }

  /**
   * Queues a message for every open client that `accept` passes, sharing the same bytes: each
   * form is made (framed, and compressed) at most once, on first need. A client without
   * permessage-deflate gets the plain form; one with it gets the form compressed for its window
   * (the plain one when compression does not pay). Plain `parts` (whole frames) go to everyone
   * as they are. Returns how many clients took it.
   */
  broadcast(
    message: BroadcastForms | readonly Uint8Array[],
    accept?: (conn: ClientConnection) => boolean,
  ): number {
    return this.#fanOut(message, this.#open, accept);
  }

  /** Queues a message for each of `to`, each form made once and shared, as `broadcast` does. */
  sendTo(message: BroadcastForms | readonly Uint8Array[], to: readonly ClientConnection[]): number {
    return this.#fanOut(message, to);
  }

  #fanOut(
    message: BroadcastForms | readonly Uint8Array[],
    to: Iterable<ClientConnection>,
    accept?: (conn: ClientConnection) => boolean,
  ): number {
    const forms = isParts(message) ? plainForms(message) : message;
    let plain: SharedBytes | null = null;
    /** By window bits: the compressed form, or the plain one where none pays; few keys in use. */
    let byWindow: Map<number, SharedBytes> | null = null;
    let sent = 0;
    for (const conn of to) {
      if (accept && !accept(conn)) continue;
      const bits = conn.compressWindow;
      let shared: SharedBytes;
      if (bits === null) {
        shared = plain ??= this.#count(new SharedBytes(forms.plain(), this.#freeShared));
      } else {
        byWindow ??= new Map();
        let form = byWindow.get(bits);
        if (form === undefined) {
          const parts = forms.compressed(bits);
          form = parts === null
            ? (plain ??= this.#count(new SharedBytes(forms.plain(), this.#freeShared)))
            : this.#count(new CompressedBytes(parts, this.#freeShared));
          byWindow.set(bits, form);
        }
        shared = form;
      }
      if (conn.sendShared(shared)) sent++;
    }
    // Forms no client took are not held by any queue.
    if (plain !== null && plain.holders === 0) this.#sharedBytes -= plain.size;
    if (byWindow !== null) {
      for (const form of byWindow.values()) {
        if (form !== plain && form.holders === 0) this.#sharedBytes -= form.size;
      }
    }
    return sent;
  }

  /** Counts `shared` in the bytes held for all clients, until its last holder lets go. */
  #count(shared: SharedBytes): SharedBytes {
    this.#sharedBytes += shared.size;
    return shared;
  }

  /** Bytes queued for all clients, each broadcast counted once. */
  queuedBytes(): number {
    let total = this.#sharedBytes;
    for (const conn of this.#open) total += conn.privateBytes;
    return total;
  }

  /**
   * Keeps the total under --max-queue-total by closing the clients that hold the most, as slow
   * consumers, one at a time. Returns how many were closed.
   */
  /** `enforceBudget()`, but only when broadcasts alone hold half the budget (cheap per batch). */
  enforceBudgetIfNear(): number {
    return this.#sharedBytes * 2 > this.#maxTotal ? this.enforceBudget() : 0;
  }

  enforceBudget(): number {
    let total = this.queuedBytes();
    if (total <= this.#maxTotal) return 0;
    const worst = [...this.#open].filter((c) => c.isOpen)
      .sort((a, b) => b.bufferedAmount - a.bufferedAmount);
    let shed = 0;
    for (const conn of worst) {
      if (total <= this.#maxTotal) break;
      // What it holds is freed as its socket closes, which completes after this turn.
      total -= conn.bufferedAmount;
      conn.shed();
      shed++;
    }
    this.#log.warn(
      `${shed} ${shed === 1 ? "client" : "clients"} closed as slow consumers: ` +
        `over --max-queue-total (${this.#maxTotal} bytes queued)`,
    );
    return shed;
  }

  /**
   * Whether most open clients that are still reading are behind, i.e. the server as a whole
   * cannot keep up. Clients that stopped reading are not counted (they are closed as slow
   * consumers by their own limits instead).
   */
  mostAreBehind(now: number): boolean {
    // Broadcasts are what the FIFO adds: with less than BEHIND_BYTES of them held, no client
    // can be behind on them, and the scan of every client is skipped (one line, 10k clients).
    if (this.#sharedBytes <= BEHIND_BYTES) return false;
    let reading = 0;
    let behind = 0;
    for (const conn of this.#open) {
      if (conn.isStalled(now, STALLED_MS)) continue;
      reading++;
      if (conn.bufferedAmount > BEHIND_BYTES) behind++;
    }
    return behind * 2 > reading;
  }

  tick(now: number): void {
    for (const conn of this.#all) conn.tick(now);
  }

  markDirty(conn: ClientConnection): void {
    this.#dirty.push(conn);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /**
   * Starts the writes of every client that queued frames this turn. Up to FLUSH_WINDOW go at
   * once; more are started a window at a time, each window once the previous one's writes
   * have settled (or FLUSH_WINDOW_WAIT_MS passed, so a stalled socket holds no one up).
   * Deno's cost per async write grows with the writes pending at once: at 10,000 clients
   * one 100 B line cost ~20-30 µs per write all at once, ~12-14 µs in windows of 100-300.
   */
  flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    if (!this.#flushing && dirty.length <= FLUSH_WINDOW) {
      for (const conn of dirty) conn.flush();
      return;
    }
    // Each client is listed at most once per turn (see ClientConnection#markDirty).
    for (const conn of dirty) this.#flushQueue.push(conn);
    if (!this.#flushing) this.#flushWindows();
  }

  async #flushWindows(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#flushHead < this.#flushQueue.length) {
        const end = Math.min(this.#flushHead + FLUSH_WINDOW, this.#flushQueue.length);
        const writes: Promise<void>[] = [];
        for (let i = this.#flushHead; i < end; i++) {
          const pending = this.#flushQueue[i].flush();
          if (pending) writes.push(pending);
        }
        this.#flushHead = end;
        if (writes.length > 0) await settledOrTimeout(writes, FLUSH_WINDOW_WAIT_MS);
      }
    } finally {
      this.#flushQueue = [];
      this.#flushHead = 0;
      this.#flushing = false;
    }
  }
}

/** Resolves once every promise settled, or after `ms`, whichever is first. Never rejects. */
async function settledOrTimeout(pending: Promise<void>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  try {
    await Promise.race([Promise.allSettled(pending), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function isParts(
  message: BroadcastForms | readonly Uint8Array[],
): message is readonly Uint8Array[] {
  return Array.isArray(message);
}

/** Frames already encoded plain: the same for every client. */
function plainForms(parts: readonly Uint8Array[]): BroadcastForms {
  return { plain: () => parts, compressed: () => null };
}
