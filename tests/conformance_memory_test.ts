// Runs the conformance table against an in-memory pair: a server Codec wired to an echo (as
// examples/echo.ts over lib/server/connection.ts does) and a client Codec reading its answers.
// Each case's bytes go in whole, one byte at a time, and (when small) split in two at every point.

import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { Codec, type CodecEvent } from "../lib/protocol/codec.ts";
import { concat } from "./support/feed.ts";
import {
  ALIVE_PING,
  ALIVE_PONG,
  allowedReplies,
  CASES,
  type ConformanceCase,
  describeReplies,
  MAX_MESSAGE_SIZE,
  type Reply,
} from "./conformance/cases.ts";

const SPLIT_EVERY_POINT_LIMIT = 1024;
const BYTEWISE_LIMIT = 70_000;

interface Outcome {
  readonly replies: Reply[];
  readonly tcpCloses: boolean;
}

/** Feeds `chunks` to a fresh echo server codec; returns what a client codec saw. */
function run(chunks: readonly Uint8Array[]): Outcome {
  const server = new Codec({ role: "server", maxMessageSize: MAX_MESSAGE_SIZE });
  const client = new Codec({
    role: "client",
    maskKey: () => new Uint8Array([1, 2, 3, 4]),
    maxMessageSize: MAX_MESSAGE_SIZE * 2,
  });
  const replies: Reply[] = [];
  const pump = () => {
    // As lib/server/connection.ts does: pull one event at a time and reply to it through the
    // codec, so the codec's own frames (pong, Close) fall in their place among the echoes.
    for (let event = server.nextEvent(); event !== null; event = server.nextEvent()) {
      echo(server, event);
    }
    for (const frame of server.takeOutput()) client.receive(frame);
    for (const event of client.takeEvents()) {
      const reply = toReply(event);
      if (reply) replies.push(reply);
    }
  };
  for (const chunk of chunks) {
    // The server may unmask in place; a copy keeps the table's bytes intact.
    server.receive(chunk.slice());
    pump();
  }
  if (!server.closeExpected) {
    server.receive(ALIVE_PING.slice());
    pump();
  }
  return { replies, tcpCloses: server.closeExpected };
}

/** examples/echo.ts: text and binary go back to their sender, through the server's codec. */
function echo(server: Codec, event: CodecEvent): void {
  if (event.type === "text") server.sendText(event.data);
  else if (event.type === "binary") server.sendBinary(event.data);
}

function toReply(event: CodecEvent): Reply | null {
  switch (event.type) {
    case "text":
      return { text: event.data };
    case "binary":
      return { binary: event.data.slice() };
    case "pong":
      return { pong: event.data.slice() };
    case "close":
      return { close: event.code };
    case "ping":
      return null;
    case "fail":
      throw new Error(`the client codec rejected the server's bytes: ${event.reason}`);
    default:
      return assertNever(event);
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected event ${JSON.stringify(value)}`);
}

/** Asserts the outcome is one the case allows. */
function check(c: ConformanceCase, got: Outcome, how: string): void {
  assert.equal(got.tcpCloses, c.tcpCloses, `${how}: whether TCP closes`);
  const allowed = allowedReplies(c, c.tcpCloses ? [] : [ALIVE_PONG]);
  if (allowed.some((want) => isDeepStrictEqual(got.replies, want))) return;
  assert.fail(`${how}: got ${describeReplies(got.replies)}, want ${describeReplies(allowed[0])}`);
}

for (const c of CASES) {
  Deno.test(`in memory: ${c.name}`, () => {
    check(c, run(c.send), "frames as separate writes");
    const all = concat(c.send);
    check(c, run([all]), "all bytes in one write");
    if (all.length <= BYTEWISE_LIMIT) {
      check(c, run(Array.from(all, (_, i) => all.subarray(i, i + 1))), "one byte at a time");
    }
    if (all.length <= SPLIT_EVERY_POINT_LIMIT) {
      for (let i = 1; i < all.length; i++) {
        check(c, run([all.subarray(0, i), all.subarray(i)]), `split at ${i}`);
      }
    }
  });
}
