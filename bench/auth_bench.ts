// Micro-benchmarks of authorization and presence (`deno bench bench/auth_bench.ts`): verifying a
// token with each algorithm (once per connection, and again at each refresh), checking a grant
// (once per subscribe), and a presence join plus leave (once per subscribe and unsubscribe).

import { generateKeyPair } from "jose";
import { verifyToken } from "../lib/auth/token.ts";
import { mintToken } from "../lib/auth/mint.ts";
import { parseGrants } from "../lib/policy/grants.ts";
import { Presence } from "../lib/channels/presence.ts";

const NOW = 1_800_000_000_000;
const CHANNELS = ["news", "user:42", "room.*", "team.7.*"];
const SECRET = new TextEncoder().encode("bench-secret-0123456789abcdefghijklmnop");
const hs = await mintToken(SECRET, { sub: "42", channels: CHANNELS, ttl: 3600, now: NOW });
const es = await generateKeyPair("ES256");
const esToken = await mintToken(es.privateKey, {
  sub: "42",
  channels: CHANNELS,
  ttl: 3600,
  now: NOW,
});
const rs = await generateKeyPair("RS256");
const rsToken = await mintToken(rs.privateKey, {
  sub: "42",
  channels: CHANNELS,
  ttl: 3600,
  now: NOW,
});

Deno.bench("verifyToken HS256", { group: "verify", baseline: true }, async () => {
  await verifyToken(hs, { keys: { HS256: SECRET }, now: NOW });
});
Deno.bench("verifyToken ES256", { group: "verify" }, async () => {
  await verifyToken(esToken, { keys: { ES256: es.publicKey }, now: NOW });
});
Deno.bench("verifyToken RS256 (2048-bit)", { group: "verify" }, async () => {
  await verifyToken(rsToken, { keys: { RS256: rs.publicKey }, now: NOW });
});

const parsed = parseGrants(CHANNELS);
if (!parsed.ok) throw new Error("bench grants do not parse");
const grants = parsed.grants;
Deno.bench("Grants.allows (4 grants, pattern hit)", () => {
  grants.allows("team.7.general");
});

const presence = new Presence<number>();
for (let i = 0; i < 10_000; i++) presence.add(i, { channel: "lobby", user: `u${i % 5000}` });
let next = 0;
Deno.bench("Presence join + leave of a new user on a channel of 10,000 connections", () => {
  // A new connection and user each time, as in real traffic. (One key set and deleted over and
  // over in a large Map is O(size) in V8 until the table is rehashed; that is not this case.)
  const conn = 10_000 + next++;
  presence.add(conn, { channel: "lobby", user: `n${conn}` });
  presence.remove(conn, "lobby");
});
