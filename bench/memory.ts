// Owns the memory benchmark (`deno task bench:memory`): starts the real server with the echo
// handlers, loads it in phases (1M echoed frames, 50,000 connect/close cycles, 2,000 connections
// held with pings) and prints its RSS after each phase against the warm baseline, with the
// V8 heap after a forced GC, so that live objects can be told from memory not returned.
//
// Options: --quick (a tenth of the load), --hold <seconds> (default 30), --settle <seconds>
// (wait before the settled figure, default 10), --no-gc (no forced GC), --smaps (where the
// RSS is at the end), --server-v8-flags <a,b> (extra V8 flags for the server), --keep-log.

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const HANDLERS = new URL("./memory_probe.ts", import.meta.url).pathname;
/** Asks the probe handlers for memory figures (same string in memory_probe.ts). */
const PROBE = "\u0000memory?";
/** RSS after load must come back within this factor of the warm baseline (issue 11). */
const RSS_LIMIT_FACTOR = 1.5;

const args = new Set(Deno.args);
const quick = args.has("--quick");
const scale = quick ? 0.1 : 1;
const holdArg = Deno.args.indexOf("--hold");
const HOLD_S = holdArg >= 0 ? Number(Deno.args[holdArg + 1]) : quick ? 5 : 30;
/**
 * How long to let the server settle after a phase before measuring again. V8 returns pooled
 * pages to the system 8 s after it stopped using them (--memory-pool-timeout), so give it 10.
 */
const settleArg = Deno.args.indexOf("--settle");
const SETTLE_MS = settleArg >= 0 ? Number(Deno.args[settleArg + 1]) * 1000 : 10_000;
/** Seconds of idle sampled at the end, and when to print them. */
const IDLE_S = 30;
const IDLE_MARKS = [1, 5, 10, 20, 30];
/** --no-gc: run the server as in production, without --expose-gc (no forced GC in the probe). */
const FORCE_GC = !args.has("--no-gc");
/** --server-v8-flags a,b: extra V8 flags for the server (to try heap settings). */
const v8Arg = Deno.args.indexOf("--server-v8-flags");
const SERVER_V8_FLAGS = v8Arg >= 0 ? Deno.args[v8Arg + 1].split(",") : [];

const ECHO_CONNECTIONS = 50;
const ECHO_FRAMES = Math.round(1_000_000 * scale);
const ECHO_WINDOW = 100;
const ECHO_PAYLOAD = 16;
const CYCLES = Math.round(50_000 * scale);
const CYCLE_PARALLEL = 50;
const HOLD_CONNECTIONS = Math.round(2_000 * (quick ? 0.5 : 1));
const HOLD_PING_MS = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

// ---- A minimal raw WebSocket client -------------------------------------------------------

const MASK = new Uint8Array([0x11, 0x22, 0x33, 0x44]);

