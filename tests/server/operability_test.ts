// Tests operability through the real server in-process: counters that move by the right amounts
// on real traffic, the history gauges following what history holds, promtool on the live
// /metrics, /readyz following the FIFO and flagging history kept in memory only, and the limits (max connections 503, per-IP cap 429 while another IP is
// served, message rate 4001).

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Handlers } from "../../lib/api/handlers.ts";
import { ENTRY_OVERHEAD_BYTES } from "../../lib/channels/history.ts";
import { HISTORY_FILE } from "../../lib/store/history_store.ts";
import { withInProcessServer } from "../support/in_process.ts";
import { clientFrame, parseClose, RawClient, upgradeRequest } from "../support/raw_client.ts";
import { promtoolCheck, toolFor } from "../support/tools.ts";
import { connectWs } from "../support/ws_client.ts";
import { PushV1Client } from "../support/push_v1.ts";

const inProcess = { sanitizeOps: false, sanitizeResources: false };
const promtool = toolFor("promtool", "promtool check metrics on the live /metrics");
const echo: Handlers = { text: (conn, text) => void conn.send(text) };

async function metrics(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return await res.text();
}

/** The value of one sample line, e.g. `push_handshakes_total{status="403"}`; 0 when absent. */
function sample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return 0;
}

async function writeLine(fifo: string, line: string): Promise<void> {
  const f = await Deno.open(fifo, { write: true });
  try {
    await f.write(new TextEncoder().encode(line));
  } finally {
    f.close();
  }
}

async function handshakeStatus(port: number, headers: Record<string, string> = {}) {
  const c = await RawClient.connect(port);
  try {
    await c.write(upgradeRequest({ headers }));
    return (await c.readResponse()).status;
  } finally {
    c.close();
  }
}

Deno.test({
  name:
    "counters move by the right amounts: a refused handshake, a dropped FIFO line, a slow consumer",
  ...inProcess,
  fn: () =>
    withInProcessServer({
      args: [
        "--admin-listen",
        "127.0.0.1:0",
        "--allowed-origin",
        "https://good.example",
        "--max-message-size",
        "64KiB",
        "--max-queue",
        "128KiB",
      ],
      handlers: echo,
    }, async ({ server, port, fifo, waitForLog }) => {
      const admin = server.adminAddress!.port;
      const before = await metrics(admin);
      assert.equal(
        await handshakeStatus(port, { Origin: "https://evil.example" }),
        403,
      );
      await writeLine(fifo, "x".repeat(70 * 1024) + "\nshort line\n");
      const slow = await RawClient.connect(port);
      await slow.write(upgradeRequest({ headers: { Origin: "https://good.example" } }));
      assert.equal((await slow.readResponse()).status, 101);
      const big = clientFrame({ opcode: 1, payload: "y".repeat(60 * 1024) });
      for (let i = 0; i < 20; i++) {
        try {
          await slow.write(big);
        } catch {
          break;
        }
      }
      await waitForLog(/closed as a slow consumer/);
      const after = await metrics(admin);
      const delta = (series: string) => sample(after, series) - sample(before, series);
      assert.equal(delta('push_handshakes_total{status="403"}'), 1);
      assert.equal(delta('push_fifo_lines_dropped_total{reason="too_long"}'), 1);
      assert.equal(delta("push_slow_consumer_closes_total"), 1);
      assert.equal(delta('push_protocol_failures_total{kind="slow-consumer"}'), 1);
      assert.ok(delta("push_fifo_lines_read_total") >= 1);
      slow.close();
    }),
});

/** What history holds for a publication of `data` (JSON text) on `channel`, as History counts it. */
function heldBytes(channel: string, data: string): number {
  return channel.length + data.length + ENTRY_OVERHEAD_BYTES;
}

