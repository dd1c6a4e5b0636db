// The upgrade decision, through the real server process, seen by a raw socket and by npm:ws:
// the upgrade handler (refusal, subprotocol, data, timeout) and, without one, the
// --allowed-origin, --subprotocol and --trusted-proxy options.

import assert from "node:assert/strict";
import { withServer } from "./support/server_process.ts";
import { closeWs, connectWs, HttpRefusal } from "./support/ws_client.ts";
import { type HandshakeOptions, type HttpResponse, RawClient } from "./support/raw_client.ts";

const FIXTURE = new URL("./fixtures/upgrade_handlers.ts", import.meta.url).pathname;
const FAILING = new URL("./fixtures/failing_handlers.ts", import.meta.url).pathname;
const ADDRESS = new URL("./fixtures/address_handlers.ts", import.meta.url).pathname;
const COOKIE = { Cookie: "session=s3cret" };

/**
 * Sends a raw upgrade request and returns the answer. After a refusal, checks that the server
 * closes TCP (RFC 6455 §4.2.2: it answers and then closes); after a 101, closes the socket.
 */
async function ask(port: number, options: HandshakeOptions = {}): Promise<HttpResponse> {
  const { client, res } = await RawClient.handshake(port, options);
  try {
    if (res.status !== 101) {
      assert.equal(await client.closedWithin(5000), true, "the server closes TCP after refusing");
    }
    return res;
  } finally {
    client.close();
  }
}

function refusedWith(status: number) {
  return (e: unknown) => {
    assert.ok(e instanceof HttpRefusal, String(e));
    assert.equal(e.status, status);
    return true;
  };
}

Deno.test("upgrade refuses with its status and body: 401 to a raw socket and to npm:ws", async () => {
  await withServer([FIXTURE], async (server) => {
    const raw = await ask(server.port, { path: "/?user=ann" });
    assert.equal(raw.status, 401);
    assert.equal(raw.body, "Log in first\n");
    assert.equal(raw.headers.get("sec-websocket-accept"), undefined);
    await assert.rejects(connectWs(server.port, "/?user=ann"), refusedWith(401));
    const forbidden = await ask(server.port, { path: "/?forbid", headers: COOKIE });
    assert.equal(forbidden.status, 403);
  });
});

Deno.test("upgrade selects one of the offered subprotocols (RFC 6455 §4.2.2) and attaches data", async () => {
  await withServer([FIXTURE], async (server) => {
    const { client, res } = await RawClient.handshake(server.port, {
      path: "/?user=ann",
      headers: { ...COOKIE, "Sec-WebSocket-Protocol": "push.v1, push.v2" },
    });
    try {
      assert.equal(res.status, 101);
      assert.equal(res.headers.get("sec-websocket-protocol"), "push.v2");
      const frame = await client.readFrame();
      assert.equal(new TextDecoder().decode(frame.payload), "welcome ann (push.v2)");
    } finally {
      client.close();
    }

    const ws = await connectWs(server.port, "/?user=bob", {
      protocols: ["push.v1"],
      headers: COOKIE,
    });
    assert.equal(ws.ws.protocol, "push.v1");
    assert.equal(await ws.next(), "welcome bob (push.v1)");
    await closeWs(ws);

    // Offering nothing it knows: accepted without Sec-WebSocket-Protocol.
    const none = await ask(server.port, {
      path: "/?user=cy",
      headers: { ...COOKIE, "Sec-WebSocket-Protocol": "other" },
    });
    assert.equal(none.status, 101);
    assert.equal(none.headers.get("sec-websocket-protocol"), undefined);
  });
});

Deno.test("an upgrade handler slower than --upgrade-timeout gets 503", async () => {
  await withServer([FIXTURE, "--upgrade-timeout", "200ms"], async (server) => {
    // The handler never settles, so the 503 can only come from the timeout.
    const raw = await ask(server.port, { path: "/?stall", headers: COOKIE });
    assert.equal(raw.status, 503);
    await server.waitForLog(/upgrade handler took over 200 ms \(connection \d+\); answered 503/);
    await assert.rejects(
      connectWs(server.port, "/?stall", { headers: COOKIE }),
      refusedWith(503),
    );
  });
});

