// Micro-benchmarks of permessage-deflate without context takeover (`deno bench
// bench/deflate_bench.ts`): compressing JSON messages of 87 B, 1 KiB, 4 KiB and 64 KiB at
// levels 1, 3 and 6, and inflating them. The compressed sizes are printed before the runs;
// they and the timings chose DEFAULT_COMPRESSION_LEVEL and DEFAULT_COMPRESSION_THRESHOLD.

import { compressMessage, inflateMessage } from "../lib/protocol/deflate.ts";

/** A deterministic stream of pseudo-random numbers, so every run compresses the same bytes. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS = ["price", "update", "order", "filled", "cancelled", "EURUSD", "BTC", "news", "alert"];

/** A JSON line like a push payload: an array of events with ids, numbers, words and times. */
function jsonMessage(size: number): Uint8Array {
  const rand = lcg(size);
  const events: unknown[] = [];
  let text = "";
  for (let i = 0; text.length < size; i++) {
    events.push({
      id: 100000 + Math.floor(rand() * 900000),
      type: WORDS[Math.floor(rand() * WORDS.length)],
      channel: `user:${Math.floor(rand() * 10000)}`,
      value: Math.round(rand() * 1e6) / 100,
      at: `2026-12-02T13:${String(i % 60).padStart(2, "0")}:${
        String(Math.floor(rand() * 60)).padStart(2, "0")
      }.${Math.floor(rand() * 1000)}Z`,
    });
    text = JSON.stringify({ channel: "news", seq: i, data: events });
  }
  return new TextEncoder().encode(text.slice(0, size - 1) + "}");
}

const SIZES: [string, number][] = [["87 B", 87], ["1 KiB", 1024], ["4 KiB", 4096], [
  "64 KiB",
  65536,
]];
const LEVELS = [1, 3, 6];

for (const [label, size] of SIZES) {
  const payload = jsonMessage(size);
  const ratios = LEVELS.map((level) => {
    const ratio = compressMessage(payload, { level }).length / payload.length;
    return `level ${level}: ${(ratio * 100).toFixed(1)}%`;
  });
  console.log(`${label} JSON compresses to ${ratios.join(", ")} of its size`);
  for (const level of LEVELS) {
    Deno.bench({
      name: `compress ${label} JSON at level ${level}`,
      group: `compress ${label}`,
      baseline: level === 1,
      fn: () => {
        compressMessage(payload, { level });
      },
    });
  }
  const compressed = compressMessage(payload, { level: 1 });
  Deno.bench({
    name: `inflate ${label} JSON`,
    group: "inflate",
    fn: () => {
      inflateMessage(compressed, { maxMessageSize: 1 << 24 });
    },
  });
}

const zeros = compressMessage(new Uint8Array(100 * 1024 * 1024));
console.log(`100 MiB of zeros compress to ${zeros.length} bytes`);
Deno.bench({
  name: "inflate a 100 MiB zip bomb with a 1 MiB limit (stops at the limit)",
  group: "inflate",
  n: 20,
  fn: () => {
    inflateMessage(zeros, { maxMessageSize: 1 << 20 });
  },
});
