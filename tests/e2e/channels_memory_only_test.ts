// End to end through the real server process (main.ts): without --allow-write for --state-dir it
// still serves channels, logs exactly one warning line that history is kept in memory only, and
// flags it on /readyz (still 200); with the grant it logs no such line and /readyz has no flag
// (lib/channels/PROTOCOL.md, "Durability: write before send").

import assert from "node:assert/strict";
import { DURABLE, PushV1Client } from "../support/push_v1.ts";
import { type ServerProcess, startServer } from "../support/server_process.ts";

/** Permissions for normal operation: no write grant, so no history on disk. */
const NO_WRITE = ["--allow-net", "--allow-read"] as const;
const MEMORY_ONLY_LINE = /^.*history kept in memory only.*$/gm;
const ADMIN_LISTEN = /admin listener on http:\/\/127\.0\.0\.1:(\d+)\//;
const PUBLICATIONS = 3;

/** Starts main.ts with `permissions` and an admin listener on a free port. */
async function start(permissions: readonly string[]): Promise<ServerProcess> {
  return await startServer({
    permissions,
    args: ["--admin-listen", "127.0.0.1:0"],
    logLevel: "info",
  });
}

/** Publishes to `news` through the FIFO and waits until a subscriber has every publication. */
async function publishAndReceive(server: ServerProcess): Promise<void> {
  const client = await PushV1Client.open(server.port);
  try {
    assert.equal((await client.subscribe("news")).type, "subscribed");
    let lines = "";
    for (let n = 1; n <= PUBLICATIONS; n++) {
      lines += JSON.stringify({ channel: "news", data: { n } }) + "\n";
    }
    await server.writeFifo(lines);
    for (let n = 1; n <= PUBLICATIONS; n++) {
      assert.deepEqual((await client.next()).data, { n });
    }
  } finally {
    await client.end();
  }
}

async function readyz(server: ServerProcess): Promise<{ status: number; body: string }> {
  await server.waitForLog(ADMIN_LISTEN);
  const port = ADMIN_LISTEN.exec(server.stderr())![1];
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
}

Deno.test("main.ts without --allow-write: one memory-only warning line, channels served, /readyz 200 with the flag", async () => {
  const server = await start(NO_WRITE);
  try {
    await publishAndReceive(server);
    const warned = server.stderr().match(MEMORY_ONLY_LINE) ?? [];
    assert.equal(warned.length, 1, server.stderr());
    assert.match(warned[0], /^warn: history kept in memory only: cannot open .*--allow-write/);
    const { status, body } = await readyz(server);
    assert.equal(status, 200, body);
    assert.match(body, /^ready\nwarning: history kept in memory only: cannot open /);
    assert.equal(server.countLog(MEMORY_ONLY_LINE), 1, "still one line after /readyz");
  } finally {
    await server.stop();
  }
});

Deno.test("main.ts with --allow-write: no memory-only warning line and /readyz is plain ready", async () => {
  const server = await start(DURABLE);
  try {
    await publishAndReceive(server);
    assert.equal(server.countLog(MEMORY_ONLY_LINE), 0, server.stderr());
    assert.deepEqual(await readyz(server), { status: 200, body: "ready\n" });
  } finally {
    await server.stop();
  }
});
