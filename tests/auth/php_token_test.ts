// examples/push_token.php: push_mint_token() writes the claims lib/auth/token.ts checks, and its
// tokens verify. Needs a `php` binary (skips without one).

import assert from "node:assert/strict";
import { toolFor } from "../support/tools.ts";
import { verifyToken } from "../../lib/auth/token.ts";
import { mintToken } from "../../lib/auth/mint.ts";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";

const PHP = toolFor("php", "push_mint_token() from examples/push_token.php");
const HELPER = new URL("../../examples/push_token.php", import.meta.url).pathname;
const SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const KEY = new TextEncoder().encode(SECRET);
const NOW_S = 1_800_000_000;

async function php(code: string): Promise<{ ok: boolean; out: string; err: string }> {
  const result = await new Deno.Command(PHP!, {
    args: ["-r", `require ${JSON.stringify(HELPER)}; ${code}`],
    env: { PUSH_TOKEN_SECRET: SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { ok: result.success, out: text(result.stdout), err: text(result.stderr) };
}

Deno.test({
  name: "a token from push_mint_token() verifies: user, grants and expiry as minted",
  ignore: PHP === null,
  fn: async () => {
    const { ok, out, err } = await php(
      `echo push_mint_token(getenv('PUSH_TOKEN_SECRET'), '42', ['news', 'user:42', 'room.*'], 3600, ${NOW_S});`,
    );
    assert.ok(ok, err);
    const result = await verifyToken(out, { keys: { HS256: KEY }, now: NOW_S * 1000 });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.user, "42");
    assert.equal(result.expiresAt, (NOW_S + 3600) * 1000);
    assert.equal(result.grants.allows("room.7"), true);
    assert.equal(result.grants.allows("user:43"), false);
    const later = await verifyToken(out, { keys: { HS256: KEY }, now: (NOW_S + 3600) * 1000 });
    assert.deepEqual(later, {
      ok: false,
      code: PushCloseCode.TOKEN_EXPIRED,
      failure: "expired",
      reason: "token expired",
    });
  },
});

Deno.test({
  name:
    "push_mint_token() and mintToken() (behind `deno task token`) mint byte-identical tokens for the same claims",
  ignore: PHP === null,
  fn: async () => {
    const channels = ["news", "user:42", "café/ü", "a\u2028b"];
    const { ok, out, err } = await php(
      `echo push_mint_token(getenv('PUSH_TOKEN_SECRET'), '42', json_decode(${
        JSON.stringify(JSON.stringify(channels))
      }), 90, ${NOW_S});`,
    );
    assert.ok(ok, err);
    assert.equal(
      out,
      await mintToken(KEY, { sub: "42", channels, ttl: 90, now: NOW_S * 1000 }),
    );
  },
});

Deno.test({
  name: "push_mint_token() refuses a secret under 32 bytes",
  ignore: PHP === null,
  fn: async () => {
    const { ok, err } = await php(`push_mint_token('short', '42', [], 60);`);
    assert.equal(ok, false);
    assert.match(err, /the secret must be at least 32 bytes/);
  },
});