/** One masked client frame with a payload under 64 KiB. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const extra = n < 126 ? 0 : 2;
  const out = new Uint8Array(2 + extra + 4 + n);
  out[0] = 0x80 | opcode;
  if (extra) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | n;
  }
  out.set(MASK, 2 + extra);
  for (let i = 0; i < n; i++) out[6 + extra + i] = payload[i] ^ MASK[i & 3];
  return out;
}

const CLOSE_NORMAL = frame(OP_CLOSE, new Uint8Array([0x03, 0xe8]));

interface Received {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** A raw client whose read loop answers pings and counts or hands over data frames. */
class Client {
  readonly #conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #waiter: (() => void) | null = null;
  #frames: Received[] = [];
  dataFrames = 0;
  /** Keep data frames for `nextKept` (the probe's answer) instead of only counting them. */
  keep = false;
  closed = false;
  closeSeen = false;
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.done = this.#readLoop();
  }

  static async open(port: number): Promise<Client> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await writeAll(
      conn,
      encoder.encode(
        `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    // Read the 101 head byte-exactly before the frame loop takes over.
    let head: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) throw new Error("server closed during the handshake");
      head = concat(head, chunk.subarray(0, n));
      const end = indexOfHeadEnd(head);
      if (end < 0) continue;
      const status = decoder.decode(head.subarray(0, 12));
      if (!status.startsWith("HTTP/1.1 101")) throw new Error(`handshake: ${status}`);
      const client = new Client(conn);
      client.#buf = head.slice(end);
      return client;
    }
  }

  send(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#conn, bytes);
  }

  /** Waits until `count` data frames have arrived in all. */
  async waitData(count: number): Promise<void> {
    while (this.dataFrames < count && !this.closed) await this.#next();
    if (this.dataFrames < count) throw new Error("connection closed before the echoes came");
  }

  /** The next data frame, kept (for the probe). */
  async nextKept(): Promise<Received> {
    while (this.#frames.length === 0 && !this.closed) await this.#next();
    const f = this.#frames.shift();
    if (!f) throw new Error("connection closed");
    return f;
  }

  /** Sends Close 1000 and waits for the server's Close and the end of TCP. */
  async closeHandshake(): Promise<void> {
    await this.send(CLOSE_NORMAL).catch(() => {});
    await this.done;
    this.#conn.close();
  }

  abort(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  #next(): Promise<void> {
    return new Promise((resolve) => this.#waiter = resolve);
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      this.#parse();
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        this.#buf = this.#buf.length ? concat(this.#buf, chunk.subarray(0, n)) : chunk.slice(0, n);
        this.#parse();
        this.#wake();
      }
    } catch { /* reset */ }
    this.closed = true;
    this.#wake();
  }

  #parse(): void {
    let at = 0;
    const b = this.#buf;
    while (b.length - at >= 2) {
      const opcode = b[at] & 0x0f;
      let len = b[at + 1] & 0x7f;
      let start = at + 2;
      if (len === 126) {
        if (b.length - at < 4) break;
        len = (b[at + 2] << 8) | b[at + 3];
        start = at + 4;
      } else if (len === 127) {
        if (b.length - at < 10) break;
        len = Number(new DataView(b.buffer, b.byteOffset + at + 2, 8).getBigUint64(0));
        start = at + 10;
      }
      if (b.length < start + len) break;
      const payload = b.subarray(start, start + len);
      at = start + len;
      if (opcode === OP_PING) {
        this.send(frame(OP_PONG, payload.slice())).catch(() => {});
      } else if (opcode === OP_CLOSE) {
        this.closeSeen = true;
      } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
        this.dataFrames++;
        if (this.keep) this.#frames.push({ opcode, payload: payload.slice() });
      }
    }
    this.#buf = at === b.length ? new Uint8Array(0) : b.slice(at);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 0x0a && b[i - 1] === 0x0d && b[i - 2] === 0x0a && b[i - 3] === 0x0d) return i + 1;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

// ---- The server and its memory ------------------------------------------------------------

interface Server {
  readonly pid: number;
  readonly port: number;
  readonly child: Deno.ChildProcess;
  log(): string;
}

async function startServer(dir: string): Promise<Server> {
  const fifo = `${dir}/push.fifo`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  if (!made.success) throw new Error("mkfifo failed");
  const v8Flags = [...(FORCE_GC ? ["--expose-gc"] : []), ...SERVER_V8_FLAGS];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : []),
      "--allow-net",
      "--allow-read",
      MAIN,
      "--port",
      "0",
      "--fifo",
      fifo,
      "--log-level",
      "info",
      HANDLERS,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.length > 1_000_000) text = text.slice(-100_000);
      const m = /listening on [^\s]+:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    }
  };
  pump(child.stdout);
  pump(child.stderr);
  const port = await Promise.race([
    listening,
    child.status.then((s) => {
      throw new Error(`server exited with ${s.code}: ${text}`);
    }),
  ]);
  return { pid: child.pid, port, child, log: () => text };
}

/** VmRSS of `pid` in bytes, from /proc/<pid>/status. */
function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb[1]) * 1024;
}

interface Heap {
  readonly gc: boolean;
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
}

/** The server's heap after a forced GC, through the probe message. */
async function heap(port: number): Promise<Heap> {
  const c = await Client.open(port);
  c.keep = true;
  await c.send(frame(OP_TEXT, encoder.encode(PROBE)));
  const f = await c.nextKept();
  await c.closeHandshake();
  return JSON.parse(decoder.decode(f.payload));
}

const MB = 1024 * 1024;

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

interface Row {
  readonly phase: string;
  readonly rss: number;
  readonly settled: number;
  readonly heap: Heap;
  readonly seconds: number;
}

// ---- Phases -------------------------------------------------------------------------------

async function echoPhase(port: number, connections: number, frames: number): Promise<void> {
  const perConn = Math.ceil(frames / connections);
  const payload = new Uint8Array(ECHO_PAYLOAD).fill(0x61);
  const one = frame(OP_BINARY, payload);
  const windowBytes = new Uint8Array(one.length * ECHO_WINDOW);
  for (let i = 0; i < ECHO_WINDOW; i++) windowBytes.set(one, i * one.length);
  await Promise.all(Array.from({ length: connections }, async () => {
    const c = await Client.open(port);
    for (let sent = 0; sent < perConn; sent += ECHO_WINDOW) {
      const n = Math.min(ECHO_WINDOW, perConn - sent);
      await c.send(n === ECHO_WINDOW ? windowBytes : windowBytes.subarray(0, n * one.length));
      await c.waitData(sent + n);
    }
    await c.closeHandshake();
  }));
}

async function cyclePhase(port: number, cycles: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CYCLE_PARALLEL }, async () => {
    while (next < cycles) {
      next++;
      const c = await Client.open(port);
      await c.closeHandshake();
      if (!c.closeSeen) throw new Error("no Close from the server");
    }
  }));
}

async function holdPhase(
  port: number,
  pid: number,
  connections: number,
): Promise<{ clients: Client[]; before: number; opened: number; end: number }> {
  const before = rss(pid);
  const clients: Client[] = [];
  for (let i = 0; i < connections; i += 100) {
    const batch = Math.min(100, connections - i);
    clients.push(...await Promise.all(Array.from({ length: batch }, () => Client.open(port))));
  }
  const ping = frame(OP_PING, encoder.encode("hold"));
  const opened = rss(pid);
  const deadline = Date.now() + HOLD_S * 1000;
  while (Date.now() < deadline) {
    await Promise.all(clients.map((c) => c.send(ping).catch(() => {})));
    await new Promise((resolve) => setTimeout(resolve, HOLD_PING_MS));
  }
  const lost = clients.filter((c) => c.closed).length;
  if (lost > 0) throw new Error(`${lost} held connections were closed by the server`);
  return { clients, before, opened, end: rss(pid) };
}

// ---- Main ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-memory-" });
  const server = await startServer(dir);
  const rows: Row[] = [];
  const measure = async (phase: string, started: number) => {
    const now = rss(server.pid);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    // Settled means after SETTLE_MS without load, before the probe's forced GC.
    const settled = rss(server.pid);
    const h = await heap(server.port);
    const row = { phase, rss: now, settled, heap: h, seconds: 0 };
    rows.push({ ...row, seconds: (performance.now() - started) / 1000 });
    print(rows[rows.length - 1], rows[0]);
  };
  try {
    console.log(
      `push-server memory bench: pid ${server.pid}, port ${server.port}` +
        (quick ? " (--quick)" : ""),
    );
    console.log(
      "phase                              secs   RSS MB  ×warm  settled MB  ×warm  " +
        "heapUsed  heapTotal  external (MB, after GC)",
    );
    let t = performance.now();
    // Warm-up: the code paths the load takes, once, so the baseline includes compiled code.
    await echoPhase(server.port, 5, 10_000);
    await cyclePhase(server.port, 200);
    await measure("warm baseline", t);

    t = performance.now();
    await echoPhase(server.port, ECHO_CONNECTIONS, ECHO_FRAMES);
    await measure(`echo ${ECHO_FRAMES} × ${ECHO_PAYLOAD} B, ${ECHO_CONNECTIONS} conns`, t);

    t = performance.now();
    await echoPhase(server.port, ECHO_CONNECTIONS, ECHO_FRAMES);
    await measure(`echo again`, t);

    t = performance.now();
    await cyclePhase(server.port, CYCLES);
    await measure(`${CYCLES} connect/close cycles`, t);

    t = performance.now();
    const hold = await holdPhase(server.port, server.pid, HOLD_CONNECTIONS);
    const perConn = (bytes: number) => `${(bytes / HOLD_CONNECTIONS / 1024).toFixed(1)} KB`;
    console.log(
      `  RSS per held connection: ${perConn(hold.opened - hold.before)} once open, ` +
        `${perConn(hold.end - hold.before)} after ${HOLD_S} s of pings`,
    );
    const clients = hold.clients;
    await measure(`holding ${HOLD_CONNECTIONS} conns, ${HOLD_S} s of pings`, t);
    t = performance.now();
    await Promise.all(clients.map((c) => c.closeHandshake()));
    await measure(`after the ${HOLD_CONNECTIONS} closed`, t);

    const base = rows[0].settled;
    // Idle, with no connection at all: V8's memory reducer and page pool work on timers.
    const idle: string[] = [];
    let last = 0;
    for (let s = 1; s <= IDLE_S; s++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      last = rss(server.pid);
      if (IDLE_MARKS.includes(s)) idle.push(`${s} s: ${mb(last)} (${(last / base).toFixed(2)}×)`);
    }
    console.log(`idle after load, RSS MB: ${idle.join(", ")}`);
    const factor = last / base;
    console.log(
      `RSS after load and ${IDLE_S} s idle: ${mb(last)} MB = ${factor.toFixed(2)}× the warm ` +
        `baseline (${mb(base)} MB); limit ${RSS_LIMIT_FACTOR}×: ${
          factor <= RSS_LIMIT_FACTOR ? "within" : "OVER"
        }`,
    );
    if (!rows[0].heap.gc) console.log("note: heap figures without a forced GC (--no-gc)");
    if (args.has("--smaps")) printSmaps(server.pid);
  } finally {
    try {
      Deno.kill(server.pid, "SIGKILL");
    } catch { /* gone */ }
    await server.child.status;
    if (args.has("--keep-log")) console.log(server.log());
    await Deno.remove(dir, { recursive: true });
  }
}

/** The server's largest mappings by resident size (where the RSS is). */
function printSmaps(pid: number): void {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  const maps: { name: string; size: number; rss: number }[] = [];
  let current: { name: string; size: number; rss: number } | null = null;
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      current = {
        name: head[3] || "[anon]",
        size: parseInt(head[2], 16) - parseInt(head[1], 16),
        rss: 0,
      };
      maps.push(current);
    } else if (current && line.startsWith("Rss:")) {
      current.rss = Number(/(\d+)/.exec(line)![1]) * 1024;
    }
  }
  const byName = new Map<string, { rss: number; count: number }>();
  for (const m of maps) {
    const key = m.name === "[anon]" ? `[anon ${m.size >= 64 * MB ? ">=64M" : "<64M"}]` : m.name;
    const e = byName.get(key) ?? { rss: 0, count: 0 };
    e.rss += m.rss;
    e.count++;
    byName.set(key, e);
  }
  console.log("largest resident mappings (MB):");
  for (const [name, e] of [...byName].sort((a, b) => b[1].rss - a[1].rss).slice(0, 8)) {
    console.log(`  ${mb(e.rss).padStart(7)}  ${String(e.count).padStart(4)} × ${name}`);
  }
  const anon = maps.filter((m) => m.name === "[anon]").sort((a, b) => b.rss - a.rss);
  const bySize = new Map<number, { rss: number; count: number }>();
  for (const m of anon) {
    const e = bySize.get(m.size) ?? { rss: 0, count: 0 };
    e.rss += m.rss;
    e.count++;
    bySize.set(m.size, e);
  }
  console.log(
    "  anonymous by mapping size: " +
      [...bySize].sort((a, b) => b[1].rss - a[1].rss).slice(0, 6)
        .map(([size, e]) => `${e.count} × ${(size / 1024).toFixed(0)} KiB = ${mb(e.rss)} MB`)
        .join(", "),
  );
  console.log(
    "  largest anonymous: " +
      anon.slice(0, 8).map((m) => `${mb(m.rss)}/${mb(m.size)}`).join(", ") + " (rss/size MB)",
  );
}

function print(row: Row, warm: Row): void {
  const base = warm.settled;
  const h = row.heap;
  console.log(
    `${row.phase.padEnd(34)} ${row.seconds.toFixed(1).padStart(5)} ${mb(row.rss).padStart(8)} ${
      (row.rss / base).toFixed(2).padStart(6)
    } ${mb(row.settled).padStart(11)} ${(row.settled / base).toFixed(2).padStart(6)} ${
      mb(h.heapUsed).padStart(9)
    } ${mb(h.heapTotal).padStart(10)} ${mb(h.external).padStart(9)}`,
  );
}

if (import.meta.main) await main();
