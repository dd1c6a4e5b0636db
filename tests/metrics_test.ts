// Tests lib/metrics: the exposition that /metrics serves, its names and values, promtool's
// verdict on it, and the event-loop lag sampler.

import assert from "node:assert/strict";
import { closeCodeLabel, createMetrics } from "../lib/metrics/metrics.ts";
import { PlainHistogram, PushStats } from "../lib/metrics/stats.ts";
import { startEventLoopMonitor } from "../lib/metrics/event_loop.ts";
import { metricFamilies, sampleValue } from "./support/metrics_text.ts";
import { promtoolCheck, toolFor } from "./support/tools.ts";

/** A registry with every kind of sample filled in, as a busy server would have it. */
function filledMetrics() {
  const stats = new PushStats();
  stats.connectionsAccepted = 12;
  stats.messagesIn = 7;
  stats.bytesIn = 700;
  stats.messagesOut = 40;
  stats.bytesOut = 4096;
  stats.fifoLinesRead = 10;
  stats.fifoBatches = 3;
  stats.slowConsumerCloses = 1;
  stats.publications = 5;
  stats.resumesRecovered = 2;
  stats.resumesNotRecovered = 1;
  stats.handshakes.add(101, 10);
  stats.handshakes.add(403, 2);
  stats.closes.add(1000, 4);
  stats.closes.add(4000);
  stats.closes.add(3999);
  stats.protocolFailures.add("unmasked_frame");
  stats.fifoDropped.add("too_long", 2);
  stats.limitRejections.add("max_connections");
  stats.handlers.text.calls = 7;
  stats.handlers.text.errors = 1;
  stats.handlers.text.duration.observe(0.0002);
  stats.handlers.text.duration.observe(0.03);
  stats.eventLoopLag.observe(0.004);
  const metrics = createMetrics(stats, {
    sources: {
      connectionsOpen: () => 9,
      bytesQueued: () => 1234,
      fifoOpen: () => true,
      channels: () => 3,
      subscriptions: () => 8,
      historyMessages: () => 50,
      historyBytes: () => 5000,
      historyDurable: () => true,
      redisUp: () => true,
    },
  });
  return { stats, metrics };
}

Deno.test("metrics: counters and gauges read the plain stats at scrape time", async () => {
  const { stats, metrics } = filledMetrics();
  let text = await metrics.scrape();
  assert.equal(sampleValue(text, "push_connections_open"), 9);
  assert.equal(sampleValue(text, "push_connections_accepted_total"), 12);
  assert.equal(sampleValue(text, "push_handshakes_total", { status: "101" }), 10);
  assert.equal(sampleValue(text, "push_handshakes_total", { status: "403" }), 2);
  assert.equal(sampleValue(text, "push_received_bytes_total"), 700);
  assert.equal(sampleValue(text, "push_sent_bytes_total"), 4096);
  assert.equal(sampleValue(text, "push_queued_bytes"), 1234);
  assert.equal(sampleValue(text, "push_fifo_lines_dropped_total", { reason: "too_long" }), 2);
  assert.equal(sampleValue(text, "push_slow_consumer_closes_total"), 1);
  assert.equal(sampleValue(text, "push_resumes_total", { recovered: "true" }), 2);
  assert.equal(sampleValue(text, "push_resumes_total", { recovered: "false" }), 1);
  assert.equal(sampleValue(text, "push_redis_up"), 1);
  assert.equal(sampleValue(text, "push_history_messages"), 50);
  assert.equal(sampleValue(text, "push_history_bytes"), 5000);
  assert.equal(sampleValue(text, "push_history_durable"), 1);
  stats.messagesIn += 3;
  stats.slowConsumerCloses++;
  stats.handshakes.add(503);
  text = await metrics.scrape();
  assert.equal(sampleValue(text, "push_messages_received_total"), 10, "moved by exactly 3");
  assert.equal(sampleValue(text, "push_slow_consumer_closes_total"), 2);
  assert.equal(sampleValue(text, "push_handshakes_total", { status: "503" }), 1);
  assert.equal(sampleValue(text, "push_handshakes_total", { status: "101" }), 10, "unchanged");
});

Deno.test('metrics: close codes the server does not know are counted as code="other"', async () => {
  assert.equal(closeCodeLabel(1000), "1000");
  assert.equal(closeCodeLabel(4001), "4001");
  assert.equal(closeCodeLabel(3999), "other");
  assert.equal(closeCodeLabel(4999), "other");
  const text = await filledMetrics().metrics.scrape();
  assert.equal(sampleValue(text, "push_closes_total", { code: "1000" }), 4);
  assert.equal(sampleValue(text, "push_closes_total", { code: "4000" }), 1);
  assert.equal(sampleValue(text, "push_closes_total", { code: "other" }), 1);
});

