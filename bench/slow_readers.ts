// The slow-readers benchmark (issue 11, item 4): how much a crowd of clients that never read
// slows delivery to the clients that do. Each run starts the real server (main.ts, default
// handlers: every FIFO line is broadcast), connects R reading clients and S never-reading ones
// (raw TCP: they send a valid upgrade request, read the 101 and then nothing more), writes B
// bytes of lines into the FIFO as fast as a pipe takes them (`yes | head -c B`, another process),
// and measures the time from the first write until every reader has every line. Runs alternate
// between the values of --slow (S=0, S=100, S=0, …) so that other load slows both alike.
//
//   deno task bench:slow-readers [--readers 10] [--slow 0,100] [--reps 3] [--bytes 200MB]
//                                [--line-bytes 1000] [--timeout-s 240] [--root DIR] [--no-pin]
//                                [--out FILE]
//
// Loopback only. The server is pinned to core 0 and this process (readers) and the writer to
// core 1 when taskset exists. Every run is bounded by --timeout-s; the processes it starts are
// killed by PID at the end of the run. Results go to bench/out/slow-readers-<stamp>.json.

import { parseArgs } from "node:util";
import { killServer, spawnServer, which } from "./run.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OUT = `${ROOT}/bench/out`;
const SERVER_CORE = "0";
const CLIENT_CORE = "1";
const READ_BUFFER_BYTES = 256 * 1024;
const HANDSHAKE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
const HEADER_END = "\r\n\r\n";

interface RunResult {
  slow: number;
  rep: number;
  ok: boolean;
  error?: string;
  /** From the first write into the FIFO until the last reader had every line. */
  seconds: number;
  /** Until the writer had put every byte into the pipe. */
  writerSeconds: number;
  /** The first and the median reader's completion time. */
  firstReaderSeconds: number;
  medianReaderSeconds: number;
  /** Line payload delivered to all readers together, per second of `seconds`. */
  deliveredMBps: number;
  linesPerReader: number;
  minLinesReceived: number;
  badLengths: number;
  /** Server CPU time (user + system, all threads) during the run, in cores busy. */
  serverCpu: number;
  /** Peak RSS of the server process (VmHWM), MB. */
  serverPeakRssMB: number;
  /** Lines in the server's log about clients closed as slow consumers. */
  slowConsumerLogLines: number;
  loadBefore: string;
  loadAfter: string;
}

async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}

/** CPU seconds (user + system, all threads) that process `pid` has used. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat (utime, stime), counted from after the command name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

async function peakRssMB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(status.match(/VmHWM:\s*(\d+)/)?.[1] ?? NaN);
  return kb / 1024;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Parses "200MB", "50MiB", "1000000" into bytes. */
function parseBytes(text: string): number {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)\s*(|B|KB|MB|GB|KiB|MiB|GiB)$/i);
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = m[2].toLowerCase();
  const scale: Record<string, number> = {
    "": 1,
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    kib: 1024,
    mib: 1024 ** 2,
    gib: 1024 ** 3,
  };
  return Math.floor(Number(m[1]) * scale[unit]);
}

function startServer(root: string, fifo: string, stateDir: string, pin: boolean) {
  const argv = [
    Deno.execPath(),
    ...["run", "--quiet", "--allow-all", `${root}/main.ts`],
    ...["--port", "0", "--fifo", fifo, "--state-dir", stateDir, "--log-level", "info"],
  ];
  const [cmd, ...args] = pin ? ["taskset", "-c", SERVER_CORE, ...argv] : argv;
  return spawnServer(cmd, args, { ready: /listening on [^:]+:(\d+)/ });
}

