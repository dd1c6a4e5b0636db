// Targeted delivery: each browser connects with a signed token, and each FIFO line names who
// gets it. The web application mints the tokens and writes the lines (see targeted.php); this
// file is the whole server side. Run it with the secret in PUSH_TOKEN_SECRET:
//
//   PUSH_TOKEN_SECRET=... deno run --allow-net --allow-read --allow-env=PUSH_TOKEN_SECRET \
//     main.ts --fifo /run/push/in.fifo targeted
//
// Token, in the query as ?token=...: base64url(JSON payload) "." base64url(HMAC-SHA256 of the
// first part, keyed with the secret). Payload: {"sub":"42","topics":["news"],"exp":1767225600}
// where exp is in Unix seconds. A connection is then addressed as "user:42" and "topic:news".
//
// FIFO lines, one JSON object each; the client receives JSON.stringify(data):
//   {"to":["user:42","user:7"],"data":{...}}   to those users (all their tabs)
//   {"topic":"news","data":{...}}              to everyone subscribed to the topic
// Both keys may be given; a connection matching several addresses gets the message once.

import type {
  CloseInfo,
  Connection,
  Server,
  UpgradeRequest,
  UpgradeResult,
} from "../lib/api/handlers.ts";

const SECRET_VARIABLE = "PUSH_TOKEN_SECRET";
const MIN_SECRET_LENGTH = 32;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a valid token says about its holder; becomes `connection.data`. */
interface Subscriber {
  readonly user: string;
  readonly topics: readonly string[];
}

const key = await crypto.subtle.importKey(
  "raw",
  encoder.encode(readSecret()),
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["verify"],
);

/** Connections by address ("user:42", "topic:news"). */
const byAddress = new Map<string, Set<Connection>>();

function readSecret(): string {
  // Asking first, rather than catching, keeps Deno from prompting on a terminal.
  const access = Deno.permissions.querySync({ name: "env", variable: SECRET_VARIABLE });
  if (access.state !== "granted") {
    throw new Error(`needs --allow-env=${SECRET_VARIABLE} to read the token secret`);
  }
  const secret = Deno.env.get(SECRET_VARIABLE);
  if (!secret || secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `${SECRET_VARIABLE} must hold a secret of at least ${MIN_SECRET_LENGTH} characters`,
    );
  }
  return secret;
}

export async function upgrade(request: UpgradeRequest): Promise<UpgradeResult> {
  const subscriber = await verifyToken(request.query.get("token") ?? "");
  if (!subscriber) return { reject: { status: 401, body: "Invalid or expired token" } };
  return { data: subscriber };
}

export function open(conn: Connection): void {
  for (const address of addressesOf(conn)) {
    let set = byAddress.get(address);
    if (!set) byAddress.set(address, set = new Set());
    set.add(conn);
  }
}

export function close(conn: Connection, _info: CloseInfo): void {
  for (const address of addressesOf(conn)) {
    const set = byAddress.get(address);
    set?.delete(conn);
    if (set?.size === 0) byAddress.delete(address);
  }
}

export function fifo(line: string, server: Server): void {
  const message = parseLine(line);
  if (typeof message === "string") {
    server.log.warn(`targeted: dropped FIFO line (${message}): ${line.slice(0, 80)}`);
    return;
  }
  const targets = new Set<Connection>();
  for (const address of message.addresses) {
    for (const conn of byAddress.get(address) ?? []) targets.add(conn);
  }
  if (targets.size === 0) return;
  // Encoded once, whoever and however many the recipients are.
  server.broadcast(message.payload, (conn) => targets.has(conn));
}

function addressesOf(conn: Connection): string[] {
  const subscriber = conn.data as Subscriber;
  return [`user:${subscriber.user}`, ...subscriber.topics.map((t) => `topic:${t}`)];
}

/** The addresses and the text to send, or why the line is unusable. */
function parseLine(line: string): { addresses: string[]; payload: string } | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (typeof value !== "object" || value === null || !("data" in value)) {
    return 'not an object with "data"';
  }
  const { to, topic, data } = value as { to?: unknown; topic?: unknown; data: unknown };
  const addresses: string[] = [];
  if (to !== undefined) {
    if (!Array.isArray(to) || !to.every((a) => typeof a === "string")) {
      return '"to" is not a list of strings';
    }
    addresses.push(...to);
  }
  if (topic !== undefined) {
    if (typeof topic !== "string") return '"topic" is not a string';
    addresses.push(`topic:${topic}`);
  }
  if (addresses.length === 0) return 'neither "to" nor "topic"';
  return { addresses, payload: JSON.stringify(data) };
}

/** Checks the signature (in constant time, by WebCrypto) and the expiry. */
async function verifyToken(token: string): Promise<Subscriber | null> {
  const parts = token.split(".");
  if (parts.length !== 2) return null;
  const signature = fromBase64Url(parts[1]);
  if (!signature) return null;
  const valid = await crypto.subtle.verify("HMAC", key, signature, encoder.encode(parts[0]));
  if (!valid) return null;
  const payloadBytes = fromBase64Url(parts[0]);
  if (!payloadBytes) return null;
  let payload: { sub?: unknown; topics?: unknown; exp?: unknown };
  try {
    payload = JSON.parse(decoder.decode(payloadBytes));
  } catch {
    return null;
  }
  const { sub, topics = [], exp } = payload ?? {};
  if (typeof sub !== "string" || sub === "") return null;
  if (typeof exp !== "number" || exp * 1000 <= Date.now()) return null;
  if (!Array.isArray(topics) || !topics.every((t) => typeof t === "string")) return null;
  return { user: sub, topics };
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
