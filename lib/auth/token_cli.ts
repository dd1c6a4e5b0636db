// Mints a push-server token (HS256 JWT) for tests and demos:
//
//   PUSH_TOKEN_SECRET=... deno task token --sub 42 --channel news --channel 'user:42' --ttl 1h
//
// Prints the token and a newline. The secret comes from --secret or else PUSH_TOKEN_SECRET.

import { parseArgs } from "node:util";
import { secretKey, TOKEN_SECRET_VARIABLE } from "./keys.ts";
import { mintToken, parseTtl } from "./mint.ts";

const USAGE = `Usage: deno task token --sub <user> [--channel <grant>]... [--ttl <1h>] [--nbf <0s>]
  --sub      the user (the sub claim)
  --channel  a channel grant, repeatable: an exact name (news, user:42) or a prefix
             pattern ending in * (news.*, user:*, or * for every channel)
  --ttl      lifetime: 90 or 90s, 15m, 1h, 7d (default 1h)
  --nbf      not valid before now + this (default: valid at once)
  --secret   the HS256 secret (default: $${TOKEN_SECRET_VARIABLE})`;

function fail(message: string): never {
  console.error(`token: ${message}`);
  Deno.exit(2);
}

function main(args: string[]): Promise<string> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        sub: { type: "string" },
        channel: { type: "string", multiple: true },
        ttl: { type: "string", default: "1h" },
        nbf: { type: "string" },
        secret: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  if (parsed.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (parsed.sub === undefined || parsed.sub === "") fail("--sub <user> is required");
  const ttl = parseTtl(parsed.ttl);
  if (ttl === undefined) fail(`--ttl: expected a duration such as 90s, 15m, 1h or 7d`);
  const nbf = parsed.nbf === undefined ? undefined : parseTtl(parsed.nbf);
  if (parsed.nbf !== undefined && nbf === undefined) fail(`--nbf: expected a duration such as 5m`);
  const secret = parsed.secret ?? Deno.env.get(TOKEN_SECRET_VARIABLE) ?? "";
  if (secret === "") fail(`no secret: set ${TOKEN_SECRET_VARIABLE} or pass --secret`);
  const key = secretKey(secret);
  if (!key.ok) fail(key.message);
  return mintToken(key.key, {
    sub: parsed.sub,
    channels: parsed.channel ?? [],
    ttl,
    now: Date.now(),
    notBefore: nbf,
  });
}

if (import.meta.main) console.log(await main(Deno.args));
