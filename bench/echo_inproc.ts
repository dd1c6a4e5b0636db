// W2 echo without the kernel: the real server's connection, codec, dispatch and queue paths,
// fed by fake sockets in the same process. Each fake socket's read returns 8 masked 64 B text
// frames (as the load generator sends them) and its writes resolve at once; a socket gets its
// next 8 once all 8 replies are written. Only microtasks run, so the process is busy throughout
// and its CPU time per echoed message is the JavaScript cost of the echo path, without the
// socket ops whose cost varies with the machine's load. For A/B between checkouts:
//
//   deno run --allow-all bench/echo_inproc.ts --ab <dirA>,<dirB> [--pairs 12] [--seconds 1.5]
//   deno run --allow-all bench/echo_inproc.ts --root <dir> [--seconds 3]     (one run, JSON)
//
// Each run is a fresh process pinned to core 0 (with taskset), warmed up for 0.7 s first. A
// checkout of round 1 (lib/client.ts, lib/server.ts) works too.

import process from "node:process";
import { parseArgs } from "node:util";

const WARM_MS = 700;
const CLIENTS = 100;
const IN_FLIGHT = 8;
const PAYLOAD = 64;
/** The driver feeds the sockets that are ready, then yields this many microtask turns. */
const YIELDS = 64;

interface RunResult {
  readonly msgs: number;
  readonly cpuNsPerMsg: number;
}

const REQUEST = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

/** IN_FLIGHT masked text frames of PAYLOAD bytes of "x", as one burst. */
function burst(): Uint8Array {
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  const frame = new Uint8Array(2 + 4 + PAYLOAD);
  frame[0] = 0x81;
  frame[1] = 0x80 | PAYLOAD;
  frame.set(mask, 2);
  for (let i = 0; i < PAYLOAD; i++) frame[6 + i] = 0x78 ^ mask[i & 3];
  const out = new Uint8Array(frame.length * IN_FLIGHT);
  for (let i = 0; i < IN_FLIGHT; i++) out.set(frame, i * frame.length);
  return out;
}

