// Tests lib/admin/admin_server.ts and readiness.ts over real HTTP on 127.0.0.1 port 0:
// /metrics, /healthz, /readyz (and its FIFO check), /status.json, errors.

import assert from "node:assert/strict";
import { startAdminServer } from "../lib/admin/admin_server.ts";
import { fifoProblems, readableBy } from "../lib/admin/readiness.ts";
import { createLogger } from "../lib/api/log.ts";
import { createMetrics } from "../lib/metrics/metrics.ts";
import { PushStats } from "../lib/metrics/stats.ts";
import { sampleValue } from "./support/metrics_text.ts";
import { reportSkip } from "./support/tools.ts";

function setup(
  { readiness = () => [] as string[], warnings }: {
    readiness?: () => readonly string[];
    warnings?: () => readonly string[];
  } = {},
) {
  const stats = new PushStats();
  let open = 0;
  const metrics = createMetrics(stats, {
    sources: { connectionsOpen: () => open, bytesQueued: () => 512, fifoOpen: () => true },
    processMetrics: false,
  });
  const lines: string[] = [];
  const log = createLogger({ level: "info", format: "json", write: (l) => lines.push(l) });
  const started = startAdminServer({
    listen: "127.0.0.1:0",
    metrics,
    readiness,
    warnings,
    log,
    status: {
      mostQueued: () => [{ id: 4, remote: "10.0.0.4", queuedBytes: 512 }],
      fifo: () => ({ path: "/run/push.fifo", open: true }),
    },
  });
  if ("error" in started) throw new Error(started.error);
  return {
    admin: started,
    stats,
    lines,
    setOpen: (n: number) => open = n,
    url: (path: string) => `http://127.0.0.1:${started.addr.port}${path}`,
  };
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; body: string }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text() };
}

async function withAdmin(
  fn: (ctx: ReturnType<typeof setup>) => Promise<void>,
  options?: Parameters<typeof setup>[0],
): Promise<void> {
  const ctx = setup(options);
  try {
    await fn(ctx);
  } finally {
    await ctx.admin.close();
  }
}

Deno.test("admin: port 0 picks a free port and logs it; two listeners never collide", async () => {
  const a = setup();
  const b = setup();
  try {
    assert.notEqual(a.admin.addr.port, 0);
    assert.notEqual(a.admin.addr.port, b.admin.addr.port);
    const logged = JSON.parse(a.lines[0]);
    assert.equal(logged.port, a.admin.addr.port);
    assert.match(logged.msg, new RegExp(`http://127\\.0\\.0\\.1:${a.admin.addr.port}/`));
  } finally {
    await a.admin.close();
    await b.admin.close();
  }
});

Deno.test("admin: /healthz answers 200 ok while the process runs", async () => {
  await withAdmin(async ({ url }) => {
    assert.deepEqual(await get(url("/healthz")), { status: 200, body: "ok\n" });
  });
});

Deno.test("admin: /metrics serves the text format and follows the counters", async () => {
  await withAdmin(async ({ url, stats, setOpen }) => {
    const res = await fetch(url("/metrics"));
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.equal(sampleValue(await res.text(), "push_slow_consumer_closes_total"), 0);
    stats.slowConsumerCloses++;
    stats.handshakes.add(503);
    setOpen(3);
    const text = (await get(url("/metrics"))).body;
    assert.equal(sampleValue(text, "push_slow_consumer_closes_total"), 1);
    assert.equal(sampleValue(text, "push_handshakes_total", { status: "503" }), 1);
    assert.equal(sampleValue(text, "push_connections_open"), 3);
  });
});

Deno.test("admin: /readyz is 503 with one line per problem, 200 when there are none", async () => {
  let problems: string[] = ["FIFO /x is missing", "Redis\nunreachable"];
  await withAdmin(async ({ url }) => {
    assert.deepEqual(await get(url("/readyz")), {
      status: 503,
      body: "FIFO /x is missing\nRedis unreachable\n",
    });
    problems = [];
    assert.deepEqual(await get(url("/readyz")), { status: 200, body: "ready\n" });
  }, { readiness: () => problems });
});

Deno.test("admin: warnings follow /readyz's verdict as `warning: ` lines and never make it 503", async () => {
  let problems: string[] = [];
  const warnings = ["history kept in memory only:\nno grant"];
  await withAdmin(async ({ url }) => {
    assert.deepEqual(await get(url("/readyz")), {
      status: 200,
      body: "ready\nwarning: history kept in memory only: no grant\n",
    });
    problems = ["FIFO /x is missing"];
    assert.deepEqual(await get(url("/readyz")), {
      status: 503,
      body: "FIFO /x is missing\nwarning: history kept in memory only: no grant\n",
    });
    const status = JSON.parse((await get(url("/status.json"))).body);
    assert.deepEqual(status.problems, problems);
    assert.deepEqual(status.warnings, warnings);
  }, { readiness: () => problems, warnings: () => warnings });
});

