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

/** One entry: whole frames, as parts (a header and its payload may be apart). A SharedBytes is
 * its own entry (no allocation per queue on the broadcast path). */
interface Entry {
  readonly parts: readonly Uint8Array[];
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
  readonly #inFlightShared: SharedBytes[] = [];

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
    this.#entries.push({ parts, size });
    this.#queued += size;
    this.#private += size;
  }

  /** Queues frames shared with other connections; they are held until written or dropped. */
  pushShared(shared: SharedBytes): void {
    shared.hold();
    this.#entries.push(shared);
    this.#queued += shared.size;
  }

  /**
   * Takes the next write: an entry of COALESCE_LIMIT or more alone, its parts as they are (a
   * large frame keeps its payload apart from its header, no copy); otherwise as many following
   * entries as fit, copied into one chunk. Write the chunks in order, then call `written()`.
   * Returns null when nothing is pending.
   */
  take(): readonly Uint8Array[] | null {
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
    return chunks;
  }

  /** The unit taken last is written (or abandoned): its shared bytes are released. */
  written(): void {
    this.#inFlight = 0;
    const held = this.#inFlightShared;
    if (held.length === 0) return;
    for (const s of held) s.release();
    held.length = 0;
  }

  /**
   * Drops every entry not yet taken. The unit in flight is not touched: it is a run of whole
   * frames, so the stream stays well-formed. Returns the bytes dropped.
   */
  dropPending(): number {
    const dropped = this.#queued;
    for (let i = this.#head; i < this.#entries.length; i++) {
      const e = this.#entries[i];
      if (e instanceof SharedBytes) e.release();
    }
    this.#entries = [];
    this.#head = 0;
    this.#queued = 0;
    this.#private = 0;
    return dropped;
  }

  #settle(entry: Entry): void {
    if (entry instanceof SharedBytes) this.#inFlightShared.push(entry);
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
