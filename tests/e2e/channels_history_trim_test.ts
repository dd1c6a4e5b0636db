// End to end through the real server: a resume that history no longer covers, because it was
// trimmed by count (--history-size) or by age (--history-ttl), gets `recovered: false` with the
// channel's current position and no replay (lib/channels/PROTOCOL.md, "How resume works").

import assert from "node:assert/strict";
import { numbers, PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const HISTORY_SIZE = 5;
const TTL_MS = 300;

function lines(from: number, to: number): string {
  let text = "";
  for (let n = from; n <= to; n++) text += JSON.stringify({ channel: "news", data: { n } }) + "\n";
  return text;
}

/** Publishes `from`..`to` to news and waits until a subscriber has them all. */
async function publish(server: RestartableServer, watcher: PushV1Client, range: [number, number]) {
  assert.ok(await tryWriteFifo(server.fifo, lines(...range)));
  while (numbers(watcher.received).at(-1) !== range[1]) await watcher.next();
}

Deno.test("history trimmed by --history-size: an older position gets recovered false and the current one", async () => {
  const server = await RestartableServer.create(["--history-size", String(HISTORY_SIZE)]);
  try {
    const watcher = await PushV1Client.open(server.port);
    const epoch = (await watcher.subscribe("news")).epoch as string;
    await publish(server, watcher, [1, 10]);

    const covered = await PushV1Client.open(server.port);
    const ok = await covered.subscribe("news", { epoch, offset: 10 - HISTORY_SIZE });
    assert.deepStrictEqual([ok.recovered, ok.offset], [true, 10]);
    assert.deepStrictEqual(numbers(await covered.flush()), [6, 7, 8, 9, 10]);

    const late = await PushV1Client.open(server.port);
    const lost = await late.subscribe("news", { epoch, offset: 10 - HISTORY_SIZE - 1 });
    assert.deepStrictEqual(
      { type: lost.type, recovered: lost.recovered, epoch: lost.epoch, offset: lost.offset },
      { type: "subscribed", recovered: false, epoch, offset: 10 },
    );
    assert.deepStrictEqual(await late.flush(), [], "nothing is replayed");
    await publish(server, watcher, [11, 11]);
    assert.deepStrictEqual(numbers(await late.flush()), [11], "then it is live");
    for (const c of [watcher, covered, late]) c.close();
  } finally {
    await server.stop();
  }
});

Deno.test("history trimmed by --history-ttl: a position older than the TTL gets recovered false", async () => {
  const server = await RestartableServer.create(["--history-ttl", `${TTL_MS}ms`]);
  try {
    const watcher = await PushV1Client.open(server.port);
    const epoch = (await watcher.subscribe("news")).epoch as string;
    await publish(server, watcher, [1, 3]);

    const fresh = await PushV1Client.open(server.port);
    const ok = await fresh.subscribe("news", { epoch, offset: 1 });
    assert.deepStrictEqual([ok.recovered, ok.offset], [true, 3]);
    assert.deepStrictEqual(numbers(await fresh.flush()), [2, 3]);

    // Age is the condition under test: let the publications outlive the TTL.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS * 2));
    const late = await PushV1Client.open(server.port);
    const lost = await late.subscribe("news", { epoch, offset: 1 });
    assert.deepStrictEqual(
      { type: lost.type, recovered: lost.recovered, epoch: lost.epoch, offset: lost.offset },
      { type: "subscribed", recovered: false, epoch, offset: 3 },
    );
    assert.deepStrictEqual(await late.flush(), [], "nothing is replayed");
    for (const c of [watcher, fresh, late]) c.close();
  } finally {
    await server.stop();
  }
});
