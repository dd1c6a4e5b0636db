// The opening handshake against the real server process, over raw sockets: refusals with the
// right status and headers, then TCP closed; the handshake timeout; a correct 101.

import assert from "node:assert/strict";
import { clientFrame, RawClient, SAMPLE_ACCEPT, upgradeRequest } from "./support/raw_client.ts";
import { type ServerProcess, startServer } from "./support/server_process.ts";

const decoder = new TextDecoder();

interface Refusal {
  readonly name: string;
  readonly request: string;
  readonly status: number;
  readonly headers?: Record<string, string>;
  /** What the one-line body must say. */
  readonly message?: RegExp;
}

/** A valid upgrade request with `lines` added at the end of its head, verbatim. */
function withLines(...lines: string[]): string {
  return upgradeRequest().replace(/\r\n\r\n$/, `\r\n${lines.join("\r\n")}\r\n\r\n`);
}

/** Requests that a proxy in front could read differently: each is refused with 400. */
const SMUGGLING: readonly Refusal[] = [
  {
    name: "two Host lines get 400 (RFC 9112 §3.2)",
    request: withLines("Host: other.example"),
    status: 400,
    message: /^More than one Host header\n$/,
  },
  {
    name: "a Host that is not a host name gets 400 (RFC 9112 §3.2)",
    request: upgradeRequest({ host: "evil.example/x" }),
    status: 400,
    message: /^Host is not a valid host name\n$/,
  },
  {
    name: "two different Content-Length lines get 400 (RFC 9112 §6.3)",
    request: withLines("Content-Length: 5", "Content-Length: 7"),
    status: 400,
    message: /^More than one Content-Length header\n$/,
  },
  ...["5, 7", "abc", "-1"].map((value) => ({
    name: `Content-Length: ${value} gets 400 (RFC 9112 §6.3)`,
    request: withLines(`Content-Length: ${value}`),
    status: 400,
    message: /^Content-Length is not a number\n$/,
  })),
  {
    name: "an upgrade GET with a Content-Length body gets 400 (RFC 6455 §4.1)",
    request: withLines("Content-Length: 5") + "hello",
    status: 400,
    message: /^A WebSocket upgrade cannot have a body\n$/,
  },
  {
    name: "an upgrade GET with Transfer-Encoding gets 400 (RFC 6455 §4.1)",
    request: withLines("Transfer-Encoding: chunked") + "0\r\n\r\n",
    status: 400,
    message: /^A WebSocket upgrade cannot have a body\n$/,
  },
  {
    name: "a NUL in the request target gets 400 (RFC 9112 §3.2)",
    request: upgradeRequest({ path: "/chat\x00admin" }),
    status: 400,
    message: /^Control character in the request target\n$/,
  },
  {
    name: "a control character in a header value gets 400 (RFC 9110 §5.5)",
    request: withLines("X-Note: a\x01b"),
    status: 400,
    message: /^Control character in the X-Note header\n$/,
  },
];