async function runOne(root: string, seconds: number): Promise<RunResult> {
  const round1 = await Deno.stat(`${root}/lib/client.ts`).then(() => true, () => false);
  const lib = (now: string, then: string) => `${root}/lib/${round1 ? then : now}`;
  const { parseCommandLine } = await import(lib("api/options.ts", "options.ts"));
  const { PushServer } = await import(lib("server/server.ts", "server.ts"));
  const connections = await import(lib("server/connection.ts", "client.ts"));
  const handlers = await import(`${root}/examples/echo.ts`);
  const Connection = round1 ? connections.Client : connections.ClientConnection;
  const parsed = parseCommandLine(["--port", "0", "--fifo", "/dev/null"], () => undefined);
  const quiet = () => {};
  const log = { error: console.error, warn: quiet, info: quiet, debug: quiet };
  const server = new PushServer(parsed.options, { handlers: { ...handlers }, log });

  const input = burst();
  const replyBytes = (2 + PAYLOAD) * IN_FLIGHT;
  const ready: FakeSocket[] = [];
  let echoed = 0;

  class FakeSocket {
    readonly remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };
    readonly localAddr = { transport: "tcp", hostname: "127.0.0.1", port: 8080 };
    #handshook = false;
    #pending: { buf: Uint8Array; resolve: (n: number | null) => void } | null = null;
    #rest: Uint8Array | null = null;
    #owed = 0;

    read(buf: Uint8Array): Promise<number | null> {
      if (!this.#handshook) {
        this.#handshook = true;
        buf.set(REQUEST);
        return Promise.resolve(REQUEST.length);
      }
      if (this.#rest) return Promise.resolve(this.#copy(buf, this.#rest));
      return new Promise((resolve) => this.#pending = { buf, resolve });
    }

    write(bytes: Uint8Array): Promise<number> {
      if (this.#owed > 0) {
        this.#owed -= bytes.length;
        if (this.#owed <= 0) {
          echoed += IN_FLIGHT;
          ready.push(this);
        }
      }
      return Promise.resolve(bytes.length);
    }

    /** The next burst, into the pending read (what does not fit comes on the next read). */
    feed(): void {
      const pending = this.#pending;
      if (!pending) return void ready.push(this);
      this.#pending = null;
      this.#owed = replyBytes;
      pending.resolve(this.#copy(pending.buf, input));
    }

    #copy(buf: Uint8Array, from: Uint8Array): number {
      const n = Math.min(buf.length, from.length);
      buf.set(from.subarray(0, n));
      this.#rest = n < from.length ? from.subarray(n) : null;
      return n;
    }

    setNoDelay(): void {}
    closeWrite(): Promise<void> {
      return Promise.resolve();
    }
    close(): void {}
  }

  const sockets: FakeSocket[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const socket = new FakeSocket();
    sockets.push(socket);
    new Connection(socket, server).run();
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  ready.push(...sockets);
  const start = performance.now();
  let measuring = false;
  let from = { msgs: 0, cpu: 0, at: 0 };
  const cpu = () => {
    const u = process.cpuUsage(); // all threads, in µs
    return (u.user + u.system) * 1000;
  };
  for (;;) {
    const now = performance.now();
    if (!measuring && now - start > WARM_MS) {
      measuring = true;
      from = { msgs: echoed, cpu: cpu(), at: now };
    }
    if (measuring && now - from.at > seconds * 1000) break;
    // A socket whose replies were written is fed only after the server's write pump has run
    // on (as over TCP, where the next burst needs a round trip).
    for (const socket of ready.splice(0)) socket.feed();
    for (let i = 0; i < YIELDS; i++) await null;
  }
  const msgs = echoed - from.msgs;
  return { msgs, cpuNsPerMsg: Math.round((cpu() - from.cpu) / msgs) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function spawnRun(root: string, seconds: number): Promise<RunResult> {
  const self = new URL(import.meta.url).pathname;
  const argv = [Deno.execPath(), "run", "--allow-all", self, "--root", root];
  argv.push("--seconds", String(seconds));
  const pin = (await hasTaskset()) ? ["taskset", "-c", "0"] : [];
  const [cmd, ...args] = [...pin, ...argv];
  const out = await new Deno.Command(cmd, { args, stdout: "piped" }).output();
  if (!out.success) throw new Error(`run in ${root} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}

async function hasTaskset(): Promise<boolean> {
  try {
    return (await new Deno.Command("taskset", { args: ["-V"], stdout: "null" }).output()).success;
  } catch {
    return false;
  }
}

async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      root: { type: "string" },
      ab: { type: "string" },
      pairs: { type: "string", default: "12" },
      seconds: { type: "string" },
    },
  });
  if (values.root) {
    const result = await runOne(Deno.realPathSync(values.root), Number(values.seconds ?? 3));
    console.log(JSON.stringify(result));
    Deno.exit(0); // the fake connections never end
  }
  if (!values.ab) {
    console.error("usage: echo_inproc.ts --ab <dirA>,<dirB> [--pairs N] [--seconds S]");
    Deno.exit(2);
  }
  const [a, b] = values.ab.split(",").map((dir) => Deno.realPathSync(dir));
  const seconds = Number(values.seconds ?? 1.5);
  const pairs = Number(values.pairs);
  const sides = { a: [] as number[], b: [] as number[] };
  const ratios: number[] = [];
  console.log(`load average before: ${await loadAverage()}`);
  for (let i = 0; i < pairs; i++) {
    // Alternate which side runs first, so that a drift in load favours neither.
    const first = i % 2 === 0 ? a : b;
    const r1 = await spawnRun(first, seconds);
    const r2 = await spawnRun(first === a ? b : a, seconds);
    const [ra, rb] = first === a ? [r1, r2] : [r2, r1];
    sides.a.push(ra.cpuNsPerMsg);
    sides.b.push(rb.cpuNsPerMsg);
    ratios.push(rb.cpuNsPerMsg / ra.cpuNsPerMsg);
    console.log(`pair ${i + 1}: A ${ra.cpuNsPerMsg} ns/msg, B ${rb.cpuNsPerMsg} ns/msg`);
  }
  const range = (xs: number[]) => `${median(xs)} (${Math.min(...xs)}–${Math.max(...xs)})`;
  console.log(`A = ${a}: CPU per echoed message ${range(sides.a)} ns`);
  console.log(`B = ${b}: CPU per echoed message ${range(sides.b)} ns`);
  const worse = ratios.filter((r) => r > 1).length;
  console.log(`paired B/A median ${median(ratios).toFixed(3)}, B worse in ${worse}/${pairs}`);
  console.log(`load average after: ${await loadAverage()}`);
}

if (import.meta.main) await main();
