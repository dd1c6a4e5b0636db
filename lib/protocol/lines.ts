// Owns splitting a byte stream into UTF-8 lines with a size limit (the FIFO's framing).

import { concatBytes } from "./bytes.ts";

/** One line, or why a line was dropped. */
export type LineResult = { readonly line: string } | { readonly error: string };

const LF = 0x0a;
const CR = 0x0d;
// Text is data: a leading U+FEFF is part of the line, and the default decoder would drop it.
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Splits bytes on "\n", removes one trailing "\r", skips empty lines, and drops lines that
 * are longer than `maxLineBytes` or not valid UTF-8, reporting each as an error result.
 */
export class LineSplitter {
  readonly #max: number;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #overflow = false;
  #heldEndsInCr = false;

  constructor(maxLineBytes: number) {
    this.#max = maxLineBytes;
  }

  /** Bytes of an unfinished line held until its newline (or `end()`) comes. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Feeds bytes; returns the lines completed by them. `chunk` is not kept. */
  push(chunk: Uint8Array): LineResult[] {
    const out: LineResult[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(LF); nl >= 0; nl = chunk.indexOf(LF, start)) {
      this.#finish(chunk.subarray(start, nl), out);
      start = nl + 1;
    }
    if (start < chunk.length) this.#hold(chunk.subarray(start));
    return out;
  }

  /** The writer closed: a final line without a newline is still a line. */
  end(): LineResult[] {
    const out: LineResult[] = [];
    if (this.#heldBytes > 0 || this.#overflow) this.#finish(new Uint8Array(0), out);
    return out;
  }

  #hold(part: Uint8Array): void {
    // An overflowing line is still counted (for its error) and its last byte remembered (a
    // CR there belongs to the line end), but none of it is kept.
    this.#heldBytes += part.length;
    this.#heldEndsInCr = part[part.length - 1] === CR;
    if (this.#overflow) return;
    if (this.#heldBytes > this.#max + 1) {
      this.#overflow = true;
      this.#held = [];
    } else {
      this.#held.push(part.slice());
    }
  }

  #finish(tail: Uint8Array, out: LineResult[]): void {
    let bytes = tail;
    const total = this.#heldBytes + tail.length;
    if (this.#held.length > 0 && !this.#overflow) bytes = concatBytes([...this.#held, tail], total);
    const overflow = this.#overflow;
    const endsInCr = tail.length > 0 ? tail[tail.length - 1] === CR : this.#heldEndsInCr;
    this.#held = [];
    this.#heldBytes = 0;
    this.#overflow = false;
    this.#heldEndsInCr = false;
    const length = total > 0 && endsInCr ? total - 1 : total;
    if (overflow || length > this.#max) {
      out.push({ error: `line of ${length} bytes is over the limit of ${this.#max}; dropped` });
      return;
    }
    if (length === 0) return;
    try {
      out.push({ line: strict.decode(bytes.subarray(0, length)) });
    } catch {
      out.push({ error: `line of ${length} bytes is not valid UTF-8; dropped` });
    }
  }
}