Deno.test({
  name: "push_history_messages and _bytes report what history holds, after --history-size trims",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      { args: ["--admin-listen", "127.0.0.1:0", "--history-size", "3"] },
      async ({ server, port, fifo }) => {
        const admin = server.adminAddress!.port;
        const published = { news: [1, 2, 3, 4, 5], sport: [6, 7] };
        const client = await PushV1Client.open(port);
        try {
          for (const channel of Object.keys(published)) await client.subscribe(channel);
          const lines = Object.entries(published).flatMap(([channel, ns]) =>
            ns.map((n) => JSON.stringify({ channel, data: { n } }))
          );
          await writeLine(fifo, lines.join("\n") + "\n");
          // Written to history before it is sent: once the client has them all, history has.
          for (const _ of lines) assert.equal((await client.next()).type, "publication");
        } finally {
          await client.end();
        }
        const text = await metrics(admin);
        assert.equal(sample(text, "push_publications_total"), 7);
        // Each channel keeps its last 3: news 3, 4, 5 and sport 6, 7.
        const held = [["news", [3, 4, 5]], ["sport", [6, 7]]] as const;
        const bytes = held.flatMap(([channel, ns]) =>
          ns.map((n) => heldBytes(channel, JSON.stringify({ n })))
        ).reduce((a, b) => a + b);
        assert.equal(sample(text, "push_history_messages"), 5);
        assert.equal(sample(text, "push_history_bytes"), bytes);
        assert.equal(sample(text, "push_history_durable"), 1);
      },
    ),
});

Deno.test({
  name: "promtool check metrics accepts the live /metrics of a running server",
  ignore: promtool === null,
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--admin-listen", "127.0.0.1:0"] }, async ({ server }) => {
      const text = await metrics(server.adminAddress!.port);
      const { ok, said } = await promtoolCheck(promtool!, text);
      assert.ok(ok, said);
    }),
});

Deno.test({
  name: "/readyz turns unready when the FIFO is removed, and ready again when it is back",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--admin-listen", "127.0.0.1:0"] }, async ({ server, fifo }) => {
      const url = `http://127.0.0.1:${server.adminAddress!.port}/readyz`;
      let res = await fetch(url);
      await res.body?.cancel();
      assert.equal(res.status, 200);
      await Deno.remove(fifo);
      res = await fetch(url);
      const body = await res.text();
      assert.equal(res.status, 503);
      assert.match(body, /FIFO/);
      await new Deno.Command("mkfifo", { args: [fifo] }).output();
      // Ready again once the reader has reopened it (it retries with a backoff).
      const deadline = Date.now() + 10_000;
      do {
        res = await fetch(url);
        await res.body?.cancel();
        if (res.status === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      } while (Date.now() < deadline);
      assert.equal(res.status, 200);
      // The public port serves none of the admin paths.
      assert.equal((await fetch(`http://127.0.0.1:${server.adminAddress!.port}/healthz`)).ok, true);
    }),
});

