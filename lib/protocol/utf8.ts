// Owns incremental UTF-8 validation (RFC 3629 / Unicode Table 3-7), fed piece by piece, and the
// UTF-8 length of a string without encoding it.

const CONT_LO = 0x80;
const CONT_HI = 0xbf;

/**
 * Validates UTF-8 across any number of pieces and fails at the first byte that
 * cannot start or continue a well-formed sequence, without waiting for the end.
 */
export class Utf8Validator {
  /** Continuation bytes still expected for the current sequence. */
  #need = 0;
  /** Allowed range of the next continuation byte (narrowed after E0, ED, F0, F4). */
  #lo = CONT_LO;
  #hi = CONT_HI;
  #failed = false;

  /** Feeds `bytes`; returns false as soon as an invalid byte is seen (and ever after). */
  push(bytes: Uint8Array): boolean {
    if (this.#failed) return false;
    let need = this.#need, lo = this.#lo, hi = this.#hi;
    const n = bytes.length;
    for (let i = 0; i < n; i++) {
      const b = bytes[i];
      if (need === 0) {
        if (b < 0x80) continue;
        if (b >= 0xc2 && b <= 0xdf) {
          need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) lo = 0xa0;
          else if (b === 0xed) hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) lo = 0x90;
          else if (b === 0xf4) hi = 0x8f;
        } else {
          return this.#fail();
        }
      } else {
        if (b < lo || b > hi) return this.#fail();
        lo = CONT_LO;
        hi = CONT_HI;
        need--;
      }
    }
    this.#need = need;
    this.#lo = lo;
    this.#hi = hi;
    return true;
  }

  /** Whether everything pushed so far ends on a character boundary (and nothing failed). */
  get complete(): boolean {
    return !this.#failed && this.#need === 0;
  }

  /** Starts over for a new message. */
  reset(): void {
    this.#need = 0;
    this.#lo = CONT_LO;
    this.#hi = CONT_HI;
    this.#failed = false;
  }

  #fail(): false {
    this.#failed = true;
    return false;
  }
}

/** Whether `bytes` is complete, well-formed UTF-8. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  // Most text is ASCII: its prefix is scanned without a validator.
  const n = bytes.length;
  let i = 0;
  while (i < n && bytes[i] < 0x80) i++;
  if (i === n) return true;
  const v = new Utf8Validator();
  return v.push(bytes.subarray(i)) && v.complete;
}

/** Below this code unit a character takes 1 UTF-8 byte; below the next, 2 (RFC 3629 §3). */
const ONE_BYTE_LIMIT = 0x80;
const TWO_BYTE_LIMIT = 0x800;
const HIGH_SURROGATE_FIRST = 0xd800;
const HIGH_SURROGATE_LAST = 0xdbff;
const LOW_SURROGATE_FIRST = 0xdc00;
const LOW_SURROGATE_LAST = 0xdfff;

/**
 * The bytes `new TextEncoder().encode(text)` would return, counted without encoding: a surrogate
 * pair is 4 bytes, and a lone surrogate becomes U+FFFD, 3 bytes.
 */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < ONE_BYTE_LIMIT) bytes += 1;
    else if (c < TWO_BYTE_LIMIT) bytes += 2;
    else if (c >= HIGH_SURROGATE_FIRST && c <= HIGH_SURROGATE_LAST && isLowSurrogate(text, i + 1)) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(text: string, at: number): boolean {
  const c = text.charCodeAt(at); // NaN past the end: false.
  return c >= LOW_SURROGATE_FIRST && c <= LOW_SURROGATE_LAST;
}
