// End to end through the real server: on a push.v1 connection "every message, both ways, is one
// JSON text frame" (lib/channels/PROTOCOL.md, "Selecting the protocol"). A plain FIFO line is
// broadcast to the original clients; it must not reach a push.v1 connection as raw text.
//
// IGNORED: it fails on main. Server#flushPendingLines (lib/server/server.ts) broadcasts held plain
// lines through Hub#broadcast to every connection, push.v1 ones included, so a push.v1 client
// receives the frame `plain line` (not JSON). Fix in server.ts (not this branch's to edit): leave
// push.v1 connections out of plain broadcasts (Hub#broadcast with a filter, or keep push.v1
// connections out of the broadcast set), or, if push.v1 clients should see broadcasts, send them
// as one JSON message (e.g. `{"type":"broadcast","text":…}`, framed once for all push.v1
// connections) and document that type in PROTOCOL.md. Then remove `ignore`.

import assert from "node:assert/strict";
import { PushV1Client, RestartableServer, tryWriteFifo } from "../support/push_v1.ts";

Deno.test({
  name: "a plain FIFO line never reaches a push.v1 connection as a non-JSON frame",
  ignore: true,
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
