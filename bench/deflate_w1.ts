// W1 with compression (issue 15): N clients that offer permessage-deflate, L FIFO lines of 4 KiB
// JSON broadcast to all of them, run with --compression off and then on. Reports delivered
// msg/s, server CPU (from /proc) and bytes on the wire. Clients count frames and bytes only;
// they do not inflate, so the client side stays cheap. The server's own counter
// (push_compressed_messages_total on /metrics) shows how many times it ran deflate: once per
// line, whatever the number of clients.
//
// The clients and the server share one machine, so the client side bounds msg/s.
//
//   deno run --allow-all bench/deflate_w1.ts [--clients 1000] [--lines 200] [--line-bytes 4096]

import { parseArgs } from "node:util";
import { startServer } from "../tests/support/server_process.ts";

const args = parseArgs({
  options: {
    clients: { type: "string", default: "1000" },
    lines: { type: "string", default: "200" },
    "line-bytes": { type: "string", default: "4096" },
  },
});
const CLIENTS = Number(args.values.clients);
const LINES = Number(args.values.lines);
const LINE_BYTES = Number(args.values["line-bytes"]);
const CONNECT_BATCH = 100;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * A deterministic JSON line of exactly `size` bytes, different for each `seq`. It is valid JSON
 * without a command key, so the server broadcasts it (lib/channels/commands.ts: a line that
 * starts with `{` and does not parse is dropped).
 */
function jsonLine(seq: number, size: number): string {
  const head = `{"seq":${seq},"events":[`;
  const events: string[] = [];
  for (let i = 0;; i++) {
    const id = (seq * 7919 + i * 104729) % 1000003;
    const event = `{"id":${id},"type":"price","sym":"S${id % 97}","px":${(id % 10007) / 100},` +
      `"at":"2026-12-02T13:${String(i % 60).padStart(2, "0")}:00Z"}`;
    const next = [...events, event];
    if (head.length + next.join(",").length + PAD_OVERHEAD > size) break;
    events.push(event);
  }
  const body = head + events.join(",");
  return body + `],"pad":"${"x".repeat(size - body.length - PAD_OVERHEAD)}"}`;
}
/** The bytes `],"pad":""}` add around the padding. */
const PAD_OVERHEAD = 11;

function serverCpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

const REQUEST = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; " +
  "client_max_window_bits\r\n\r\n";

/** One client: completes the handshake, then counts frames and bytes until `want` frames. */
class Client {
  readonly #conn: Deno.TcpConn;
  bytes = 0;
  frames = 0;
  compressed = 0;
  #buf = new Uint8Array(0);
  #headDone = false;
  #onFrames: (() => void) | null = null;
  want = Infinity;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<Client> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(REQUEST));
    const c = new Client(conn);
    c.#read();
    return c;
  }

  done(): Promise<void> {
    if (this.frames >= this.want) return Promise.resolve();
    return new Promise((resolve) => (this.#onFrames = resolve));
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(256 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      this.bytes += n;
      const joined = new Uint8Array(this.#buf.length + n);
      joined.set(this.#buf);
      joined.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = joined;
      this.#parse();
    }
  }

  #parse(): void {
    let pos = 0;
    const b = this.#buf;
    if (!this.#headDone) {
      const end = new TextDecoder().decode(b).indexOf("\r\n\r\n");
      if (end < 0) return;
      this.#headDone = true;
      pos = end + 4;
    }
    while (b.length - pos >= 2) {
      let len = b[pos + 1] & 0x7f;
      let head = 2;
      if (len === 126) {
        if (b.length - pos < 4) break;
        len = (b[pos + 2] << 8) | b[pos + 3];
        head = 4;
      } else if (len === 127) {
        if (b.length - pos < 10) break;
        len = new DataView(b.buffer, b.byteOffset + pos + 6, 4).getUint32(0);
        head = 10;
      }
      if (b.length - pos < head + len) break;
      if ((b[pos] & 0x40) !== 0) this.compressed++;
      this.frames++;
      pos += head + len;
    }
    this.#buf = b.slice(pos);
    if (this.frames >= this.want && this.#onFrames) {
      this.#onFrames();
      this.#onFrames = null;
    }
  }
}

async function runOnce(compression: "on" | "off", lines: string[]) {
  const server = await startServer({
    args: ["--compression", compression, "--admin-listen", "127.0.0.1:0"],
    logLevel: "info",
  });
  const clients: Client[] = [];
  try {
    for (let i = 0; i < CLIENTS; i += CONNECT_BATCH) {
      const batch = Math.min(CONNECT_BATCH, CLIENTS - i);
      clients.push(
        ...await Promise.all(Array.from({ length: batch }, () => Client.open(server.port))),
      );
    }
    // Warm-up: one line reaches everyone, so every handshake is done before the clock starts.
    for (const c of clients) c.want = 1;
    await server.writeFifo("warm\n");
    await Promise.all(clients.map((c) => c.done()));
    const bytes0 = clients.reduce((n, c) => n + c.bytes, 0);
    for (const c of clients) c.want = 1 + lines.length;
    const cpu0 = serverCpuSeconds(server.process.pid);
    const t0 = performance.now();
    await server.writeFifo(lines.join("\n") + "\n");
    await Promise.all(clients.map((c) => c.done()));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = serverCpuSeconds(server.process.pid) - cpu0;
    const bytes = clients.reduce((n, c) => n + c.bytes, 0) - bytes0;
    const delivered = CLIENTS * lines.length;
    const compressed = clients.reduce((n, c) => n + c.compressed, 0);
    const deflateRuns = await compressionsCounted(server.stderr());
    return { compression, delivered, seconds, cpu, bytes, compressed, deflateRuns };
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}

/** push_compressed_messages_total from the server's /metrics (its admin port is in its log). */
async function compressionsCounted(log: string): Promise<number> {
  const port = /admin listener on http:\/\/[^:]+:(\d+)\//.exec(log)?.[1];
  if (!port) throw new Error("the server did not log its admin listener");
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = /^push_compressed_messages_total (\d+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error("no push_compressed_messages_total on /metrics");
  return Number(value);
}

const lines = Array.from({ length: LINES }, (_, i) => jsonLine(i, LINE_BYTES));
console.log(`W1: ${CLIENTS} clients, ${LINES} lines of ${LINE_BYTES} B JSON`);
for (const compression of ["off", "on"] as const) {
  const r = await runOnce(compression, lines);
  console.log(
    `compression ${r.compression}: ${Math.round(r.delivered / r.seconds)} msg/s delivered ` +
      `(${r.delivered} in ${r.seconds.toFixed(2)} s), server CPU ${r.cpu.toFixed(2)} s ` +
      `(${(100 * r.cpu / r.seconds).toFixed(0)}%), ${(r.bytes / 1e6).toFixed(1)} MB on the wire ` +
      `(${(r.bytes / r.delivered).toFixed(0)} B/msg), ${r.compressed} frames compressed, ` +
      `deflate run ${r.deflateRuns} times by the server`,
  );
}
