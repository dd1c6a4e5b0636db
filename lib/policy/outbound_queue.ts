// Owns one connection's bounded outbound queue: whole frames go in, write units come out. An
// entry never splits a frame, so dropping what is unsent can never cut one in half. Bytes shared
// by many queues (a broadcast framed once) are counted once, through a SharedBytes record.

/**
 * Bytes framed once and queued by many connections (a broadcast). `holders` counts the queues
 * that still hold them; the owner (the hub) learns through `release` when the last lets go.
 */
export class SharedBytes {
  readonly parts: readonly Uint8Array[];
  readonly size: number;
  #holders = 0;
  readonly #onFree: (size: number) => void;

  constructor(parts: readonly Uint8Array[], onFree: (size: number) => void) {
    this.parts = parts;
    let size = 0;
    for (const p of parts) size += p.length;
    this.size = size;
    this.#onFree = onFree;
  }

  get holders(): number {
    return this.#holders;
  }

  hold(): void {
    this.#holders++;
  }

  release(): void {
    if (--this.#holders === 0) this.#onFree(this.size);
  }
}

/** One entry: whole frames, as parts (a header and its payload may be apart). */
interface Entry {
  readonly parts: readonly Uint8Array[];
  readonly size: number;
  readonly shared: SharedBytes | null;
}

/** What to write next, and what it releases once written (or dropped). */
export interface WriteUnit {
  /** Written in order; a large frame keeps its payload apart from its header (no copy). */
  readonly chunks: readonly Uint8Array[];
  readonly size: number;
}

/** Small entries are copied together into one write up to this size. */
export const COALESCE_LIMIT = 256 * 1024;

/** A FIFO of whole frames with a byte count, a limit, and write units taken in order. */
export class OutboundQueue {
  #entries: Entry[] = [];
  #head = 0;
  #queued = 0;
  #private = 0;
  /** The unit being written, and the shared records it holds until then. */
  #inFlight = 0;
  #inFlightShared: SharedBytes[] = [];

  /** Bytes queued and not yet written, the unit in flight included. */
  get size(): number {
    return this.#queued + this.#inFlight;
  }

  /** Bytes queued that belong to this queue alone (not shared with other queues). */
  get privateSize(): number {
    return this.#private;
  }

  /** Whether anything waits to be taken. */
  get hasPending(): boolean {
    return this.#head < this.#entries.length;
  }

  /** Queues whole frames that belong to this connection alone. */
  push(parts: readonly Uint8Array[], size: number): void {
    this.#entries.push({ parts, size, shared: null });
    this.#queued += size;
    this.#private += size;
  }

  /** Queues frames shared with other connections; they are held until written or dropped. */
  pushShared(shared: SharedBytes): void {
    shared.hold();
    this.#entries.push({ parts: shared.parts, size: shared.size, shared });
    this.#queued += shared.size;
  }

  /**
   * Takes the next write unit: an entry of COALESCE_LIMIT or more alone, its parts as they are;
   * otherwise as many following entries as fit, copied into one chunk. Call `written()` once
   * it is written. Returns null when nothing is pending.
   */
  take(): WriteUnit | null {
    if (!this.hasPending) return null;
    const entries = this.#entries;
    let end = this.#head + 1;
    let size = entries[this.#head].size;
    if (size < COALESCE_LIMIT) {
      while (end < entries.length && size + entries[end].size <= COALESCE_LIMIT) {
        size += entries[end++].size;
      }
    }
    const chunks = end - this.#head === 1
      ? entries[this.#head].parts
      : [joinParts(entries, { from: this.#head, to: end, size })];
    for (let i = this.#head; i < end; i++) this.#settle(entries[i]);
    this.#head = end;
    if (this.#head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    }
    this.#queued -= size;
    this.#inFlight = size;
    return { chunks, size };
  }

  /** The unit taken last is written (or abandoned): its shared bytes are released. */
  written(): void {
    this.#inFlight = 0;
    const held = this.#inFlightShared;
    if (held.length === 0) return;
    this.#inFlightShared = [];
    for (const s of held) s.release();
  }

  /**
   * Drops every entry not yet taken. The unit in flight is not touched: it is a run of whole
   * frames, so the stream stays well-formed. Returns the bytes dropped.
   */
  dropPending(): number {
    const dropped = this.#queued;
    for (let i = this.#head; i < this.#entries.length; i++) {
      const e = this.#entries[i];
      if (e.shared) e.shared.release();
    }
    this.#entries = [];
    this.#head = 0;
    this.#queued = 0;
    this.#private = 0;
    return dropped;
  }

  #settle(entry: Entry): void {
    if (entry.shared) this.#inFlightShared.push(entry.shared);
    else this.#private -= entry.size;
  }
}

function joinParts(entries: readonly Entry[], at: { from: number; to: number; size: number }) {
  const out = new Uint8Array(at.size);
  let offset = 0;
  for (let i = at.from; i < at.to; i++) {
    for (const p of entries[i].parts) {
      out.set(p, offset);
      offset += p.length;
    }
  }
  return out;
}
