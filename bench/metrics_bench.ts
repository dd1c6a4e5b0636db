// Micro-benchmarks of what counting costs on the hot path (`deno bench bench/metrics_bench.ts`):
// the plain PushStats fields and PlainHistogram the server bumps, against prom-client's own
// Counter and Histogram, with and without a label, as the alternative design would call them.

import { Counter, Histogram, Registry } from "prom-client";
import { PlainHistogram, PushStats } from "../lib/metrics/stats.ts";

const stats = new PushStats();
const registry = new Registry();
const counter = new Counter({ name: "b_total", help: "b", registers: [registry] });
const labelled = new Counter({
  name: "bl_total",
  help: "b",
  labelNames: ["event"],
  registers: [registry],
});
const child = labelled.labels("text");
const histogram = new Histogram({
  name: "bh_seconds",
  help: "b",
  labelNames: ["event"],
  registers: [registry],
});
const histogramChild = histogram.labels("text");
const plain = stats.handlers.text.duration;
const lag = new PlainHistogram([0.001, 0.01, 0.1]);

Deno.bench("count one message: PushStats fields (messagesIn++, bytesIn += n)", {
  group: "counter",
  baseline: true,
}, () => {
  stats.messagesIn++;
  stats.bytesIn += 125;
});

Deno.bench("count one message: prom-client Counter.inc() x2, no labels", {
  group: "counter",
}, () => {
  counter.inc();
  counter.inc(125);
});

Deno.bench("count one message: prom-client pre-bound child labels('text').inc()", {
  group: "counter",
}, () => {
  child.inc();
});

Deno.bench("observe a handler duration: PlainHistogram (16 buckets)", {
  group: "histogram",
  baseline: true,
}, () => {
  plain.observe(0.0003);
});

Deno.bench("observe a handler duration: prom-client pre-bound Histogram child", {
  group: "histogram",
}, () => {
  histogramChild.observe(0.0003);
});

Deno.bench("observe: PlainHistogram (3 buckets)", { group: "histogram" }, () => {
  lag.observe(0.005);
});