Deno.test("admin: a warning source that throws is itself a warning: /readyz stays 200", async () => {
  await withAdmin(async ({ url }) => {
    assert.deepEqual(await get(url("/readyz")), {
      status: 200,
      body: "ready\nwarning: readiness warnings failed: no idea\n",
    });
  }, {
    warnings: () => {
      throw new Error("no idea");
    },
  });
});

Deno.test("admin: a readiness check that throws makes /readyz 503, not a crash", async () => {
  await withAdmin(async ({ url }) => {
    const res = await get(url("/readyz"));
    assert.equal(res.status, 503);
    assert.equal(res.body, "readiness check failed: disk on fire\n");
  }, {
    readiness: () => {
      throw new Error("disk on fire");
    },
  });
});

Deno.test("admin: /readyz turns unready when the FIFO is removed and ready when it is back", async () => {
  const dir = await Deno.makeTempDir();
  const fifo = `${dir}/push.fifo`;
  const mkfifo = () => new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
  assert.equal(mkfifo().code, 0);
  try {
    await withAdmin(async ({ url }) => {
      assert.equal((await get(url("/readyz"))).status, 200);
      await Deno.remove(fifo);
      assert.deepEqual(await get(url("/readyz")), {
        status: 503,
        body: `FIFO ${fifo} is missing\n`,
      });
      await Deno.writeTextFile(fifo, "a plain file");
      assert.equal((await get(url("/readyz"))).body, `FIFO ${fifo} is not a named pipe\n`);
      await Deno.remove(fifo);
      assert.equal(mkfifo().code, 0);
      assert.equal((await get(url("/readyz"))).status, 200);
      if (Deno.uid() === 0) {
        reportSkip("readyz on an unreadable FIFO over HTTP", "root reads any file");
        return;
      }
      await Deno.chmod(fifo, 0o200);
      assert.deepEqual(await get(url("/readyz")), {
        status: 503,
        body: `FIFO ${fifo} is not readable by this process\n`,
      });
      await Deno.chmod(fifo, 0o600);
      assert.equal((await get(url("/readyz"))).status, 200);
    }, { readiness: () => fifoProblems(fifo) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readiness: read permission follows owner, then group, then other bits; root reads all", () => {
  const file = { mode: 0o040, uid: 1000, gid: 100 };
  assert.equal(readableBy(file, { uid: 1000, gid: 100 }), false, "owner bits say no");
  assert.equal(readableBy(file, { uid: 1001, gid: 100 }), true, "group bits say yes");
  assert.equal(readableBy(file, { uid: 1001, gid: 101 }), false, "other bits say no");
  assert.equal(readableBy({ mode: 0, uid: 1000, gid: 100 }, { uid: 0, gid: 0 }), true);
  assert.equal(readableBy({ mode: 0o604, uid: 1, gid: 1 }, { uid: 2, gid: 2 }), true);
});

Deno.test("admin: /status.json carries the same numbers as /metrics", async () => {
  await withAdmin(async ({ url, stats, setOpen }) => {
    stats.messagesIn = 11;
    stats.messagesOut = 220;
    stats.fifoLinesRead = 20;
    stats.fifoDropped.add("too_long", 2);
    setOpen(5);
    const status = JSON.parse((await get(url("/status.json"))).body);
    const text = (await get(url("/metrics"))).body;
    for (const [name, value] of Object.entries(status.metrics)) {
      assert.equal(sampleValue(text, name), value, name);
    }
    assert.equal(status.metrics.push_connections_open, 5);
    assert.deepEqual(status.slowConsumers, [{ id: 4, remote: "10.0.0.4", queuedBytes: 512 }]);
    assert.deepEqual(status.fifo, { path: "/run/push.fifo", open: true, dropped: { too_long: 2 } });
    assert.deepEqual(status.problems, []);
    assert.deepEqual(status.warnings, []);
    assert.ok(status.history.length >= 2, "the first sample and now");
  });
});

Deno.test("admin: unknown paths get 404 and other methods 405", async () => {
  await withAdmin(async ({ url }) => {
    assert.equal((await get(url("/health"))).status, 404);
    const post = await fetch(url("/metrics"), { method: "POST", body: "x" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  });
});

Deno.test("admin: a bad address or a taken port is a one-line error value", () => {
  const metrics = createMetrics(new PushStats(), {
    sources: { connectionsOpen: () => 0, bytesQueued: () => 0 },
    processMetrics: false,
  });
  const log = createLogger({ level: "error", write: () => {} });
  const bad = startAdminServer({ listen: "nope", metrics, readiness: () => [], log });
  assert.deepEqual(bad, { error: "--admin-listen: 'nope' is not host:port" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const second = startAdminServer({
      listen: `127.0.0.1:${taken.addr.port}`,
      metrics,
      readiness: () => [],
      log,
    });
    assert.ok("error" in second);
    assert.match(second.error, /^cannot listen on 127\.0\.0\.1:\d+ for --admin-listen: /);
    assert.doesNotMatch(second.error, /\n/);
  } finally {
    taken.close();
  }
});
