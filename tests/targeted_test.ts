// examples/targeted.ts end to end: signed tokens decide who may connect (401 otherwise), and
// each FIFO line reaches exactly the connections it names. The PHP helpers in
// examples/targeted.php are exercised too where a `php` binary exists.

import assert from "node:assert/strict";
import { type ServerProcess, startServer } from "./support/server_process.ts";
import { closeWs, connectWs, HttpRefusal, type WsClient } from "./support/ws_client.ts";
import { RawClient } from "./support/raw_client.ts";
import { toolFor } from "./support/tools.ts";

const SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const PHP_HELPERS = new URL("../examples/targeted.php", import.meta.url).pathname;
const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** Mints a token the way push_token() in targeted.php does. */
async function mint(
  payload: Record<string, unknown>,
  secret = SECRET,
): Promise<string> {
  const body = base64url(encoder.encode(JSON.stringify(payload)));
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(body));
  return `${body}.${base64url(new Uint8Array(signature))}`;
}

function inAnHour(): number {
  return Math.floor(Date.now() / 1000) + 3600;
}

function startTargeted(): Promise<ServerProcess> {
  return startServer({
    args: ["targeted"],
    permissions: ["--allow-net", "--allow-read", "--allow-env=PUSH_TOKEN_SECRET"],
    env: { PUSH_TOKEN_SECRET: SECRET },
  });
}

async function connectAs(
  server: ServerProcess,
  user: string,
  topics: string[],
): Promise<WsClient> {
  const token = await mint({ sub: user, topics, exp: inAnHour() });
  const client = await connectWs(server.port, `/push?token=${encodeURIComponent(token)}`);
  await client.roundTrip(); // registered for FIFO lines
  return client;
}

/** Every message up to and including `last`. */
async function receiveUntil(client: WsClient, last: string): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const message = String(await client.next());
    got.push(message);
    if (message === last) return got;
  }
}

Deno.test("targeted: a missing, forged, expired or malformed token is refused with 401", async () => {
  const server = await startTargeted();
  try {
    const forged = await mint(
      { sub: "42", exp: inAnHour() },
      "another-secret-of-enough-length-xyz",
    );
    const expired = await mint({ sub: "42", exp: Math.floor(Date.now() / 1000) - 1 });
    const noUser = await mint({ exp: inAnHour() });
    const valid = await mint({ sub: "42", exp: inAnHour() });
    const tampered = valid.replace(/^[^.]+/, base64url(encoder.encode('{"sub":"1","exp":9e9}')));
    for (const token of [null, "", "abc", forged, expired, noUser, tampered, `${valid}.x`]) {
      const path = token === null ? "/push" : `/push?token=${encodeURIComponent(token)}`;
      const { client, res } = await RawClient.handshake(server.port, { path });
      client.close();
      assert.equal(res.status, 401, `token ${token}`);
      assert.equal(res.body, "Invalid or expired token\n");
      await assert.rejects(connectWs(server.port, path), (e) => {
        assert.ok(e instanceof HttpRefusal);
        assert.equal(e.status, 401);
        return true;
      });
    }
    const { client, res } = await RawClient.handshake(server.port, {
      path: `/push?token=${valid}`,
    });
    client.close();
    assert.equal(res.status, 101);
  } finally {
    await server.stop();
  }
});

