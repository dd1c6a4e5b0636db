// Owns feeding one input to an incremental parser in every way STYLE.md rule 11 asks for:
// whole, one byte at a time, split in two at every point, and followed by trailing data.

import { AssertionError } from "node:assert/strict";
import { inspect, isDeepStrictEqual } from "node:util";
import { concatBytes } from "../../lib/protocol/bytes.ts";

/** Inputs up to this size are split in two at every point; larger ones at sampled points. */
export const SPLIT_EVERY_POINT_LIMIT = 1024;

/** One way to cut an input into chunks. */
export interface Feeding {
  readonly name: string;
  readonly chunks: Uint8Array[];
}

const LARGE_CHUNK_SIZES = [7, 1000, 1024, 4096, 16 * 1024 + 1, 65536];
const EDGE = 64;

/**
 * The ways to cut `input`: whole, one byte at a time, and in two at every point (for inputs
 * over 1 KiB: at every point within 64 bytes of either end, and in fixed-size chunks).
 * Every chunk is a fresh copy, so a parser may modify it (the codec unmasks in place).
 */
export function feedings(input: Uint8Array): Feeding[] {
  const out: Feeding[] = [{ name: "whole", chunks: [input.slice()] }];
  out.push({
    name: "one byte at a time",
    chunks: Array.from({ length: input.length }, (_, i) => input.slice(i, i + 1)),
  });
  const n = input.length;
  const points: number[] = [];
  for (let i = 1; i < n; i++) {
    if (n <= SPLIT_EVERY_POINT_LIMIT || i <= EDGE || i >= n - EDGE) points.push(i);
  }
  for (const i of points) {
    out.push({ name: `split at ${i}`, chunks: [input.slice(0, i), input.slice(i)] });
  }
  if (n > SPLIT_EVERY_POINT_LIMIT) {
    for (const size of LARGE_CHUNK_SIZES) {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < n; i += size) chunks.push(input.slice(i, i + size));
      out.push({ name: `chunks of ${size}`, chunks });
    }
  }
  return out;
}

/** What the trailing-data run appends, and what its result must be. */
export interface TrailingCheck<T> {
  /** Bytes appended right after the input, in the same chunk as its last byte. */
  readonly trailing: Uint8Array;
  /** Checks the trailing run's result against the whole-input result. */
  readonly check: (withTrailing: T, whole: T) => void;
}

/**
 * Runs `run` on every feeding of `input`, asserts that each result deep-equals the result for
 * the whole input, then runs once with trailing data (as one chunk, and one byte at a time)
 * and lets `trailing.check` judge it. Returns the whole-input result for the test's asserts.
 */
export function feedAll<T>(
  input: Uint8Array,
  run: (chunks: Uint8Array[]) => T,
  trailing: TrailingCheck<T>,
): T {
  const [whole, ...rest] = feedings(input);
  const expected = run(whole.chunks);
  for (const feeding of rest) {
    assertSame(run(feeding.chunks), expected, `fed ${feeding.name}`);
  }
  // feedings() copies, so a parser that modifies its input (the codec unmasks in place)
  // sees pristine bytes in each run.
  const [joined, joinedByByte] = feedings(concat([input, trailing.trailing]));
  trailing.check(run(joined.chunks), expected);
  trailing.check(run(joinedByByte.chunks), expected);
  return expected;
}

/**
 * Concatenates byte arrays into a new one (a copy even of a single part, since the codec
 * unmasks its input in place), with lib's one joining function. The test suite's one `concat`.
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0].slice();
  let total = 0;
  for (const p of parts) total += p.length;
  return concatBytes(parts, total);
}

/** Bytes of an ASCII/UTF-8 string. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/**
 * Like assert.deepStrictEqual, but a mismatch is reported in a few lines: node's diff of two
 * 64 KiB arrays takes minutes and gigabytes, which turns a failing test into a hung one.
 */
export function assertSame<T>(actual: T, expected: T, message = "values differ"): void {
  if (isDeepStrictEqual(actual, expected)) return;
  const show = (v: unknown) =>
    inspect(v, { depth: 4, maxArrayLength: 24, maxStringLength: 200, breakLength: Infinity });
  throw new AssertionError({
    message: `${message}\n  actual:   ${show(actual)}\n  expected: ${show(expected)}`,
  });
}
