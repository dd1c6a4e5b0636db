// W1 for channels: how fast push-server delivers a burst of FIFO lines to N clients as a plain
// broadcast versus as publications on one channel that all N clients subscribe to (push.v1, with
// durable history in a temporary --state-dir), in the same run against the same server process.
// Prints each repetition, the medians and the ratio channel/broadcast (the issue asks ≥ 0.9).
//
//   deno run --allow-all bench/channels_w1.ts [--clients 1000] [--lines 500] [--reps 5]
//                                             [--warmup 2] [--memory]
//
// `--memory` runs the server without --allow-write, so history stays in memory (to tell the cost
// of the SQLite commit from the cost of the fan-out).
//
// The server is pinned to core 0 and this process (the clients) to core 1 when `taskset` exists.
// The clients are raw sockets that parse frame headers only, so their cost is the same per
// message in both modes; a channel message is longer on the wire (the publication envelope).

import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SERVER_CORE = "0";
const CLIENT_CORE = "1";
const LINE_BYTES = 100;
const OPCODE_TEXT = 0x1;
const CHANNEL = "w1";
const READ_BUFFER = 64 * 1024;
const RUN_TIMEOUT_MS = 60_000;
const encoder = new TextEncoder();

const args = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "1000" },
    lines: { type: "string", default: "500" },
    reps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    pinned: { type: "boolean", default: false },
    memory: { type: "boolean", default: false },
  },
});
const CLIENTS = Number(args.values.clients);
const LINES = Number(args.values.lines);
const REPS = Number(args.values.reps);
/** Untimed pairs of bursts first, so both modes are measured with the server's code compiled. */
const WARMUP = Number(args.values.warmup);