const REFUSALS: readonly Refusal[] = [
  {
    name: "an unsupported Sec-WebSocket-Version gets 426 naming version 13 (RFC 6455 §4.2.2)",
    request: upgradeRequest({ headers: { "Sec-WebSocket-Version": "8" } }),
    status: 426,
    headers: { "sec-websocket-version": "13" },
  },
  {
    name: "a missing Sec-WebSocket-Version gets 426 naming version 13 (RFC 6455 §4.2.2)",
    request: upgradeRequest({ headers: { "Sec-WebSocket-Version": null } }),
    status: 426,
    headers: { "sec-websocket-version": "13" },
  },
  {
    name: "a missing Sec-WebSocket-Key gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { "Sec-WebSocket-Key": null } }),
    status: 400,
  },
  {
    name: "a Sec-WebSocket-Key that is not 16 bytes in base64 gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { "Sec-WebSocket-Key": "c2hvcnQ=" } }),
    status: 400,
  },
  {
    name: "a missing Host gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { Host: null } }),
    status: 400,
  },
  {
    name: "an upgrade request without an Upgrade header gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { Upgrade: null } }),
    status: 400,
  },
  {
    name: "an Upgrade header not naming websocket gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { Upgrade: "h2c" } }),
    status: 400,
  },
  {
    name: "a Connection header without the upgrade token gets 400 (RFC 6455 §4.2.1)",
    request: upgradeRequest({ headers: { Connection: "keep-alive" } }),
    status: 400,
  },
  {
    name: "a POST gets 400: only GET upgrades (RFC 6455 §4.2.1)",
    request: upgradeRequest({ method: "POST" }),
    status: 400,
  },
  {
    name: "an HTTP/1.0 request gets 400: HTTP/1.1 or higher (RFC 6455 §4.2.1)",
    request: upgradeRequest({ version: "HTTP/1.0" }),
    status: 400,
  },
  {
    name: "a garbage request line gets 400 (RFC 9112 §3)",
    request: "HELLO\r\n\r\n",
    status: 400,
  },
  {
    name: "a request head over 16 KiB gets 431 (RFC 6585 §5)",
    request: upgradeRequest({ headers: { "X-Padding": "p".repeat(20 * 1024) } }),
    status: 431,
  },
  {
    name: "a request with over 100 header lines gets 431 (RFC 6585 §5)",
    request: upgradeRequest({
      headers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-H${i}`, "v"])),
    }),
    status: 431,
  },
  {
    name: "a plain HTTP GET gets 426 with Upgrade: websocket (RFC 7231 §6.5.15)",
    request: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n",
    status: 426,
    headers: { upgrade: "websocket" },
  },
  ...SMUGGLING,
];

Deno.test("handshake refusals from the real server", async (t) => {
  const server = await startServer({ args: ["echo"] });
  try {
    for (const r of REFUSALS) {
      await t.step(`${r.name}, then TCP closes`, async () => {
        const client = await RawClient.connect(server.port);
        try {
          await client.write(r.request).catch(() => {});
          const res = await client.readResponse();
          assert.equal(res.status, r.status, res.statusLine);
          for (const [name, value] of Object.entries(r.headers ?? {})) {
            assert.equal(res.headers.get(name), value, `header ${name}`);
          }
          assert.equal(res.headers.get("sec-websocket-accept"), undefined);
          // A one-line plain-text body says what was wrong.
          assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
          const body = decoder.decode(res.rest);
          assert.match(body, /^[^\n]+\n$/, `one-line body: ${JSON.stringify(body)}`);
          if (r.message) assert.match(body, r.message);
          assert.equal(await client.closedWithin(3000), true, "the server closes TCP");
        } finally {
          client.close();
        }
      });
    }
  } finally {
    await server.stop();
  }
});

Deno.test("requests a proxy could read differently get 400 when sent one byte per write (RFC 9112 §3.2, §6.3)", async (t) => {
  const server = await startServer({ args: ["echo"] });
  try {
    for (const r of SMUGGLING) {
      await t.step(r.name, async () => {
        const client = await RawClient.connect(server.port);
        try {
          client.conn.setNoDelay(true);
          const request = new TextEncoder().encode(r.request);
          // The server may answer (and close) as soon as it has read the head.
          for (let i = 0; i < request.length; i++) {
            if (!(await client.write(request.subarray(i, i + 1)).then(() => true, () => false))) {
              break;
            }
            if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
          }
          const res = await client.readResponse();
          assert.equal(res.status, 400, res.statusLine);
          assert.match(decoder.decode(res.rest), r.message!);
        } finally {
          client.close();
        }
      });
    }
  } finally {
    await server.stop();
  }
});

Deno.test("a plain HTTP GET gets a one-line body saying this is a WebSocket server", async () => {
  const server = await startServer({ args: ["--page", "off"] });
  const client = await RawClient.connect(server.port);
  try {
    await client.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const res = await client.readResponse();
    assert.equal(res.status, 426);
    assert.match(decoder.decode(res.rest), /WebSocket/);
  } finally {
    client.close();
    await server.stop();
  }
});

async function withEcho(fn: (server: ServerProcess) => Promise<void>): Promise<void> {
  const server = await startServer({ args: ["echo"] });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

Deno.test("a valid upgrade gets 101 with the RFC's Sec-WebSocket-Accept (RFC 6455 §4.2.2)", () =>
  withEcho(async (server) => {
    const client = await RawClient.connect(server.port);
    try {
      await client.write(upgradeRequest({ path: "/chat?room=1" }));
      const res = await client.readResponse();
      assert.equal(res.status, 101);
      assert.equal(res.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
      assert.equal(res.headers.get("upgrade")?.toLowerCase(), "websocket");
      assert.equal(res.headers.get("connection")?.toLowerCase(), "upgrade");
      assert.equal(res.headers.get("sec-websocket-protocol"), undefined);
    } finally {
      client.close();
    }
  }));

Deno.test(
  "frames sent in the same packet as the request head are processed (RFC 6455 §4.2.2)",
  () =>
    withEcho(async (server) => {
      const client = await RawClient.connect(server.port);
      try {
        const head = new TextEncoder().encode(upgradeRequest());
        const frame = clientFrame({ opcode: 0x1, payload: "right behind the head" });
        const packet = new Uint8Array(head.length + frame.length);
        packet.set(head);
        packet.set(frame, head.length);
        await client.write(packet);
        const res = await client.readResponse();
        assert.equal(res.status, 101);
        const echo = await client.readFrame();
        assert.equal(echo.opcode, 0x1);
        assert.equal(decoder.decode(echo.payload), "right behind the head");
      } finally {
        client.close();
      }
    }),
);

Deno.test("a request head sent one byte per write still upgrades (RFC 6455 §4.2.1)", () =>
  withEcho(async (server) => {
    const client = await RawClient.connect(server.port);
    try {
      client.conn.setNoDelay(true);
      const head = new TextEncoder().encode(upgradeRequest({ path: "/slow" }));
      for (let i = 0; i < head.length; i++) {
        await client.write(head.subarray(i, i + 1));
        if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const res = await client.readResponse();
      assert.equal(res.status, 101);
      assert.equal(res.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
      await client.roundTrip();
    } finally {
      client.close();
    }
  }));

Deno.test("a request head with bare LF line endings still upgrades (RFC 9112 §2.2)", () =>
  withEcho(async (server) => {
    const client = await RawClient.connect(server.port);
    try {
      await client.write(upgradeRequest().replaceAll("\r\n", "\n"));
      const res = await client.readResponse().catch(() => null);
      // The response itself uses CRLF; readResponse finds it.
      assert.equal(res?.status, 101);
    } finally {
      client.close();
    }
  }));

Deno.test("a half-sent request is dropped after --handshake-timeout", async () => {
  const server = await startServer({ args: ["--handshake-timeout", "300ms"] });
  const client = await RawClient.connect(server.port);
  try {
    const started = Date.now();
    await client.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr");
    assert.equal(await client.closedWithin(3000), true, "the server drops TCP");
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250, `dropped after ${elapsed} ms, before the timeout`);
    assert.equal(client.buffered.length, 0, "nothing is answered to a half request");
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("a connection that sends nothing is dropped after --handshake-timeout", async () => {
  const server = await startServer({ args: ["--handshake-timeout", "300ms"] });
  const client = await RawClient.connect(server.port);
  try {
    assert.equal(await client.closedWithin(3000), true, "the server drops TCP");
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("--subprotocol picks the first offered one it accepts (RFC 6455 §4.2.2 /subprotocol/)", async () => {
  const server = await startServer({ args: ["--subprotocol", "v2", "--subprotocol", "v1"] });
  try {
    const ask = async (offer: string | null) => {
      const client = await RawClient.connect(server.port);
      try {
        await client.write(upgradeRequest({ headers: { "Sec-WebSocket-Protocol": offer } }));
        const res = await client.readResponse();
        assert.equal(res.status, 101);
        return res.headers.get("sec-websocket-protocol");
      } finally {
        client.close();
      }
    };
    // The server's order of preference wins over the client's.
    assert.equal(await ask("v1, v2"), "v2");
    assert.equal(await ask("v1"), "v1");
    assert.equal(await ask("v3"), undefined);
    assert.equal(await ask(null), undefined);
  } finally {
    await server.stop();
  }
});

Deno.test("--allowed-origin refuses other Origins with 403, then TCP closes (RFC 6455 §4.2.2, §10.2)", async () => {
  const server = await startServer({ args: ["--allowed-origin", "https://app.example"] });
  try {
    const ask = async (origin: string | null) => {
      const client = await RawClient.connect(server.port);
      try {
        await client.write(upgradeRequest({ headers: { Origin: origin } }));
        const res = await client.readResponse();
        if (res.status !== 101) {
          assert.equal(await client.closedWithin(3000), true, "the server closes TCP");
        }
        return res.status;
      } finally {
        client.close();
      }
    };
    assert.equal(await ask("https://app.example"), 101);
    assert.equal(await ask("https://evil.example"), 403);
    assert.equal(await ask(null), 403);
  } finally {
    await server.stop();
  }
});
