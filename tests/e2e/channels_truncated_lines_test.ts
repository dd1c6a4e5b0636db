// End to end through the real server: a truncated command line (`{"channel":"news","data":{"ti`
// then a newline) is dropped, never delivered to anyone (neither published to the channel nor
// broadcast to plain clients), whether the newline comes in the same write or a later one; the
// next good line is delivered (lib/channels/PROTOCOL.md, "FIFO commands", rule 2).

import assert from "node:assert/strict";
import { numbers, PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

const TRUNCATED = '{"channel":"news","data":{"ti';

/** A plain WebSocket client (no subprotocol): it receives every broadcast line. */
async function plainClient(port: number): Promise<{ lines: string[]; next(): Promise<string> }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  socket.addEventListener("message", (e) => {
    lines.push(String(e.data));
    wake?.();
  });
  await new Promise((resolve) => socket.addEventListener("open", resolve));
  let cursor = 0;
  return {
    lines,
    async next() {
      while (cursor >= lines.length) await new Promise<void>((resolve) => wake = resolve);
      return lines[cursor++];
    },
  };
}

Deno.test("a truncated command line is delivered to no one; the next good line is", async () => {
  const server = await RestartableServer.create();
  try {
    const subscriber = await PushV1Client.open(server.port);
    assert.equal((await subscriber.subscribe("news")).type, "subscribed");
    const plain = await plainClient(server.port);

    // The newline in the same write.
    assert.ok(await tryWriteFifo(server.fifo, `${TRUNCATED}\n`));
    // The truncated part alone, then the newline from another writer.
    assert.ok(await tryWriteFifo(server.fifo, TRUNCATED));
    assert.ok(await tryWriteFifo(server.fifo, "\n"));
    assert.ok(
      await tryWriteFifo(
        server.fifo,
        `${JSON.stringify({ channel: "news", data: { n: 1 } })}\nplain after\n`,
      ),
    );

    const first = await subscriber.next();
    assert.deepStrictEqual(
      [first.type, first.offset, first.data],
      ["publication", 1, { n: 1 }],
      "the good line is the channel's first publication",
    );
    assert.equal(await plain.next(), "plain after", "no truncated line was broadcast");
    await subscriber.flush();
    assert.deepStrictEqual(numbers(subscriber.received), [1], "one publication, the good one");
    assert.deepStrictEqual(plain.lines, ["plain after"]);
    assert.equal(server.process.countLog(/dropped/i) >= 1, true, "the drop is logged");
    subscriber.close();
  } finally {
    await server.stop();
  }
});
