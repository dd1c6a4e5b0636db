// lib/auth/token_cli.ts (`deno task token`): mints a token the server accepts; bad input is one line.

import assert from "node:assert/strict";
import { verifyToken } from "../../lib/auth/token.ts";

const SCRIPT = new URL("../../lib/auth/token_cli.ts", import.meta.url).pathname;
const SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-env=PUSH_TOKEN_SECRET", SCRIPT, ...args],
    env: { PUSH_TOKEN_SECRET: "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("deno task token: the secret from PUSH_TOKEN_SECRET, repeated --channel, --ttl", async () => {
  const before = Date.now();
  const { code, stdout, stderr } = await run(
    ["--sub", "42", "--channel", "news", "--channel", "user:*", "--ttl", "15m"],
    { PUSH_TOKEN_SECRET: SECRET },
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const result = await verifyToken(stdout.trim(), {
    keys: { HS256: new TextEncoder().encode(SECRET) },
    now: Date.now(),
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.user, "42");
  assert.deepEqual(result.grants.toList(), ["news", "user:*"]);
  assert.ok(result.expiresAt >= Math.floor(before / 1000) * 1000 + 900_000);
  assert.ok(result.expiresAt <= Date.now() + 900_000);
});

Deno.test("deno task token: --secret wins over the environment", async () => {
  const { code, stdout } = await run(["--sub", "a", "--secret", SECRET], {
    PUSH_TOKEN_SECRET: "another-secret-that-is-long-enough-000",
  });
  assert.equal(code, 0);
  const result = await verifyToken(stdout.trim(), {
    keys: { HS256: new TextEncoder().encode(SECRET) },
    now: Date.now(),
  });
  assert.ok(result.ok);
});

Deno.test("deno task token: a missing --sub, secret or bad --ttl is one line on stderr, exit 2", async () => {
  const cases: [string[], Record<string, string>, string][] = [
    [["--channel", "news"], { PUSH_TOKEN_SECRET: SECRET }, "token: --sub <user> is required\n"],
    [["--sub", "42"], {}, "token: no secret: set PUSH_TOKEN_SECRET or pass --secret\n"],
    [
      ["--sub", "42", "--secret", "short"],
      {},
      "token: --token-secret / PUSH_TOKEN_SECRET must hold a secret of at least 32 characters\n",
    ],
    [
      ["--sub", "42", "--ttl", "soon"],
      { PUSH_TOKEN_SECRET: SECRET },
      "token: --ttl: expected a duration such as 90s, 15m, 1h or 7d\n",
    ],
  ];
  for (const [args, env, message] of cases) {
    const { code, stdout, stderr } = await run(args, env);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stdout, "");
    assert.equal(stderr, message);
  }
});
