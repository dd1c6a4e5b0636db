// Runs the conformance table against the real server process running `echo`, over TCP with a
// raw client: each case on its own connection, then a check that TCP closes (or stays usable).

import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import {
  ALIVE_PING,
  ALIVE_PONG,
  allowedReplies,
  CASES,
  type ConformanceCase,
  describeReplies,
  MAX_MESSAGE_SIZE,
  Op,
  type Reply,
} from "./conformance/cases.ts";
import { ConnectionClosed, parseClose, RawClient, type ServerFrame } from "./support/raw_client.ts";
import { startServer } from "./support/server_process.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

function toReply(frame: ServerFrame): Reply {
  // RFC 6455 §5.1: "A server MUST NOT mask any frames"; no extension is negotiated, so no RSV.
  assert.equal(frame.masked, false, "server frames are not masked (RFC 6455 §5.1)");
  assert.equal(frame.rsv, 0, "server frames have no RSV bits (RFC 6455 §5.2)");
  assert.equal(frame.fin, true, "the echo server does not fragment");
  switch (frame.opcode) {
    case Op.TEXT:
      return { text: decoder.decode(frame.payload) };
    case Op.BINARY:
      return { binary: frame.payload };
    case Op.PONG:
      return { pong: frame.payload };
    case Op.CLOSE:
      return { close: parseClose(frame.payload).code };
    default:
      throw new Error(`unexpected opcode ${frame.opcode} from the server`);
  }
}

async function runCase(port: number, c: ConformanceCase): Promise<void> {
  const client = await RawClient.open(port);
  try {
    for (const chunk of c.send) {
      // The server may close mid-way on purpose; what it answered is checked below.
      await client.write(chunk).catch(() => {});
    }
    if (!c.tcpCloses) await client.write(ALIVE_PING);
    const allowed = allowedReplies(c);
    const most = Math.max(...allowed.map((a) => a.length)) + (c.tcpCloses ? 0 : 1);
    let replies: Reply[] = [];
    while (replies.length < most) {
      let frame: ServerFrame;
      try {
        frame = await client.readFrame(5000);
      } catch (e) {
        if (e instanceof ConnectionClosed) break;
        throw e;
      }
      const reply = toReply(frame);
      replies.push(reply);
      if ("close" in reply) break;
    }
    if (!c.tcpCloses) {
      // The pong for the alive check may overtake echoes of messages sent before the ping:
      // RFC 6455 §5.5.2 lets a pong go out as soon as practical.
      const alive = replies.findIndex((r) => isDeepStrictEqual(r, ALIVE_PONG));
      assert.notEqual(alive, -1, "the connection still answers a ping");
      replies = replies.filter((_, i) => i !== alive);
    }
    if (!allowed.some((want) => isDeepStrictEqual(replies, want))) {
      assert.fail(`got ${describeReplies(replies)}, want ${describeReplies(allowed[0])}`);
    }
    if (c.tcpCloses) {
      // RFC 6455 §7.1.1: after the Close exchange (or failing), the server closes TCP first.
      assert.equal(await client.closedWithin(3000), true, "the server closes TCP");
    }
  } finally {
    client.close();
  }
}

Deno.test("conformance over TCP against the real server running echo", async (t) => {
  const server = await startServer({
    args: ["--max-message-size", String(MAX_MESSAGE_SIZE), "echo"],
    logLevel: "info",
  });
  try {
    for (const c of CASES) {
      await t.step(`over TCP: ${c.name}`, () => runCase(server.port, c));
    }
  } finally {
    await server.stop();
  }
});
