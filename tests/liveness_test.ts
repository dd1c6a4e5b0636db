// Liveness and deadlines on the real server: silent clients are pinged, clients that never
// answer are dropped, and a closing handshake the peer never finishes ends at --close-timeout.

import assert from "node:assert/strict";
import { closeBody, parseClose, RawClient } from "./support/raw_client.ts";
import { withServer } from "./support/server_process.ts";

const PING = 0x9;
const PONG = 0xa;
const CLOSE = 0x8;
const TEXT = 0x1;
const decoder = new TextDecoder();

const LIVENESS = ["--ping-interval", "300ms", "--pong-timeout", "300ms"];

Deno.test("a silent client is pinged after --ping-interval (RFC 6455 §5.5.2)", () =>
  withServer(LIVENESS, async (server) => {
    const client = await RawClient.open(server.port);
    try {
      const started = Date.now();
      const frame = await client.readFrame(3000);
      assert.equal(frame.opcode, PING);
      assert.equal(frame.masked, false);
      assert.ok(Date.now() - started >= 250, "not pinged before the interval");
    } finally {
      client.close();
    }
  }));

Deno.test("a client that never answers pings is dropped after --pong-timeout", () =>
  withServer(LIVENESS, async (server) => {
    const client = await RawClient.open(server.port);
    try {
      assert.equal((await client.readFrame(3000)).opcode, PING);
      const pinged = Date.now();
      assert.equal(await client.closedWithin(3000), true, "the server drops TCP");
      assert.ok(Date.now() - pinged >= 250, "dropped before the pong timeout");
      await server.waitForLog(/no pong within 300 ms/);
    } finally {
      client.close();
    }
  }));

Deno.test("a client that answers every ping stays connected (RFC 6455 §5.5.3)", () =>
  withServer([...LIVENESS, "echo"], async (server) => {
    const client = await RawClient.open(server.port);
    try {
      // Five rounds span five times the pong timeout.
      for (let round = 0; round < 5; round++) {
        const ping = await client.readFrame(3000);
        assert.equal(ping.opcode, PING, `round ${round}`);
        await client.sendFrame({ opcode: PONG, payload: ping.payload });
      }
      await client.sendFrame({ opcode: TEXT, payload: "still here" });
      let frame = await client.readFrame(3000);
      while (frame.opcode === PING) frame = await client.readFrame(3000);
      assert.equal(frame.opcode, TEXT);
      assert.equal(decoder.decode(frame.payload), "still here");
    } finally {
      client.close();
    }
  }));

/** A handlers file that starts the closing handshake when a client says "close me". */
async function closingHandlers(dir: string): Promise<string> {
  const path = `${dir}/closing.ts`;
  await Deno.writeTextFile(
    path,
    "export function text(conn: { close(code: number, reason: string): void }, message: string) {\n" +
      '  if (message === "close me") conn.close(4000, "as asked");\n' +
      "}\n",
  );
  return path;
}

Deno.test("a server-initiated close the peer never answers drops TCP after --close-timeout (RFC 6455 §7.1.1)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-liveness-" });
  try {
    const handlers = await closingHandlers(dir);
    await withServer(["--close-timeout", "300ms", handlers], async (server) => {
      const client = await RawClient.open(server.port);
      try {
        await client.sendFrame({ opcode: TEXT, payload: "close me" });
        const frame = await client.readFrame(3000);
        assert.equal(frame.opcode, CLOSE);
        assert.deepEqual(parseClose(frame.payload), { code: 4000, reason: "as asked" });
        const sent = Date.now();
        // The peer neither answers the Close nor closes TCP.
        assert.equal(await client.closedWithin(3000), true, "the server drops TCP");
        assert.ok(Date.now() - sent >= 250, "dropped before the close timeout");
      } finally {
        client.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server-initiated close the peer answers ends TCP at once (RFC 6455 §5.5.1, §7.1.1)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-liveness-" });
  try {
    const handlers = await closingHandlers(dir);
    await withServer(["--close-timeout", "5s", handlers], async (server) => {
      const client = await RawClient.open(server.port);
      try {
        await client.sendFrame({ opcode: TEXT, payload: "close me" });
        const frame = await client.readFrame(3000);
        assert.equal(frame.opcode, CLOSE);
        await client.sendFrame({ opcode: CLOSE, payload: closeBody(4000, "ok") });
        // Well before the 5 s close timeout.
        assert.equal(await client.closedWithin(2000), true, "the server closes TCP");
        client.close();
        // The close handler sees the peer's answer.
        await server.waitForLog(/closed: 4000 ok/, 2000);
        assert.doesNotMatch(server.stderr(), /timed out/);
      } finally {
        client.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
