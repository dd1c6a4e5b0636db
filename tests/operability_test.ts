// Tests lib/admin/operability.ts: options turn the admin listener and the limits on, refusals
// are counted in /metrics and logged at most once per interval.

import assert from "node:assert/strict";
import { LimitLog, Operability, RATE_LIMITED_CLOSE } from "../lib/admin/operability.ts";
import { createLogger } from "../lib/api/log.ts";
import { type Options, parseCommandLine } from "../lib/api/options.ts";
import { sampleValue } from "./support/metrics_text.ts";

function optionsOf(args: string[]): Options {
  const parsed = parseCommandLine(args, () => undefined);
  if (parsed.kind !== "run") throw new Error(JSON.stringify(parsed));
  return parsed.options;
}

async function start(args: string[]) {
  const lines: string[] = [];
  const log = createLogger({ level: "info", format: "json", write: (l) => lines.push(l) });
  const ops = await Operability.start(optionsOf(args), {
    log,
    sources: { connectionsOpen: () => 0, bytesQueued: () => 0 },
    readiness: () => [],
  });
  if ("error" in ops) throw new Error(ops.error);
  return { ops, lines };
}

Deno.test("operability: without --admin-listen there is no admin listener", async () => {
  const { ops, lines } = await start([]);
  try {
    assert.equal(ops.admin, null);
    assert.deepEqual(lines, []);
    assert.equal(ops.messageRate(0), null, "--message-rate is off by default");
    assert.equal(ops.admit("127.0.0.1", 0).ok, true);
  } finally {
    await ops.close();
  }
});

Deno.test("operability: the (N+1)th handshake is refused with 503, counted and logged", async () => {
  const { ops, lines } = await start(["--admin-listen", "127.0.0.1:0", "--max-connections", "2"]);
  try {
    assert.ok(ops.admin);
    assert.equal(ops.admit("10.0.0.1", 0).ok, true);
    assert.equal(ops.admit("10.0.0.2", 0).ok, true);
    const third = ops.admit("10.0.0.3", 0);
    assert.ok(!third.ok && third.status === 503);
    const url = `http://127.0.0.1:${ops.admin.addr.port}/metrics`;
    const text = await (await fetch(url)).text();
    assert.equal(sampleValue(text, "push_limit_rejections_total", { limit: "max_connections" }), 1);
    const warned = lines.map((l) => JSON.parse(l)).filter((r) => r.event === "limit");
    assert.equal(warned.length, 1);
    assert.match(warned[0].msg, /limit max_connections: Server is at its limit of 2 connections/);
    ops.release("10.0.0.1");
    assert.equal(ops.admit("10.0.0.3", 1).ok, true);
  } finally {
    await ops.close();
  }
});

Deno.test("operability: an IP over its cap is refused while another IP is served", async () => {
  const { ops } = await start(["--max-connections-per-ip", "1"]);
  try {
    assert.equal(ops.admit("10.0.0.1", 0).ok, true);
    const over = ops.admit("10.0.0.1", 0);
    assert.ok(!over.ok && over.status === 429 && over.reason === "per_ip_connections");
    assert.equal(ops.admit("10.0.0.2", 0).ok, true);
    assert.equal(ops.stats.limitRejections.get("per_ip_connections"), 1);
  } finally {
    await ops.close();
  }
});

Deno.test("operability: past --message-rate a connection gets 4001 and is counted", async () => {
  const { ops, lines } = await start(["--message-rate", "2", "--message-burst", "2"]);
  try {
    const rate = ops.messageRate(0)!;
    assert.deepEqual([rate.message(0), rate.message(0), rate.message(0)], [
      "accept",
      "accept",
      "close",
    ]);
    ops.rateLimited({ id: 5, remote: "10.0.0.5" }, 0);
    assert.equal(RATE_LIMITED_CLOSE.code, 4001);
    assert.equal(ops.stats.limitRejections.get("message_rate"), 1);
    assert.match(JSON.parse(lines[0]).msg, /connection 5 from 10\.0\.0\.5 sent over 2\/s/);
  } finally {
    await ops.close();
  }
});

Deno.test("limit log: one line per limit per interval, then the count of the ones held back", () => {
  const lines: string[] = [];
  const log = new LimitLog(createLogger({ level: "warn", write: (l) => lines.push(l) }), 1000);
  for (let t = 0; t < 1000; t += 10) log.hit("max_connections", { now: t, detail: "full" });
  log.hit("per_ip_connections", { now: 500, detail: "ip" });
  log.hit("max_connections", { now: 1000, detail: "full" });
  assert.deepEqual(lines, [
    "warn: limit max_connections: full event=limit limit=max_connections\n",
    "warn: limit per_ip_connections: ip event=limit limit=per_ip_connections\n",
    "warn: limit max_connections: full (and 99 more since the last line) event=limit limit=max_connections\n",
  ]);
});

Deno.test("operability: an admin address that cannot be bound is a one-line error", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const ops = await Operability.start(
      optionsOf(["--admin-listen", `127.0.0.1:${taken.addr.port}`]),
      {
        log: createLogger({ level: "error", write: () => {} }),
        sources: { connectionsOpen: () => 0, bytesQueued: () => 0 },
        readiness: () => [],
      },
    );
    assert.ok("error" in ops);
    assert.match(ops.error, /^cannot listen on 127\.0\.0\.1:\d+ for --admin-listen/);
  } finally {
    taken.close();
  }
});
