// Tests the channel options through the real server in-process: --max-subscriptions caps one
// connection's channels, --history-memory caps the history held in memory while a resume still
// gets everything from SQLite, and --history-fsync picks SQLite's synchronous level.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import { HISTORY_FILE } from "../../lib/store/history_store.ts";
import { withInProcessServer } from "../support/in_process.ts";
import { sampleValue } from "../support/metrics_text.ts";
import { PushV1Client } from "../support/push_v1.ts";
import { writeFifo } from "../support/server_process.ts";

const inProcess = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "--max-subscriptions 2: a third channel gets error 4002, the first two keep working",
  ...inProcess,
  fn: () =>
    withInProcessServer({ args: ["--max-subscriptions", "2"] }, async ({ port, fifo }) => {
      const client = await PushV1Client.open(port);
      try {
        assert.equal((await client.subscribe("a")).type, "subscribed");
        assert.equal((await client.subscribe("b")).type, "subscribed");
        const refused = await client.subscribe("c");
        assert.deepStrictEqual(
          [refused.type, refused.code, refused.reason, refused.channel],
          ["error", PushCloseCode.BAD_REQUEST, "too many subscriptions", "c"],
        );
        await writeFifo(fifo, '{"channel":"b","data":1}\n');
        const got = await client.next();
        assert.deepStrictEqual([got.type, got.channel, got.data], ["publication", "b", 1]);
      } finally {
        await client.end();
      }
    }),
});

const CAPPED_LINES = 40;
const HISTORY_MEMORY_BYTES = 1024;

Deno.test({
  name:
    "--history-memory caps what history holds in memory; a resume still replays all from SQLite",
  ...inProcess,
  fn: () =>
    withInProcessServer(
      { args: ["--history-memory", "1KiB", "--admin-listen", "127.0.0.1:0"] },
      async ({ server, port, fifo }) => {
        const live = await PushV1Client.open(port);
        const late = await PushV1Client.open(port);
        try {
          const epoch = String((await live.subscribe("news")).epoch);
          const data = (n: number) => ({ n, text: "x".repeat(60) });
          const lines = Array.from(
            { length: CAPPED_LINES },
            (_, i) => JSON.stringify({ channel: "news", data: data(i + 1) }) + "\n",
          );
          await writeFifo(fifo, lines.join(""));
          for (let i = 0; i < CAPPED_LINES; i++) await live.next();
          const text = await (await fetch(`http://127.0.0.1:${server.adminAddress!.port}/metrics`))
            .text();
          const held = sampleValue(text, "push_history_bytes")!;
          assert.ok(held > 0 && held <= HISTORY_MEMORY_BYTES, `${held} bytes held in memory`);
          assert.ok(sampleValue(text, "push_history_messages")! < CAPPED_LINES);

          const reply = await late.subscribe("news", { epoch, offset: 0 });
          assert.deepStrictEqual([reply.recovered, reply.offset], [true, CAPPED_LINES]);
          const replayed = [];
          for (let i = 0; i < CAPPED_LINES; i++) replayed.push((await late.next()).data);
          assert.deepStrictEqual(replayed, lines.map((_, i) => data(i + 1)));
        } finally {
          await live.end();
          await late.end();
        }
      },
    ),
});

/** The synchronous level the server's history store recorded for this run. */
function recordedLevel(stateDir: string): string | undefined {
  const db = new DatabaseSync(`${stateDir}/${HISTORY_FILE}`, { readOnly: true });
  try {
    const row = db.prepare("SELECT value FROM meta WHERE key = 'synchronous'").get();
    return row?.value as string | undefined;
  } finally {
    db.close();
  }
}

for (const [setting, level] of [["on", "full"], ["off", "normal"]]) {
  Deno.test({
    name:
      `--history-fsync ${setting}: history is committed with synchronous=${level.toUpperCase()}`,
    ...inProcess,
    fn: async () => {
      let stateDir = "";
      await withInProcessServer({
        args: ["--history-fsync", setting],
        stateDir: (dir) => stateDir = `${dir}/state`,
      }, () => {
        assert.equal(recordedLevel(stateDir), level);
        return Promise.resolve();
      });
    },
  });
}
