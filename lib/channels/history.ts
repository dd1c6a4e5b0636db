// Owns per-channel history in memory: offsets that only grow, an epoch per channel, and the
// in-memory ring bounded by count and age per channel and by a byte cap across all channels.
// Time is passed in (milliseconds); epochs come from the caller. When a durable store sits
// behind it (`durable: true`), entries pushed out by the byte cap stay readable from the store,
// so only count and age move a channel's floor; without one, the byte cap moves it too.

/** Bounds on history. Count and age apply per channel (in memory and in the store alike). */
export interface HistoryLimits {
  /** Publications kept per channel. */
  readonly maxCount: number;
  /** How long a publication is kept, in milliseconds. */
  readonly maxAgeMs: number;
  /** Estimated bytes of publications held in memory, across all channels. */
  readonly maxBytes: number;
}

/** Defaults: 1000 publications per channel, one hour, 64 MiB in memory. */
export const DEFAULT_HISTORY_LIMITS: HistoryLimits = {
  maxCount: 1000,
  maxAgeMs: 60 * 60 * 1000,
  maxBytes: 64 * 1024 * 1024,
};

/** Memory counted per entry besides its data and channel name (object, array slots). */
export const ENTRY_OVERHEAD_BYTES = 64;

/** One publication: `data` is JSON text; `offset` counts from 1 within the channel's epoch. */
export interface Publication {
  readonly channel: string;
  readonly offset: number;
  readonly epoch: string;
  /** When it was published, in the caller's milliseconds. */
  readonly time: number;
  readonly data: string;
}

/** Where a channel stands: its epoch, the offset of its last publication (0: none yet), and
 * the lowest offset that may still be read (top + 1 when nothing is). */
export interface ChannelView {
  readonly epoch: string;
  readonly top: number;
  readonly floor: number;
}

/** Something to publish: a channel and the JSON text of its data. */
export interface PublishItem {
  readonly channel: string;
  readonly data: string;
}

interface Entry {
  readonly pub: Publication;
  readonly bytes: number;
  live: boolean;
}

interface ChannelState {
  epoch: string;
  top: number;
  floor: number;
  entries: Entry[];
  start: number;
}

/** Compact an array once this many leading slots are dead and they are over half of it. */
const COMPACT_AFTER = 64;

function entryBytes(pub: Publication): number {
  return pub.data.length + pub.channel.length + ENTRY_OVERHEAD_BYTES;
}

/** The history of every channel, as held in memory. */
export class History {
  readonly #limits: HistoryLimits;
  #durable: boolean;
  #bootEpoch: string;
  readonly #channels = new Map<string, ChannelState>();
  /** Every live entry in order of commit (so in time order), plus dead ones not yet skipped. */
  #queue: Entry[] = [];
  #queueStart = 0;
  #dead = 0;
  #bytes = 0;
  #count = 0;

  constructor(
    options: { readonly epoch: string; readonly durable: boolean; readonly limits?: HistoryLimits },
  ) {
    this.#bootEpoch = options.epoch;
    this.#durable = options.durable;
    this.#limits = options.limits ?? DEFAULT_HISTORY_LIMITS;
  }

  get limits(): HistoryLimits {
    return this.#limits;
  }

  /** Estimated bytes held in memory. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Publications held in memory. */
  get size(): number {
    return this.#count;
  }

  /** The epoch a channel gets at its first publication in this run. */
  get bootEpoch(): string {
    return this.#bootEpoch;
  }