Deno.test("metrics: handler duration is a cumulative histogram per event", async () => {
  const text = await filledMetrics().metrics.scrape();
  const bucket = (le: string) =>
    sampleValue(text, "push_handler_duration_seconds_bucket", { event: "text", le });
  assert.equal(bucket("0.0001"), 0);
  assert.equal(bucket("0.00025"), 1);
  assert.equal(bucket("0.025"), 1);
  assert.equal(bucket("0.05"), 2);
  assert.equal(bucket("+Inf"), 2);
  assert.equal(sampleValue(text, "push_handler_duration_seconds_count", { event: "text" }), 2);
  const sum = sampleValue(text, "push_handler_duration_seconds_sum", { event: "text" })!;
  assert.ok(Math.abs(sum - 0.0302) < 1e-9, `sum ${sum}`);
  assert.equal(sampleValue(text, "push_handler_calls_total", { event: "text" }), 7);
  assert.equal(sampleValue(text, "push_handler_errors_total", { event: "text" }), 1);
  assert.equal(sampleValue(text, "push_event_loop_lag_seconds_count"), 1);
});

Deno.test("metrics: names follow the conventions (push_ prefix, _total counters, base units)", async () => {
  const text = await filledMetrics().metrics.scrape();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m;
    if (!name.startsWith("push_")) {
      assert.match(name, /^(process|nodejs)_/, `${name}: a process metric or push_*`);
      continue;
    }
    assert.equal(name.endsWith("_total"), type === "counter", `${name} (${type})`);
    assert.doesNotMatch(name, /_(ms|milliseconds|kb|mb|kib|mib)(_|$)/, `${name}: base units`);
  }
});

Deno.test("metrics: process metrics are present and the broken Deno event-loop ones are not", async () => {
  const text = await filledMetrics().metrics.scrape();
  const families = metricFamilies(text);
  for (
    const name of [
      "process_resident_memory_bytes",
      "process_cpu_seconds_total",
      "process_start_time_seconds",
      "process_open_fds",
    ]
  ) {
    assert.ok(families.has(name), name);
    assert.ok((sampleValue(text, name) ?? 0) > 0, `${name} has a positive value`);
  }
  assert.ok(![...families].some((n) => n.startsWith("nodejs_eventloop_lag")));
  assert.doesNotMatch(text, /\bNa[nN]\b/);
});

const promtool = toolFor("promtool", "promtool check metrics");

Deno.test({
  name: "promtool check metrics accepts the exposition of a filled registry",
  ignore: promtool === null,
  async fn() {
    const text = await filledMetrics().metrics.scrape();
    const { ok, said } = await promtoolCheck(promtool!, text);
    assert.ok(ok, `promtool: ${said}`);
    assert.equal(said.trim(), "");
  },
});

Deno.test({
  name: "promtool check metrics rejects a gauge named _total (the check can fail)",
  ignore: promtool === null,
  async fn() {
    const bad = "# HELP push_x_total x\n# TYPE push_x_total gauge\npush_x_total 1\n";
    assert.equal((await promtoolCheck(promtool!, bad)).ok, false);
  },
});

Deno.test("event-loop monitor records a stall as lag", async () => {
  const lag = new PlainHistogram([0.001, 0.05, 1]);
  const intervalMs = 10;
  const stop = startEventLoopMonitor(lag, { intervalMs });
  try {
    const until = performance.now() + 120;
    while (performance.now() < until) { /* block the event loop */ }
    // The overdue timer runs in the next turn of the loop that has a timer phase.
    await new Promise((resolve) => setTimeout(resolve, intervalMs * 3));
    assert.ok(lag.count >= 1);
    assert.ok(lag.counts[2] >= 1, `a lag of ~110 ms lands in (0.05, 1]: ${lag.counts}`);
  } finally {
    stop();
  }
});

Deno.test("handler stats: record counts the call, a failure, and the duration", () => {
  const stats = new PushStats();
  stats.handlers.fifo.record(0.002, false);
  stats.handlers.fifo.record(0.3, true);
  assert.equal(stats.handlers.fifo.calls, 2);
  assert.equal(stats.handlers.fifo.errors, 1);
  assert.equal(stats.handlers.fifo.duration.count, 2);
  assert.equal(stats.handlers.text.calls, 0, "each event has its own counters");
});

Deno.test("process metrics under the server's own permissions: real RSS, nothing that reads 0", async () => {
  // main.ts runs with --allow-net --allow-read --allow-env: Deno then refuses /proc/self.
  const script = `
    import { createMetrics } from "${new URL("../lib/metrics/metrics.ts", import.meta.url)}";
    import { PushStats } from "${new URL("../lib/metrics/stats.ts", import.meta.url)}";
    const m = createMetrics(new PushStats(), {
      sources: { connectionsOpen: () => 0, bytesQueued: () => 0 },
    });
    console.log(await m.scrape());`;
  // `deno eval` grants everything; `deno run` on a file takes the flags as given.
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      "--allow-net",
      "--allow-read",
      "--allow-env",
      file,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(file);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assert.ok((sampleValue(text, "process_resident_memory_bytes") ?? 0) > 1024 * 1024);
  assert.ok((sampleValue(text, "process_cpu_seconds_total") ?? 0) > 0);
  assert.ok((sampleValue(text, "process_start_time_seconds") ?? 0) > 1_600_000_000);
  assert.equal(sampleValue(text, "process_open_fds"), undefined, "left out, not reported as 0");
  assert.equal(sampleValue(text, "process_virtual_memory_bytes"), undefined);
});
