// Measures the cost of history writes per FIFO batch: ChannelLog.publish (offsets, one SQLite
// transaction, the in-memory ring) for batches of 1, 100 and 1000 publications of 100 B on 10
// channels, with synchronous=NORMAL (survives kill -9) and FULL (also a power loss), on a state
// directory in bench/out (a real disk, not tmpfs). Prints the median and p99 per batch.
//
//   deno run --allow-read --allow-write bench/history_store_bench.ts [--dir DIR]

import { parseArgs } from "node:util";
import { ChannelLog } from "../lib/store/channel_log.ts";
import type { Synchronous } from "../lib/store/history_store.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dir: { type: "string", default: new URL("out/history-bench", import.meta.url).pathname },
  },
});
const DATA = JSON.stringify({ title: "x".repeat(80), n: 12345 });
const CHANNELS = 10;
/** Roughly one second of work per case, at least 20 batches. */
const TARGET_PUBLICATIONS = 20_000;
const MIN_BATCHES = 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

console.log(`history writes per FIFO batch (${DATA.length} B data, ${CHANNELS} channels)`);
console.log("synchronous  batch   batches   median/batch   p99/batch   per publication   pubs/s");
for (const synchronous of ["normal", "full"] as Synchronous[]) {
  for (const size of [1, 100, 1000]) {
    await Deno.remove(values.dir, { recursive: true }).catch(() => {});
    const { log, warning } = ChannelLog.open({ stateDir: values.dir, synchronous });
    if (warning !== null) throw new Error(warning);
    const items = Array.from(
      { length: size },
      (_, i) => ({ channel: `c${i % CHANNELS}`, data: DATA }),
    );
    const batches = Math.max(MIN_BATCHES, Math.min(2000, Math.ceil(TARGET_PUBLICATIONS / size)));
    const times: number[] = [];
    for (let b = 0; b < batches; b++) {
      const t0 = performance.now();
      log.publish(items, Date.now());
      times.push(performance.now() - t0);
    }
    log.close();
    times.sort((a, b) => a - b);
    const median = percentile(times, 0.5);
    const total = times.reduce((a, b) => a + b, 0);
    console.log(
      [
        synchronous.padEnd(11),
        String(size).padStart(5),
        String(batches).padStart(9),
        `${median.toFixed(3)} ms`.padStart(14),
        `${percentile(times, 0.99).toFixed(3)} ms`.padStart(11),
        `${((median / size) * 1000).toFixed(1)} µs`.padStart(17),
        String(Math.round((batches * size) / (total / 1000))).padStart(8),
      ].join("  "),
    );
  }
}
await Deno.remove(values.dir, { recursive: true }).catch(() => {});
