// lib/auth/token.ts and lib/auth/keys.ts: each token a client may present, and the close code and
// reason it sees when the token is refused (4003 UNAUTHORIZED, 4004 TOKEN_EXPIRED).

import assert from "node:assert/strict";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { PushCloseCode } from "../../lib/protocol/close_codes.ts";
import { type TokenKeys, type TokenResult, verifyToken } from "../../lib/auth/token.ts";
import { loadTokenKeys, publicKey, secretKey } from "../../lib/auth/keys.ts";
import { mintToken, parseTtl } from "../../lib/auth/mint.ts";

const SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const KEY = new TextEncoder().encode(SECRET);
const KEYS: TokenKeys = { HS256: KEY };
/** A fixed "now": 2027-01-15T08:00:00Z. */
const NOW = 1_800_000_000_000;
const HOUR = 3600;

function mint(options: Partial<Parameters<typeof mintToken>[1]> = {}): Promise<string> {
  return mintToken(KEY, {
    sub: "42",
    channels: ["news", "user:42"],
    ttl: HOUR,
    now: NOW,
    ...options,
  });
}

/** A token with exactly these claims, HS256 with the test secret unless told otherwise. */
function raw(claims: Record<string, unknown>, key: Uint8Array = KEY): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(key);
}

function refused(code: number, reason: string) {
  return (result: TokenResult) => {
    assert.equal(result.ok, false, "the token should be refused");
    if (result.ok) return;
    assert.equal(result.code, code);
    assert.equal(result.reason, reason);
  };
}

const unauthorized = (reason: string) => refused(PushCloseCode.UNAUTHORIZED, reason);

Deno.test("HS256: a valid token gives the user, the grants and the expiry in ms", async () => {
  const result = await verifyToken(await mint(), { keys: KEYS, now: NOW });
  assert.ok(result.ok);
  assert.equal(result.user, "42");
  assert.deepEqual(result.grants.toList(), ["news", "user:42"]);
  assert.equal(result.expiresAt, NOW + HOUR * 1000);
  assert.equal(result.grants.allows("news"), true);
});

Deno.test("HS256: a token signed with another secret is refused: 4003 token signature invalid", async () => {
  const other = new TextEncoder().encode(`${SECRET}-other`);
  unauthorized("token signature invalid")(
    await verifyToken(await mintToken(other, { sub: "42", channels: [], ttl: HOUR, now: NOW }), {
      keys: KEYS,
      now: NOW,
    }),
  );
});

Deno.test("HS256: a token whose payload was changed is refused: 4003 token signature invalid", async () => {
  const [header, , signature] = (await mint()).split(".");
  const forged = btoa(JSON.stringify({ sub: "1", channels: ["*"], exp: 2e9 }))
    .replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  unauthorized("token signature invalid")(
    await verifyToken(`${header}.${forged}.${signature}`, { keys: KEYS, now: NOW }),
  );
});

Deno.test("an expired token is refused: 4004 token expired (RFC 7519 §4.1.4)", async () => {
  const token = await mint({ ttl: 60 });
  refused(PushCloseCode.TOKEN_EXPIRED, "token expired")(
    await verifyToken(token, { keys: KEYS, now: NOW + 60_000 }),
  );
  // One millisecond before exp it is still valid; a clock tolerance stretches it.
  assert.ok((await verifyToken(token, { keys: KEYS, now: NOW + 59_999 })).ok);
  assert.ok((await verifyToken(token, { keys: KEYS, now: NOW + 60_000, clockTolerance: 5 })).ok);
});

Deno.test("a token used before nbf is refused: 4003 token not yet valid (RFC 7519 §4.1.5)", async () => {
  const token = await mint({ notBefore: 60 });
  unauthorized("token not yet valid")(await verifyToken(token, { keys: KEYS, now: NOW }));
  assert.ok((await verifyToken(token, { keys: KEYS, now: NOW + 60_000 })).ok);
});

Deno.test("missing or ill-typed claims are refused: 4003 naming the claim", async () => {
  const exp = NOW / 1000 + HOUR;
  const cases: [Record<string, unknown>, string][] = [
    [{ sub: "42", channels: [] }, "token claim exp missing"],
    [{ channels: [], exp }, "token claim sub missing"],
    [{ sub: "42", exp }, "token claim channels missing"],
    [{ sub: "", channels: [], exp }, "token claim sub is not a non-empty string"],
    [{ sub: 42, channels: [], exp }, "token claim sub is not a non-empty string"],
    [{ sub: "x".repeat(257), channels: [], exp }, "token claim sub is over 256 characters"],
    [{ sub: "42", channels: "news", exp }, "token claim channels is not a list"],
    [
      { sub: "42", channels: ["a*b"], exp },
      "token claim channels holds a * that is not at the end",
    ],
    [{ sub: "42", channels: [], exp: "soon" }, "token claim exp invalid"],
    [{ sub: "42", channels: [], exp, nbf: "now" }, "token claim nbf invalid"],
  ];
  for (const [claims, reason] of cases) {
    unauthorized(reason)(await verifyToken(await raw(claims), { keys: KEYS, now: NOW }));
  }
});

