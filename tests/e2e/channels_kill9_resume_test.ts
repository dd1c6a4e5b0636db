// End to end through the real server: SIGKILL while a writer publishes to a channel, restart on
// the same --state-dir and FIFO, and a client that resumes from its last {epoch, offset} gets
// every publication the server accepted (committed to history) exactly once, in order, with
// `recovered: true` (lib/channels/PROTOCOL.md, "How resume works" and "Durability").

import assert from "node:assert/strict";
import { numbers, PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const TOTAL = 600;
const CHUNK = 20;
/** The kill comes once the first client has seen this many publications. */
const KILL_AFTER_SEEN = 100;
/** A writer's pause before it retries a write that failed (the server is down). */
const RETRY_MS = 20;

function line(n: number): string {
  return JSON.stringify({ channel: "news", data: { n } }) + "\n";
}

Deno.test("kill -9 mid-burst, restart, resume: every accepted publication once, in order, recovered", async () => {
  const server = await RestartableServer.create(["--history-size", "10000"]);
  let restarted = false;
  try {
    const first = await PushV1Client.open(server.port);
    const sub = await first.subscribe("news");
    assert.equal(sub.type, "subscribed");
    const epoch = sub.epoch as string;

    // The writer: chunks of lines, each one non-blocking write; a failed write is retried.
    const writtenAfterRestart: number[] = [];
    let failures = 0;
    const writer = (async () => {
      for (let n = 1; n <= TOTAL;) {
        const lines = Array.from({ length: CHUNK }, (_, i) => line(n + i)).join("");
        if (await tryWriteFifo(server.fifo, lines)) {
          if (restarted) { for (let i = 0; i < CHUNK; i++) writtenAfterRestart.push(n + i); }
          n += CHUNK;
        } else {
          failures++;
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
    })();

    // Kill mid-burst, once the first client is part-way through.
    while (numbers(first.received).length < KILL_AFTER_SEEN) await first.next();
    await server.kill();
    await first.closed;
    const seenBefore = first.received.filter((m) => m.type === "publication");
    const last = seenBefore.at(-1)!;
    assert.equal(last.offset, seenBefore.length, "offsets count from 1 with no gap");
    await server.start();
    restarted = true;

    const resumed = await PushV1Client.open(server.port);
    const again = await resumed.subscribe("news", { epoch, offset: last.offset as number });
    assert.deepStrictEqual(
      { type: again.type, recovered: again.recovered, epoch: again.epoch },
      { type: "subscribed", recovered: true, epoch },
    );
    await writer;
    assert.ok(failures >= 1, "a write failed while the server was down");
    const END = TOTAL + 1;
    assert.ok(await tryWriteFifo(server.fifo, line(END)));
    while (numbers(resumed.received).at(-1) !== END) await resumed.next();

    // What the server accepted is its history: read all of it from offset 0 of the epoch.
    const reader = await PushV1Client.open(server.port);
    const all = await reader.subscribe("news", { epoch, offset: 0 });
    assert.equal(all.recovered, true);
    while (numbers(reader.received).at(-1) !== END) await reader.next();
    const accepted = numbers(reader.received);

    const got = [...numbers(seenBefore), ...numbers(resumed.received)];
    assert.deepStrictEqual(got, accepted, "the client got exactly what the server accepted");
    const offsets = [...seenBefore, ...resumed.received.filter((m) => m.type === "publication")]
      .map((m) => m.offset);
    assert.deepStrictEqual(offsets, accepted.map((_, i) => i + 1), "offsets once each, in order");
    assert.ok(accepted.every((n, i) => i === 0 || n > accepted[i - 1]), "accepted in write order");
    const kept = new Set(accepted);
    assert.deepStrictEqual(writtenAfterRestart.filter((n) => !kept.has(n)), [], "nothing lost");
    // Only lines still in the pipe at the kill may be missing, never one a client saw.
    console.log(
      `accepted ${accepted.length - 1}/${TOTAL}; lost in the pipe at the kill: ${
        TOTAL - (accepted.length - 1)
      }; failed writes: ${failures}`,
    );
    resumed.close();
    reader.close();
  } finally {
    await server.stop();
  }
});