Deno.test("an upgrade handler that picks a subprotocol the client did not offer gets 500 (RFC 6455 §4.1)", async () => {
  await withServer([FAILING], async (server) => {
    const raw = await ask(server.port, {
      path: "/?fail=unoffered-protocol",
      headers: { "Sec-WebSocket-Protocol": "a" },
    });
    assert.equal(raw.status, 500);
    await server.waitForLog("chose subprotocol not-offered, which the client did not offer");
  });
});

Deno.test("--allowed-origin refuses other and missing Origins with 403, then TCP closes (RFC 6455 §4.2.2, §10.2)", async () => {
  const args = ["--allowed-origin", "https://app.example", "--allowed-origin", "https://b.example"];
  await withServer(args, async (server) => {
    for (const origin of ["https://app.example", "https://b.example"]) {
      assert.equal((await ask(server.port, { headers: { Origin: origin } })).status, 101, origin);
    }
    const evil = await ask(server.port, { headers: { Origin: "https://evil.example" } });
    assert.equal(evil.status, 403);
    assert.match(evil.body, /Origin https:\/\/evil\.example is not allowed/);
    assert.equal((await ask(server.port)).status, 403, "no Origin at all");
    await assert.rejects(
      connectWs(server.port, "/", { headers: { Origin: "https://evil.example" } }),
      refusedWith(403),
    );
    const good = await connectWs(server.port, "/", { headers: { Origin: "https://app.example" } });
    await closeWs(good);
  });
});

Deno.test("--subprotocol picks the first of its list that the client offers (RFC 6455 §4.2.2 /subprotocol/)", async () => {
  await withServer(["--subprotocol", "push.v2", "--subprotocol", "push.v1"], async (server) => {
    const chosen = async (offer: string | null) => {
      const res = await ask(server.port, { headers: { "Sec-WebSocket-Protocol": offer } });
      assert.equal(res.status, 101, `offer ${offer}`);
      return res.headers.get("sec-websocket-protocol");
    };
    // The server's order of preference wins over the client's.
    assert.equal(await chosen("push.v1, push.v2"), "push.v2");
    assert.equal(await chosen("push.v1"), "push.v1");
    // None in common, or none offered: the 101 names no subprotocol.
    assert.equal(await chosen("x"), undefined);
    assert.equal(await chosen(null), undefined);
    const ws = await connectWs(server.port, "/", { protocols: ["x", "push.v1"] });
    assert.equal(ws.ws.protocol, "push.v1");
    await closeWs(ws);
    // A client that offered one (npm:ws, like browsers) then fails the connection itself.
    await assert.rejects(
      connectWs(server.port, "/", { protocols: ["x"] }),
      /Server sent no subprotocol/,
    );
  });
});

Deno.test("--trusted-proxy takes the address from X-Real-IP or the last X-Forwarded-For entry", async () => {
  const addressSeen = async (port: number, headers: Record<string, string>) => {
    const client = await RawClient.open(port, { headers });
    try {
      return new TextDecoder().decode((await client.readFrame()).payload);
    } finally {
      client.close();
    }
  };
  await withServer([ADDRESS, "--trusted-proxy", "127.0.0.1"], async (server) => {
    const seen = [];
    for (
      const headers of [
        { "X-Real-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.1" },
        { "X-Forwarded-For": "10.0.0.1, 198.51.100.7" },
        {},
      ] as Record<string, string>[]
    ) {
      seen.push(await addressSeen(server.port, headers));
    }
    assert.deepEqual(seen, [
      "address 203.0.113.9",
      "address 198.51.100.7",
      "address 127.0.0.1",
    ]);
  });
  // Not a trusted proxy: the headers are ignored.
  await withServer([ADDRESS, "--trusted-proxy", "192.0.2.1"], async (server) => {
    const seen = await addressSeen(server.port, { "X-Real-IP": "203.0.113.9" });
    assert.equal(seen, "address 127.0.0.1");
  });
});