async function readyz(adminPort: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function statusWarnings(adminPort: number): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/status.json`);
  return (await res.json()).warnings;
}

const MEMORY_ONLY_WARNING = /^warning: history kept in memory only: /m;

Deno.test({
  name: "/readyz: history written to disk is ready with no warning",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--admin-listen", "127.0.0.1:0"] }, async ({ server }) => {
      assert.equal(server.durableHistory, true);
      assert.deepEqual(await readyz(server.adminAddress!.port), { status: 200, body: "ready\n" });
      assert.deepEqual(await statusWarnings(server.adminAddress!.port), []);
    }),
});

Deno.test({
  name: "/readyz: a --state-dir that cannot be written is ready (200) with a memory-only warning",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      // Below the FIFO, which is no directory: mkdir fails, as it does without the grant.
      { args: ["--admin-listen", "127.0.0.1:0"], stateDir: (dir) => `${dir}/push.fifo/state` },
      async ({ server, lines }) => {
        const admin = server.adminAddress!.port;
        assert.equal(server.durableHistory, false);
        const { status, body } = await readyz(admin);
        assert.equal(status, 200);
        const [verdict, warning, ...rest] = body.split("\n");
        assert.equal(verdict, "ready");
        assert.match(warning, MEMORY_ONLY_WARNING);
        assert.match(warning, /push\.fifo\/state/, "names the directory");
        assert.deepEqual(rest, [""], "one warning line");
        assert.deepEqual(await statusWarnings(admin), [warning.replace("warning: ", "")]);
        const logged = lines.filter((l) => l.includes("history kept in memory only"));
        assert.deepEqual(logged, [`warn: ${warning.replace("warning: ", "")}`], "as logged");
        assert.equal(sample(await metrics(admin), "push_history_durable"), 0);
      },
    ),
});

Deno.test({
  name: "/readyz: a history write that fails at run time raises the memory-only warning",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--admin-listen", "127.0.0.1:0"] }, async ({ server }) => {
      const admin = server.adminAddress!.port;
      server.publish("news", 1);
      assert.equal((await readyz(admin)).body, "ready\n");
      // Another connection holds SQLite's write lock: the next commit times out and fails.
      const other = new DatabaseSync(`${server.options.stateDir}/${HISTORY_FILE}`);
      other.exec("BEGIN IMMEDIATE");
      try {
        server.publish("news", 2);
      } finally {
        other.exec("ROLLBACK");
        other.close();
      }
      assert.equal(server.durableHistory, false);
      const { status, body } = await readyz(admin);
      assert.equal(status, 200);
      assert.match(body, /^ready\nwarning: history kept in memory only: history write failed: /);
      assert.match(body, /locked/);
      // What was on disk is out of reach: memory holds only what came after the failure.
      const text = await metrics(admin);
      assert.equal(sample(text, "push_history_durable"), 0);
      assert.equal(sample(text, "push_history_messages"), 1);
      assert.equal(sample(text, "push_history_bytes"), heldBytes("news", "2"));
    }),
});

Deno.test({
  name: "the (N+1)th connection gets 503 under --max-connections",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--max-connections", "3"] }, async ({ port }) => {
      const held = await Promise.all([1, 2, 3].map(() => RawClient.open(port)));
      try {
        assert.equal(await handshakeStatus(port), 503);
        held.pop()!.close();
        // The slot comes back once the server has seen that connection go.
        let status = 503;
        for (let i = 0; i < 50 && status !== 101; i++) {
          await new Promise((r) => setTimeout(r, 20));
          status = await handshakeStatus(port);
        }
        assert.equal(status, 101);
      } finally {
        for (const c of held) c.close();
      }
    }),
});

Deno.test({
  name: "an address over --max-connections-per-ip is refused with 429 while another is served",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--max-connections-per-ip", "2"] }, async ({ port }) => {
      const held = await Promise.all([1, 2].map(() => RawClient.open(port)));
      try {
        assert.equal(await handshakeStatus(port), 429);
        // From another loopback address: a different client IP, served.
        const other = await connectWs(port, "/", { localAddress: "127.0.0.2" });
        other.ws.close();
        await other.closed;
      } finally {
        for (const c of held) c.close();
      }
    }),
});

Deno.test({
  name: "a client over --message-rate is closed with 4001 and a reason (close-code table)",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      { args: ["--message-rate", "5", "--message-burst", "5"], handlers: echo },
      async ({ port }) => {
        const c = await RawClient.open(port);
        try {
          const frames = Array.from({ length: 20 }, () => clientFrame({ opcode: 1, payload: "m" }));
          for (const f of frames) await c.write(f);
          for (;;) {
            const frame = await c.readFrame();
            if (frame.opcode !== 0x8) continue;
            assert.deepStrictEqual(parseClose(frame.payload), {
              code: 4001,
              reason: "message rate exceeded",
            });
            break;
          }
        } finally {
          c.close();
        }
      },
    ),
});