Deno.test("no token, a non-string, garbage or an oversize token: 4003 with the reason", async () => {
  const check = async (token: unknown, reason: string) =>
    unauthorized(reason)(await verifyToken(token, { keys: KEYS, now: NOW }));
  await check(undefined, "token missing");
  await check("", "token missing");
  await check(42, "token missing");
  await check("abc", "token malformed");
  await check("a.b.c", "token malformed");
  await check(`${await mint()}.x`, "token malformed");
  await check("x".repeat(8193), "token too long");
});

Deno.test("alg none and an algorithm without a key are refused: 4003 token algorithm not accepted", async () => {
  const payload = btoa(JSON.stringify({ sub: "42", channels: ["*"], exp: NOW / 1000 + HOUR }))
    .replaceAll("=", "");
  const none = `${btoa(JSON.stringify({ alg: "none" })).replaceAll("=", "")}.${payload}.`;
  unauthorized("token algorithm not accepted")(await verifyToken(none, { keys: KEYS, now: NOW }));
  const { privateKey } = await generateKeyPair("ES256");
  const es = await mintToken(privateKey, { sub: "42", channels: [], ttl: HOUR, now: NOW });
  unauthorized("token algorithm not accepted")(await verifyToken(es, { keys: KEYS, now: NOW }));
});

for (const alg of ["RS256", "ES256"] as const) {
  Deno.test(`${alg}: a token signed with the private key verifies with the PEM public key`, async () => {
    const pair = await generateKeyPair(alg, { extractable: true });
    const pem = await exportSPKI(pair.publicKey);
    const loaded = await publicKey(pem);
    assert.ok(loaded.ok);
    assert.equal(loaded.algorithm, alg);
    const keys = { [alg]: loaded.key };
    const token = await mintToken(pair.privateKey, {
      sub: "7",
      channels: ["user:*"],
      ttl: 60,
      now: NOW,
    });
    assert.equal(JSON.parse(atob(token.split(".")[0])).alg, alg);
    const ok = await verifyToken(token, { keys, now: NOW });
    assert.ok(ok.ok);
    assert.equal(ok.user, "7");
    assert.equal(ok.grants.allows("user:7"), true);
    refused(PushCloseCode.TOKEN_EXPIRED, "token expired")(
      await verifyToken(token, { keys, now: NOW + 61_000 }),
    );
    // Another key pair's signature fails; an HS256 token is not checked against the public key.
    const stranger = await generateKeyPair(alg);
    unauthorized("token signature invalid")(
      await verifyToken(
        await mintToken(stranger.privateKey, { sub: "7", channels: [], ttl: 60, now: NOW }),
        { keys, now: NOW },
      ),
    );
    unauthorized("token algorithm not accepted")(
      await verifyToken(await mint(), { keys, now: NOW }),
    );
  });
}

Deno.test("loadTokenKeys: a PEM file and a secret together accept both algorithms", async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  const file = await Deno.makeTempFile({ suffix: ".pem" });
  try {
    await Deno.writeTextFile(file, await exportSPKI(pair.publicKey));
    const loaded = await loadTokenKeys({ secret: SECRET, publicKeyFile: file });
    assert.ok(loaded?.ok);
    const es = await mintToken(pair.privateKey, { sub: "a", channels: [], ttl: 60, now: NOW });
    assert.ok((await verifyToken(es, { keys: loaded.keys, now: NOW })).ok);
    assert.ok((await verifyToken(await mint(), { keys: loaded.keys, now: NOW })).ok);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("loadTokenKeys: nothing configured is undefined; bad sources are one-line errors", async () => {
  assert.equal(await loadTokenKeys({}), undefined);
  assert.equal(await loadTokenKeys({ secret: "", publicKeyFile: "" }), undefined);
  assert.deepEqual(await loadTokenKeys({ secret: "short" }), {
    ok: false,
    message: "--token-secret / PUSH_TOKEN_SECRET must hold a secret of at least 32 characters",
  });
  assert.deepEqual(await loadTokenKeys({ publicKeyFile: "/nonexistent/key.pem" }), {
    ok: false,
    message: "--token-public-key /nonexistent/key.pem: no such file",
  });
  const file = await Deno.makeTempFile({ suffix: ".pem" });
  try {
    await Deno.writeTextFile(file, "hello\n");
    const bad = await loadTokenKeys({ publicKeyFile: file });
    assert.ok(bad && !bad.ok);
    assert.match(bad.message, /: expected a PEM public key \(BEGIN PUBLIC KEY\)/);
    await Deno.writeTextFile(file, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    const garbled = await loadTokenKeys({ publicKeyFile: file });
    assert.deepEqual(garbled, {
      ok: false,
      message: `--token-public-key ${file}: not an RSA or P-256 public key`,
    });
  } finally {
    await Deno.remove(file);
  }
  assert.equal(secretKey("x".repeat(32)).ok, true);
});

Deno.test("parseTtl reads seconds, minutes, hours and days, and nothing else", () => {
  assert.equal(parseTtl("90"), 90);
  assert.equal(parseTtl("90s"), 90);
  assert.equal(parseTtl("15m"), 900);
  assert.equal(parseTtl("1h"), 3600);
  assert.equal(parseTtl("7d"), 604800);
  for (const bad of ["", "0", "1.5h", "-1", "1w", "h"]) assert.equal(parseTtl(bad), undefined, bad);
});
