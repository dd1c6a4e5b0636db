// Liveness and deadlines on the real server: silent clients are pinged, clients that never
// answer are dropped, and a closing handshake the peer never finishes ends at --close-timeout.
//
// Lower bounds on time are measured from a moment *before* the event that starts the server's
// timer (the connect, or the message that makes it close), so a slow test process can only
// make the measured time longer, never shorter.

import assert from "node:assert/strict";
import { closeBody, parseClose, RawClient } from "./support/raw_client.ts";
import { withServer } from "./support/server_process.ts";

const PING = 0x9;
const PONG = 0xa;
const CLOSE = 0x8;
const TEXT = 0x1;
const decoder = new TextDecoder();
/** Says "close me" to start a close with CLOSE_CODE and CLOSE_REASON. */
const CLOSING = new URL("./fixtures/closing_handlers.ts", import.meta.url).pathname;
const CLOSE_CODE = 4000;
const CLOSE_REASON = "as asked";

const PING_INTERVAL_MS = 300;
const PONG_TIMEOUT_MS = 600;
const CLOSE_TIMEOUT_MS = 400;
const LIVENESS = [
  "--ping-interval",
  `${PING_INTERVAL_MS}ms`,
  "--pong-timeout",
  `${PONG_TIMEOUT_MS}ms`,
];
/** The server's deadlines use Date.now(), the test performance.now(): allow for rounding. */
const CLOCK_SLACK_MS = 5;
/** A failure bound only: every deadline here is under a second. */
const WAIT_MS = 10_000;

function since(start: number): number {
  return performance.now() - start;
}

Deno.test("a silent client is pinged after --ping-interval, not before (RFC 6455 §5.5.2)", () =>
  withServer(LIVENESS, async (server) => {
    const before = performance.now();
    const client = await RawClient.open(server.port);
    try {
      const frame = await client.readFrame(WAIT_MS);
      const elapsed = since(before);
      assert.equal(frame.opcode, PING);
      assert.equal(frame.masked, false, "server frames are unmasked (RFC 6455 §5.1)");
      assert.ok(
        elapsed >= PING_INTERVAL_MS - CLOCK_SLACK_MS,
        `pinged ${elapsed.toFixed(0)} ms after connecting`,
      );
    } finally {
      client.close();
    }
  }));

Deno.test("a client that never answers pings is dropped after --pong-timeout, not before", () =>
  withServer(LIVENESS, async (server) => {
    const before = performance.now();
    const client = await RawClient.open(server.port);
    try {
      assert.equal((await client.readFrame(WAIT_MS)).opcode, PING);
      assert.equal(await client.closedWithin(WAIT_MS), true, "the server drops TCP");
      // The ping came no sooner than the interval, and the drop no sooner than the timeout
      // after it: a drop at the ping itself would fail this.
      const elapsed = since(before);
      assert.ok(
        elapsed >= PING_INTERVAL_MS + PONG_TIMEOUT_MS - CLOCK_SLACK_MS,
        `dropped ${elapsed.toFixed(0)} ms after connecting`,
      );
    } finally {
      client.close();
    }
  }));

Deno.test("a client that answers every ping stays connected (RFC 6455 §5.5.3)", () =>
  withServer([...LIVENESS, "echo"], async (server) => {
    const client = await RawClient.open(server.port);
    try {
      // Five rounds span five ping intervals, more than twice the pong timeout.
      for (let round = 0; round < 5; round++) {
        const ping = await client.readFrame(WAIT_MS);
        assert.equal(ping.opcode, PING, `round ${round}`);
        await client.sendFrame({ opcode: PONG, payload: ping.payload });
      }
      await client.sendFrame({ opcode: TEXT, payload: "still here" });
      let frame = await client.readFrame(WAIT_MS);
      while (frame.opcode === PING) frame = await client.readFrame(WAIT_MS);
      assert.equal(frame.opcode, TEXT);
      assert.equal(decoder.decode(frame.payload), "still here");
    } finally {
      client.close();
    }
  }));

/** Says "close me" and reads the server's answer: its id for this connection, then Close. */
async function askToClose(client: RawClient): Promise<number> {
  await client.sendFrame({ opcode: TEXT, payload: "close me" });
  const id = decoder.decode((await client.readFrame(WAIT_MS)).payload);
  assert.match(id, /^id \d+$/);
  const frame = await client.readFrame(WAIT_MS);
  assert.equal(frame.opcode, CLOSE);
  assert.deepEqual(parseClose(frame.payload), { code: CLOSE_CODE, reason: CLOSE_REASON });
  return Number(id.slice(3));
}

Deno.test("a server-initiated close the peer never answers drops TCP after --close-timeout, not before (RFC 6455 §7.1.1)", () =>
  withServer(["--close-timeout", `${CLOSE_TIMEOUT_MS}ms`, CLOSING], async (server) => {
    const client = await RawClient.open(server.port);
    try {
      const before = performance.now();
      await askToClose(client);
      // The peer neither answers the Close nor closes TCP.
      assert.equal(await client.closedWithin(WAIT_MS), true, "the server drops TCP");
      const elapsed = since(before);
      assert.ok(
        elapsed >= CLOSE_TIMEOUT_MS - CLOCK_SLACK_MS,
        `dropped ${elapsed.toFixed(0)} ms after the close started`,
      );
    } finally {
      client.close();
    }
  }));

Deno.test("a server-initiated close the peer answers ends cleanly, without the close timeout (RFC 6455 §5.5.1, §7.1.1)", () =>
  withServer(["--close-timeout", `${CLOSE_TIMEOUT_MS}ms`, CLOSING], async (server) => {
    const answering = await RawClient.open(server.port, { roundTrip: true });
    const silent = await RawClient.open(server.port, { roundTrip: true });
    try {
      const answeringId = await askToClose(answering);
      await answering.sendFrame({ opcode: CLOSE, payload: closeBody(CLOSE_CODE, "ok") });
      assert.equal(await answering.closedWithin(WAIT_MS), true, "the server closes TCP");
      // A well-behaved client closes its socket once the server has (RFC 6455 §7.1.1).
      answering.close();
      // The close handler saw the peer's answer, and a clean close (reported to the other).
      const report = decoder.decode((await silent.readFrame(WAIT_MS)).payload);
      assert.equal(report, `closed ${answeringId} ${CLOSE_CODE} ok true`);

      // Now a close nobody answers: its timer starts later than the first one's would have, so
      // once it fires, a timer left running for the answered close would have fired too.
      const silentId = await askToClose(silent);
      assert.equal(await silent.closedWithin(WAIT_MS), true, "the server drops TCP");
      // The timer's only observable is the server's log line.
      await server.waitForLog(new RegExp(`connection ${silentId}: .*timed out`), WAIT_MS);
      assert.doesNotMatch(server.stderr(), new RegExp(`connection ${answeringId}: .*timed out`));
    } finally {
      answering.close();
      silent.close();
    }
  }));
