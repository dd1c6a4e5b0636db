// End to end through the real server: on a push.v1 connection "every message, both ways, is one
// JSON text frame" (lib/channels/PROTOCOL.md, "Selecting the protocol"). A plain FIFO line is
// broadcast to the original clients; it must not reach a push.v1 connection as raw text.

import assert from "node:assert/strict";
import { PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

Deno.test({
  name: "a plain FIFO line never reaches a push.v1 connection as a non-JSON frame",

  async fn() {
    const server = await RestartableServer.create();
    try {
      const client = await PushV1Client.open(server.port);
      assert.equal((await client.subscribe("news")).type, "subscribed");
      const lines = `plain line\n${JSON.stringify({ channel: "news", data: { n: 1 } })}\n`;
      assert.ok(await tryWriteFifo(server.fifo, lines));
      while (!client.received.some((m) => m.type === "publication")) await client.next();
      await client.flush();
      assert.deepStrictEqual(
        client.received.filter((m) => m.type === "not-json"),
        [],
        "every frame on push.v1 is a JSON object",
      );
      client.close();
    } finally {
      await server.stop();
    }
  },
});