  /** Restores a channel's epoch and top from a store, before anything is published. */
  seed(channel: string, head: { readonly epoch: string; readonly top: number }): void {
    this.#channels.set(channel, {
      epoch: head.epoch,
      top: head.top,
      floor: Math.max(1, head.top - this.#limits.maxCount + 1),
      entries: [],
      start: 0,
    });
  }

  /** Where `channel` stands; a channel never published to is at offset 0 of the boot epoch. */
  view(channel: string): ChannelView {
    const state = this.#channels.get(channel);
    if (state === undefined) return { epoch: this.#bootEpoch, top: 0, floor: 1 };
    return { epoch: state.epoch, top: state.top, floor: state.floor };
  }

  /** Assigns offsets to a batch without changing anything; pass the result to `commit`. */
  prepare(items: readonly PublishItem[], now: number): Publication[] {
    const tops = new Map<string, number>();
    return items.map(({ channel, data }) => {
      const state = this.#channels.get(channel);
      const offset = (tops.get(channel) ?? state?.top ?? 0) + 1;
      tops.set(channel, offset);
      return { channel, offset, epoch: state?.epoch ?? this.#bootEpoch, time: now, data };
    });
  }

  /** Adds prepared publications (once they are durable, when a store is used), then trims. */
  commit(pubs: readonly Publication[]): void {
    for (const pub of pubs) {
      let state = this.#channels.get(pub.channel);
      if (state === undefined) {
        state = { epoch: pub.epoch, top: 0, floor: 1, entries: [], start: 0 };
        this.#channels.set(pub.channel, state);
      }
      if (pub.offset !== state.top + 1 || pub.epoch !== state.epoch) {
        throw new Error(`History.commit: ${pub.channel}@${pub.offset} was not prepared`);
      }
      const entry: Entry = { pub, bytes: entryBytes(pub), live: true };
      state.top = pub.offset;
      state.entries.push(entry);
      this.#queue.push(entry);
      this.#bytes += entry.bytes;
      this.#count++;
      const live = state.entries.length - state.start;
      if (live > this.#limits.maxCount) this.#evictOldest(state, true);
      state.floor = Math.max(state.floor, state.top - this.#limits.maxCount + 1);
    }
    while (this.#bytes > this.#limits.maxBytes) this.#evictHead(!this.#durable);
  }

  /** Drops publications older than `maxAgeMs` before `now`. */
  trim(now: number): void {
    const cutoff = now - this.#limits.maxAgeMs;
    for (;;) {
      this.#skipDead();
      const head = this.#queue[this.#queueStart];
      if (head === undefined || head.pub.time >= cutoff) return;
      this.#evictHead(true);
    }
  }

  /**
   * The publications of `channel` with offsets in [from, to] held in memory and not expired at
   * `now`, oldest first, and the part of the range older than memory (to read from a store), or
   * null when memory covers the start. The arrays returned are fresh; the entries are shared.
   */
  read(
    channel: string,
    range: { readonly from: number; readonly to: number; readonly now: number },
  ): { memory: Publication[]; before: { from: number; to: number } | null } {
    const state = this.#channels.get(channel);
    const memory: Publication[] = [];
    if (state === undefined) return { memory, before: null };
    const first = state.start < state.entries.length
      ? state.entries[state.start].pub.offset
      : state.top + 1;
    const cutoff = range.now - this.#limits.maxAgeMs;
    for (let o = Math.max(range.from, first); o <= range.to && o <= state.top; o++) {
      const pub = state.entries[state.start + (o - first)].pub;
      if (pub.time >= cutoff) memory.push(pub);
    }
    const before = range.from < first
      ? { from: range.from, to: Math.min(range.to, first - 1) }
      : null;
    return { memory, before };
  }

  /**
   * History was lost (the store failed, or a reboot may have lost its last writes): every
   * channel moves to `epoch`, keeps its offsets growing, and drops what memory held. Pass
   * `durable: false` when no store backs memory from now on.
   */
  renewEpoch(epoch: string, options: { readonly durable?: boolean } = {}): void {
    this.#bootEpoch = epoch;
    this.#durable = options.durable ?? this.#durable;
    for (const state of this.#channels.values()) {
      state.epoch = epoch;
      state.floor = state.top + 1;
      for (let i = state.start; i < state.entries.length; i++) state.entries[i].live = false;
      state.entries = [];
      state.start = 0;
    }
    this.#queue = [];
    this.#queueStart = 0;
    this.#dead = 0;
    this.#bytes = 0;
    this.#count = 0;
  }

  #skipDead(): void {
    while (this.#queueStart < this.#queue.length && !this.#queue[this.#queueStart].live) {
      this.#queueStart++;
      this.#dead--;
    }
    const waste = this.#queueStart + this.#dead;
    if (waste > COMPACT_AFTER && waste * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueStart).filter((e) => e.live);
      this.#queueStart = 0;
      this.#dead = 0;
    }
  }

  /** Evicts the oldest entry across channels; `lost` says whether it can no longer be read. */
  #evictHead(lost: boolean): void {
    this.#skipDead();
    const head = this.#queue[this.#queueStart];
    if (head === undefined) return;
    this.#evictOldest(this.#channels.get(head.pub.channel)!, lost);
  }

  /** Evicts a channel's oldest entry in memory (which is also its oldest in the queue). */
  #evictOldest(state: ChannelState, lost: boolean): void {
    const entry = state.entries[state.start++];
    entry.live = false;
    this.#dead++;
    this.#bytes -= entry.bytes;
    this.#count--;
    if (lost) state.floor = Math.max(state.floor, entry.pub.offset + 1);
    if (state.start > COMPACT_AFTER && state.start * 2 > state.entries.length) {
      state.entries = state.entries.slice(state.start);
      state.start = 0;
    }
  }
}