function hasTaskset(): boolean {
  try {
    return new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

// Re-run this script pinned to the client core, once.
if (!args.values.pinned && hasTaskset()) {
  const self = new Deno.Command("taskset", {
    args: [
      "-c",
      CLIENT_CORE,
      Deno.execPath(),
      "run",
      "--allow-all",
      import.meta.filename!,
      "--pinned",
      ...Deno.args,
    ],
  }).spawn();
  Deno.exit((await self.status).code);
}

/** Counts text messages on one connection by reading frame headers (server frames are unmasked). */
class Counter {
  count = 0;
  #pending = 0; // payload bytes of the current frame still to skip
  #head = new Uint8Array(14);
  #headLength = 0;

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.#pending > 0) {
        const skip = Math.min(this.#pending, bytes.length - i);
        this.#pending -= skip;
        i += skip;
        continue;
      }
      this.#head[this.#headLength++] = bytes[i++];
      const need = this.#headLength < 2 ? 2 : headerLength(this.#head[1]);
      if (this.#headLength < need) continue;
      const opcode = this.#head[0] & 0x0f;
      this.#pending = payloadLength(this.#head);
      this.#headLength = 0;
      if (opcode === OPCODE_TEXT) this.count++;
    }
  }
}

function headerLength(second: number): number {
  const len = second & 0x7f;
  return len === 126 ? 4 : len === 127 ? 10 : 2;
}

function payloadLength(head: Uint8Array): number {
  const len = head[1] & 0x7f;
  if (len === 126) return (head[2] << 8) | head[3];
  if (len === 127) return Number(new DataView(head.buffer).getBigUint64(2));
  return len;
}

/** A masked client text frame (mask 0: the XOR changes nothing). */
function clientFrame(text: string): Uint8Array {
  const payload = encoder.encode(text);
  if (payload.length >= 126) throw new Error("bench frames are short");
  return new Uint8Array([0x81, 0x80 | payload.length, 0, 0, 0, 0, ...payload]);
}

interface Client {
  readonly conn: Deno.TcpConn;
  readonly counter: Counter;
}

async function connect(port: number, pushV1: boolean): Promise<Client> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const protocol = pushV1 ? "Sec-WebSocket-Protocol: push.v1\r\n" : "";
  await conn.write(encoder.encode(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${protocol}\r\n`,
  ));
  let head = new Uint8Array(0);
  const buffer = new Uint8Array(READ_BUFFER);
  let end = -1;
  while (end < 0) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("closed during the handshake");
    head = new Uint8Array([...head, ...buffer.subarray(0, n)]);
    end = new TextDecoder().decode(head).indexOf("\r\n\r\n");
  }
  const text = new TextDecoder().decode(head);
  if (!text.startsWith("HTTP/1.1 101")) throw new Error(`refused: ${text.split("\r\n")[0]}`);
  const counter = new Counter();
  counter.feed(head.subarray(end + 4));
  if (pushV1) {
    await conn.write(clientFrame(JSON.stringify({ op: "subscribe", channels: { [CHANNEL]: {} } })));
  }
  const client = { conn, counter };
  read(client, buffer);
  return client;
}

let wake: (() => void) | null = null;

async function read(client: Client, buffer: Uint8Array): Promise<void> {
  try {
    for (;;) {
      const n = await client.conn.read(buffer);
      if (n === null) return;
      client.counter.feed(buffer.subarray(0, n));
      wake?.();
    }
  } catch {
    // Closed by us.
  }
}

async function waitFor(done: () => boolean): Promise<void> {
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the clients");
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 50);
    });
  }
  wake = null;
}

async function connectAll(port: number, pushV1: boolean): Promise<Client[]> {
  const clients: Client[] = [];
  const BATCH = 100;
  for (let i = 0; i < CLIENTS; i += BATCH) {
    const batch = Math.min(BATCH, CLIENTS - i);
    clients.push(...await Promise.all(Array.from({ length: batch }, () => connect(port, pushV1))));
  }
  // push.v1: the `subscribed` reply is each client's first message.
  if (pushV1) await waitFor(() => clients.every((c) => c.counter.count >= 1));
  return clients;
}

function plainLine(n: number): string {
  return `${String(n).padStart(8, "0")} ${"x".repeat(LINE_BYTES - 10)}\n`;
}

function channelLine(n: number): string {
  const prefix = JSON.stringify({ channel: CHANNEL, data: "" });
  const data = `${String(n).padStart(8, "0")} ${"x".repeat(LINE_BYTES - prefix.length - 10)}`;
  return JSON.stringify({ channel: CHANNEL, data }) + "\n";
}

async function writeFifo(fifo: string, text: string): Promise<void> {
  const file = await Deno.open(fifo, { write: true });
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
  file.close();
}

/** One burst: LINES lines to CLIENTS clients; delivered messages per second. */
async function burst(
  { port, fifo, pushV1 }: { port: number; fifo: string; pushV1: boolean },
): Promise<number> {
  const clients = await connectAll(port, pushV1);
  const base = clients.map((c) => c.counter.count);
  let text = "";
  for (let n = 0; n < LINES; n++) text += pushV1 ? channelLine(n) : plainLine(n);
  const started = performance.now();
  await writeFifo(fifo, text);
  await waitFor(() => clients.every((c, i) => c.counter.count - base[i] >= LINES));
  const seconds = (performance.now() - started) / 1000;
  for (const c of clients) c.conn.close();
  return (CLIENTS * LINES) / seconds;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-bench-channels-" });
  const fifo = `${dir}/in.fifo`;
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  const serverArgs = [
    "run",
    "--quiet",
    "--allow-net",
    "--allow-read",
    // Without --allow-write the server keeps history in memory only (--memory).
    ...(args.values.memory ? [] : ["--allow-write"]),
    "--allow-sys",
    `${ROOT}/main.ts`,
    ...["--port", "0", "--fifo", fifo, "--state-dir", `${dir}/state`, "--log-level", "info"],
  ];
  const child = new Deno.Command(hasTaskset() ? "taskset" : Deno.execPath(), {
    args: hasTaskset() ? ["-c", SERVER_CORE, Deno.execPath(), ...serverArgs] : serverArgs,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server did not start: ${log}`);
    log += value;
    const m = /listening on [^\s]+:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
  }
  (async () => {
    for (;;) if ((await reader.read()).done) return;
  })();
  const durable = !/memory only/i.test(log);
  console.log(
    `channels W1: ${CLIENTS} clients, ${LINES} lines of ${LINE_BYTES} B, ${REPS} reps, ` +
      `${WARMUP} warm-up pairs, history ${durable ? "durable (SQLite)" : "in memory"}`,
  );
  const results = { broadcast: [] as number[], channel: [] as number[] };
  try {
    for (let i = 0; i < WARMUP; i++) {
      await burst({ port, fifo, pushV1: false });
      await burst({ port, fifo, pushV1: true });
    }
    for (let rep = 1; rep <= REPS; rep++) {
      // Alternate the order so that neither mode always runs on a warmer server.
      const order = rep % 2 ? [false, true] : [true, false];
      for (const pushV1 of order) {
        const rate = await burst({ port, fifo, pushV1 });
        results[pushV1 ? "channel" : "broadcast"].push(rate);
        console.log(
          `rep ${rep} ${pushV1 ? "channel  " : "broadcast"} ${(rate / 1e6).toFixed(2)}M msg/s`,
        );
      }
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
  const b = median(results.broadcast);
  const c = median(results.channel);
  console.log(
    `median broadcast ${(b / 1e6).toFixed(2)}M msg/s (${fmtRange(results.broadcast)}), ` +
      `channel ${(c / 1e6).toFixed(2)}M msg/s (${fmtRange(results.channel)}); ` +
      `channel/broadcast = ${(c / b).toFixed(2)}`,
  );
}

function fmtRange(values: number[]): string {
  return `${(Math.min(...values) / 1e6).toFixed(2)}–${(Math.max(...values) / 1e6).toFixed(2)}M`;
}

await main();