function upgradeRequest(port: number): Uint8Array {
  return new TextEncoder().encode(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${HANDSHAKE_KEY}\r\n` +
      `Sec-WebSocket-Version: 13\r\n\r\n`,
  );
}

/** Connects, upgrades, and returns the connection with any bytes read past the 101's head. */
async function openWebSocket(port: number): Promise<{ conn: Deno.TcpConn; rest: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(upgradeRequest(port));
  const buf = new Uint8Array(4096);
  let head = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("connection closed during the handshake");
    const joined = new Uint8Array(head.length + n);
    joined.set(head);
    joined.set(buf.subarray(0, n), head.length);
    head = joined;
    const text = new TextDecoder("latin1").decode(head);
    const end = text.indexOf(HEADER_END);
    if (end < 0) continue;
    if (!text.startsWith("HTTP/1.1 101")) {
      conn.close();
      throw new Error(`upgrade refused: ${text.slice(0, text.indexOf("\r\n"))}`);
    }
    return { conn, rest: head.subarray(end + HEADER_END.length) };
  }
}

/** A masked control frame from the client (RFC 6455 §5.3), for pongs and the close. */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/**
 * A reading client: counts complete messages and their lengths from the server's unmasked
 * frames, answers pings, and resolves `done` when it has `expected` messages.
 */
class Reader {
  messages = 0;
  badLengths = 0;
  finishedAt = NaN;
  closed = false;
  readonly #conn: Deno.TcpConn;
  readonly #expected: number;
  readonly #payloadBytes: number;
  readonly #head = new Uint8Array(14);
  #headLen = 0;
  #payloadLeft = 0;
  #opcode = 0;
  #fin = false;
  #messageBytes = 0;
  #control: number[] = [];
  #inPayload = false;
  #resolve!: () => void;
  readonly done: Promise<void>;

  constructor(conn: Deno.TcpConn, expected: number, payloadBytes: number) {
    this.#conn = conn;
    this.#expected = expected;
    this.#payloadBytes = payloadBytes;
    this.done = new Promise((resolve) => this.#resolve = resolve);
  }

  async run(rest: Uint8Array): Promise<void> {
    this.#feed(rest);
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (this.messages < this.#expected) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#feed(buf.subarray(0, n));
      }
    } catch { /* reset: counted as closed */ }
    if (this.messages < this.#expected) this.closed = true;
    this.#resolve();
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  #feed(chunk: Uint8Array): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.#inPayload) {
        this.#head[this.#headLen++] = chunk[pos++];
        const need = this.#headerLength();
        if (this.#headLen < need) continue;
        this.#startPayload();
        if (this.#payloadLeft === 0) this.#endFrame();
        continue;
      }
      const take = Math.min(this.#payloadLeft, chunk.length - pos);
      if (this.#opcode >= OPCODE_CLOSE) {
        for (let i = 0; i < take; i++) this.#control.push(chunk[pos + i]);
      } else this.#messageBytes += take;
      pos += take;
      this.#payloadLeft -= take;
      if (this.#payloadLeft === 0) this.#endFrame();
    }
  }

  /** Bytes in this frame's header, as far as the bytes seen so far tell. */
  #headerLength(): number {
    if (this.#headLen < 2) return 2;
    const len7 = this.#head[1] & 0x7f;
    const masked = (this.#head[1] & 0x80) !== 0 ? 4 : 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + masked;
  }

  #startPayload(): void {
    const h = this.#head;
    this.#fin = (h[0] & 0x80) !== 0;
    const opcode = h[0] & 0x0f;
    if (opcode !== 0) this.#opcode = opcode;
    const len7 = h[1] & 0x7f;
    let length = len7;
    if (len7 === 126) length = (h[2] << 8) | h[3];
    else if (len7 === 127) length = Number(new DataView(h.buffer).getBigUint64(2));
    this.#payloadLeft = length;
    this.#control = [];
    this.#inPayload = true;
  }

  #endFrame(): void {
    this.#inPayload = false;
    this.#headLen = 0;
    const opcode = this.#opcode;
    if (opcode === OPCODE_PING) {
      this.#conn.write(clientFrame(OPCODE_PONG, new Uint8Array(this.#control))).catch(() => {});
      return;
    }
    if (opcode === OPCODE_CLOSE || opcode === OPCODE_PONG) {
      if (opcode === OPCODE_CLOSE) this.closed = true;
      return;
    }
    if (!this.#fin) return;
    if (this.#messageBytes !== this.#payloadBytes) this.badLengths++;
    this.#messageBytes = 0;
    this.messages++;
    if (this.messages === this.#expected) this.finishedAt = performance.now();
  }
}

interface Settings {
  root: string;
  readers: number;
  bytes: number;
  lineBytes: number;
  timeoutS: number;
  pin: boolean;
}

async function oneRun(s: Settings, slow: number, rep: number): Promise<RunResult> {
  await Deno.mkdir(OUT, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: OUT, prefix: "slow-" });
  const fifo = `${dir}/push.fifo`;
  const lines = Math.floor(s.bytes / s.lineBytes);
  const loadBefore = await loadAverage();
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  if (!mk.success) throw new Error("mkfifo failed");
  const server = await startServer(s.root, fifo, `${dir}/state`, s.pin);
  const readers: Reader[] = [];
  const idle: Deno.TcpConn[] = [];
  let writer: Deno.ChildProcess | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    for (let i = 0; i < s.readers; i++) {
      const { conn, rest } = await openWebSocket(server.port);
      const r = new Reader(conn, lines, s.lineBytes - 1);
      readers.push(r);
      r.run(rest);
    }
    for (let i = 0; i < slow; i++) idle.push((await openWebSocket(server.port)).conn);

    const cpuBefore = await cpuSeconds(server.child.pid);
    const line = "x".repeat(s.lineBytes - 1);
    const script = `yes "$1" | head -c "$2" > "$3"`;
    const argv = ["sh", "-c", script, "sh", line, String(lines * s.lineBytes), fifo];
    const [cmd, ...args] = s.pin ? ["taskset", "-c", CLIENT_CORE, ...argv] : argv;
    const t0 = performance.now();
    writer = new Deno.Command(cmd, { args, stdin: "null" }).spawn();
    let writerSeconds = NaN;
    writer.status.then(() => writerSeconds = (performance.now() - t0) / 1000);
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), s.timeoutS * 1000);
    });
    const all = Promise.all(readers.map((r) => r.done));
    const outcome = await Promise.race([all.then(() => "done" as const), timeout]);
    const end = performance.now();
    const seconds = (end - t0) / 1000;
    const cpu = (await cpuSeconds(server.child.pid) - cpuBefore) / seconds;
    const rss = await peakRssMB(server.child.pid);
    const finished = readers.map((r) => (r.finishedAt - t0) / 1000);
    const minLines = Math.min(...readers.map((r) => r.messages));
    const badLengths = readers.reduce((sum, r) => sum + r.badLengths, 0);
    let error: string | undefined;
    if (outcome === "timeout") error = `timed out after ${s.timeoutS} s`;
    else if (minLines < lines) error = "a reader's connection closed before every line arrived";
    else if (badLengths > 0) error = `${badLengths} messages of the wrong length`;
    return {
      slow,
      rep,
      ok: error === undefined,
      ...(error ? { error } : {}),
      seconds,
      writerSeconds,
      firstReaderSeconds: Math.min(...finished),
      medianReaderSeconds: median(finished),
      deliveredMBps: readers.length * lines * (s.lineBytes - 1) / seconds / 1e6,
      linesPerReader: lines,
      minLinesReceived: minLines,
      badLengths,
      serverCpu: cpu,
      serverPeakRssMB: rss,
      slowConsumerLogLines: (server.output().match(/slow consumer/g) ?? []).length,
      loadBefore,
      loadAfter: await loadAverage(),
    };
  } finally {
    clearTimeout(timer);
    if (writer) {
      killServer(writer);
      await writer.status;
    }
    for (const r of readers) r.close();
    for (const c of idle) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    killServer(server.child);
    await server.child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

function fmtS(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : "–";
}

function report(results: RunResult[], slows: number[]): void {
  const rows = [[
    "never-readers",
    "runs ok",
    "all lines at readers, s: median (min–max)",
    "writer done, s (median)",
    "delivered MB/s (median)",
    "server cores busy",
    "server peak RSS MB",
    "slow-consumer log lines",
  ]];
  const medians: Record<number, number> = {};
  for (const slow of slows) {
    const mine = results.filter((r) => r.slow === slow);
    const ok = mine.filter((r) => r.ok);
    const secs = ok.map((r) => r.seconds);
    medians[slow] = ok.length ? median(secs) : NaN;
    const m = (key: keyof RunResult) => ok.length ? median(ok.map((r) => Number(r[key]))) : NaN;
    rows.push([
      String(slow),
      `${ok.length}/${mine.length}`,
      ok.length
        ? `${fmtS(medians[slow])} (${fmtS(Math.min(...secs))}–${fmtS(Math.max(...secs))})`
        : "–",
      fmtS(m("writerSeconds")),
      m("deliveredMBps").toFixed(0),
      m("serverCpu").toFixed(2),
      m("serverPeakRssMB").toFixed(0),
      mine.map((r) => r.slowConsumerLogLines).join(", "),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(rows[0]));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows.slice(1)) console.log(line(r));
  if (slows.length >= 2) {
    const base = medians[slows[0]];
    for (const slow of slows.slice(1)) {
      console.log(
        `median time with ${slow} never-readers / with ${slows[0]}: ` +
          `${(medians[slow] / base).toFixed(2)}×`,
      );
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      readers: { type: "string", default: "10" },
      slow: { type: "string", default: "0,100" },
      reps: { type: "string", default: "3" },
      bytes: { type: "string", default: "200MB" },
      "line-bytes": { type: "string", default: "1000" },
      "timeout-s": { type: "string", default: "240" },
      root: { type: "string", default: ROOT },
      "no-pin": { type: "boolean", default: false },
      out: { type: "string" },
      report: { type: "string" },
    },
  });
  if (values.report) {
    const saved = JSON.parse(await Deno.readTextFile(values.report));
    report(saved.results, saved.slows);
    return;
  }
  const settings: Settings = {
    root: values.root!.replace(/\/$/, ""),
    readers: Number(values.readers),
    bytes: parseBytes(values.bytes!),
    lineBytes: Number(values["line-bytes"]),
    timeoutS: Number(values["timeout-s"]),
    pin: !values["no-pin"] && which("taskset"),
  };
  if (!(settings.lineBytes >= 2)) throw new Error("--line-bytes must be at least 2");
  const slows = values.slow!.split(",").map(Number);
  const reps = Number(values.reps);
  if (settings.pin) {
    // This process (the readers) on the client core; threads started later inherit it.
    await new Deno.Command("taskset", {
      args: ["-a", "-cp", CLIENT_CORE, String(Deno.pid)],
      stdout: "null",
    }).output();
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = values.out ?? `${OUT}/slow-readers-${stamp}.json`;
  console.log(
    `${settings.readers} readers, never-readers ${slows.join(" / ")}, ${settings.bytes} bytes ` +
      `of ${settings.lineBytes}-byte lines, ${reps} repetitions, server ${settings.root}/main.ts` +
      (settings.pin ? `, server on core ${SERVER_CORE}, clients on core ${CLIENT_CORE}` : ""),
  );
  const results: RunResult[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    for (const slow of slows) {
      let r: RunResult;
      try {
        r = await oneRun(settings, slow, rep);
      } catch (e) {
        r = {
          slow,
          rep,
          ok: false,
          error: e instanceof Error ? e.message : String(e),
        } as RunResult;
      }
      results.push(r);
      console.log(
        `S=${slow} #${rep}: ${r.ok ? "" : `FAILED (${r.error}) `}all lines in ` +
          `${fmtS(r.seconds)} s (first reader ${fmtS(r.firstReaderSeconds)} s, writer done ` +
          `${fmtS(r.writerSeconds)} s), server cpu ${Number(r.serverCpu).toFixed(2)}, ` +
          `peak RSS ${Number(r.serverPeakRssMB).toFixed(0)} MB, slow-consumer log lines ` +
          `${r.slowConsumerLogLines}, load ${r.loadBefore} -> ${r.loadAfter}`,
      );
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          date: new Date().toISOString(),
          args: Deno.args,
          settings,
          slows,
          results,
        }) +
          "\n",
      );
    }
  }
  report(results, slows);
  console.log(`results written to ${file}`);
}

if (import.meta.main) await main();