Deno.test("targeted: each FIFO line reaches exactly the users and topics it names", async () => {
  const server = await startTargeted();
  try {
    const ann1 = await connectAs(server, "42", ["news"]);
    const ann2 = await connectAs(server, "42", []); // a second tab of the same user
    const bob = await connectAs(server, "7", ["sport"]);
    const cy = await connectAs(server, "9", ["news", "sport"]);
    const everyone = JSON.stringify({ to: ["user:42", "user:7", "user:9"], data: "end" });
    await server.writeFifo(
      [
        JSON.stringify({ to: ["user:42"], data: { invoice: 1 } }),
        JSON.stringify({ topic: "news", data: "headline" }),
        JSON.stringify({ to: ["user:7", "topic:sport"], data: 3 }),
        JSON.stringify({ to: ["user:404"], data: "nobody" }),
        "not json",
        JSON.stringify({ to: "user:42", data: "not a list" }),
        JSON.stringify({ topic: "news", to: ["user:9"], data: "once" }),
        everyone,
      ].join("\n") + "\n",
    );
    const end = JSON.stringify("end");
    assert.deepEqual(await receiveUntil(ann1, end), ['{"invoice":1}', '"headline"', '"once"', end]);
    assert.deepEqual(await receiveUntil(ann2, end), ['{"invoice":1}', end]);
    assert.deepEqual(await receiveUntil(bob, end), ["3", end]);
    assert.deepEqual(await receiveUntil(cy, end), ['"headline"', "3", '"once"', end]);
    await server.waitForLog("targeted: dropped FIFO line (not JSON): not json");
    await server.waitForLog('targeted: dropped FIFO line ("to" is not a list of strings)');

    // A closed connection is forgotten; the user's other tab still gets messages.
    await closeWs(ann1);
    await server.writeFifo(JSON.stringify({ to: ["user:42", "topic:news"], data: "after" }) + "\n");
    assert.equal(await ann2.next(), '"after"');
    assert.equal(await cy.next(), '"after"');
    assert.deepEqual(ann1.pending(), []);
    for (const c of [ann2, bob, cy]) await closeWs(c);
  } finally {
    await server.stop();
  }
});

Deno.test("targeted: without PUSH_TOKEN_SECRET start-up stops with one line naming the variable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "push-targeted-" });
  try {
    await new Deno.Command("mkfifo", { args: [`${dir}/in.fifo`] }).output();
    const main = new URL("../main.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-net", "--allow-read", "--allow-env=PUSH_TOKEN_SECRET"]
        .concat([main, "--port", "0", "--fifo", `${dir}/in.fifo`, "targeted"]),
      env: { PUSH_TOKEN_SECRET: "" },
      stdin: "null",
      stderr: "piped",
      stdout: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2);
    assert.match(
      stderr,
      /^push-server: cannot load handlers file targeted: .*PUSH_TOKEN_SECRET must hold a secret of at least 32 characters( \(at [^)]+\))?\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Found on PATH first: in Deno 2.9.6 `new Deno.Command("php").output()` throws synchronously
// when php is missing, which would fail this whole module at load.
const php = toolFor("php", "targeted.php against the server (apt-get install -y php-cli)");

Deno.test({
  name: "targeted: push_token() and push_to() from targeted.php work against the server",
  ignore: php === null,
  fn: async () => {
    const server = await startTargeted();
    try {
      const runPhp = async (code: string) => {
        const out = await new Deno.Command(php!, {
          args: ["-r", `require ${JSON.stringify(PHP_HELPERS)}; ${code}`],
          env: { FIFO: server.fifo, PUSH_TOKEN_SECRET: SECRET },
          stderr: "piped",
          stdout: "piped",
        }).output();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
        return new TextDecoder().decode(out.stdout);
      };
      const token = await runPhp(
        `echo push_token("42", ["news"], 60, getenv("PUSH_TOKEN_SECRET"));`,
      );
      const client = await connectWs(server.port, `/?token=${encodeURIComponent(token)}`);
      await client.roundTrip(); // registered for FIFO lines
      const other = await connectAs(server, "7", []);
      assert.equal(
        await runPhp(`var_export(push_to(["user:42"], ["hello" => "wörld"], getenv("FIFO")));`),
        "true",
      );
      assert.equal(await runPhp(`var_export(push_topic("news", "n", getenv("FIFO")));`), "true");
      assert.equal(await client.next(), '{"hello":"wörld"}');
      assert.equal(await client.next(), '"n"');
      assert.deepEqual(other.pending(), []);
      await closeWs(client);
      await closeWs(other);
    } finally {
      await server.stop();
    }
  },
});
