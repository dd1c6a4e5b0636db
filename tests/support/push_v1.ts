// Test support for end-to-end channel tests: a push.v1 WebSocket client that keeps every server
// message in arrival order, a FIFO writer that fails at once when no server reads the FIFO (as a
// web application's non-blocking write does), and a real server restartable on the same FIFO,
// state directory and port.

import { type ServerProcess, startServer } from "./server_process.ts";

/** One server message of the push.v1 protocol (lib/channels/PROTOCOL.md). */
export interface PushMessage {
  readonly type: string;
  readonly [field: string]: unknown;
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** Permissions under which history is written to SQLite in --state-dir (durable). */
export const DURABLE = ["--allow-net", "--allow-read", "--allow-write", "--allow-sys"] as const;

const DEFAULT_WAIT_MS = 10_000;

/** A push.v1 client: `next()` hands out server messages one at a time, in order. */
export class PushV1Client {
  readonly #socket: WebSocket;
  readonly #messages: PushMessage[] = [];
  #cursor = 0;
  #wake: (() => void) | null = null;
  #closed: Closed | null = null;
  /** Resolves with the close code and reason when the connection ends. */
  readonly closed: Promise<Closed>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (e) => {
        this.#closed = { code: e.code, reason: e.reason };
        resolve(this.#closed);
        this.#wake?.();
      });
    });
    socket.addEventListener("message", (e) => {
      this.#messages.push(parsePushMessage(e.data));
      this.#wake?.();
    });
  }

  /** Opens a connection offering push.v1 to 127.0.0.1:`port`, at `path` (with its query). */
  static open(port: number, path = "/"): Promise<PushV1Client> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, "push.v1");
    return new Promise((resolve, reject) => {
      socket.addEventListener("open", () => {
        if (socket.protocol !== "push.v1") reject(new Error(`protocol "${socket.protocol}"`));
        else resolve(new PushV1Client(socket));
      });
      socket.addEventListener("error", () => reject(new Error("cannot connect")));
    });
  }

  /** Sends an operation (an object is JSON-encoded; a string or bytes go as they are). */
  send(op: unknown): void {
    this.#socket.send(
      typeof op === "string" || op instanceof Uint8Array ? op : JSON.stringify(op),
    );
  }

  /** Every message received so far. */
  get received(): readonly PushMessage[] {
    return this.#messages;
  }

  /** The next message not handed out yet; rejects if the connection ends or time runs out. */
  async next(timeoutMs = DEFAULT_WAIT_MS): Promise<PushMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.#cursor >= this.#messages.length) {
      if (this.#closed) throw new Error(`closed ${JSON.stringify(this.#closed)} while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.#messages[this.#cursor++];
  }

  /** Subscribes and returns the `subscribed` reply (or the `error`) for `channel`. */
  async subscribe(
    channel: string,
    since?: { epoch: string; offset: number },
  ): Promise<PushMessage> {
    this.send({ op: "subscribe", channels: { [channel]: since ?? {} } });
    return await this.next();
  }

  /** Sends a ping and returns every message before its pong: what the server sent until then. */
  async flush(): Promise<PushMessage[]> {
    const id = `flush-${this.#cursor}-${this.#messages.length}`;
    this.send({ op: "ping", id });
    const before: PushMessage[] = [];
    for (let m = await this.next(); !(m.type === "pong" && m.id === id); m = await this.next()) {
      before.push(m);
    }
    return before;
  }

  close(): void {
    this.#socket.close();
  }

  /** Closes and waits until the connection is gone. */
  async end(): Promise<void> {
    if (this.#closed === null) this.#socket.close();
    await this.closed;
  }
}

/**
 * One server frame of push.v1 as an object: a publication (the array `[channel, offset, data]`)
 * becomes `{type: "publication", channel, offset, data}`, as the browser client presents it. A
 * frame that is neither breaks the protocol; it is kept as `{type: "not-json"}`.
 */
export function parsePushMessage(data: unknown): PushMessage {
  try {
    const value = JSON.parse(String(data));
    if (isPublication(value)) {
      const [channel, offset, data] = value;
      return { type: "publication", channel, offset, data };
    }
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // Kept below.
  }
  return { type: "not-json", text: String(data) };
}

function isPublication(value: unknown): value is [string, number, unknown] {
  return Array.isArray(value) && value.length === 3 && typeof value[0] === "string" &&
    Number.isSafeInteger(value[1]);
}

/** Publications of `messages` as `data.n` numbers (the tests' payloads are `{n}`). */
export function numbers(messages: readonly PushMessage[]): number[] {
  return messages.filter((m) => m.type === "publication").map((m) => (m.data as { n: number }).n);
}

/**
 * Writes `text` to the FIFO with one non-blocking write (`dd oflag=nonblock`): false at once
 * when no process reads the FIFO (the server is down), as a web application's writer sees it.
 */
export async function tryWriteFifo(fifo: string, text: string): Promise<boolean> {
  const child = new Deno.Command("dd", {
    args: [`of=${fifo}`, "oflag=nonblock", "conv=notrunc", "status=none"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text)).catch(() => {});
  await writer.close().catch(() => {});
  return (await child.status).success;
}

/** A free TCP port on 127.0.0.1 (bound, then released), so a restart can reuse it. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A server that can be SIGKILLed and started again on the same port, FIFO and state dir. */
export class RestartableServer {
  readonly dir: string;
  readonly fifo: string;
  readonly stateDir: string;
  readonly port: number;
  readonly #args: readonly string[];
  #server: ServerProcess | null = null;

  private constructor(dir: string, args: readonly string[]) {
    this.dir = dir;
    this.fifo = `${dir}/in.fifo`;
    this.stateDir = `${dir}/state`;
    this.port = freePort();
    this.#args = args;
  }

  /** Makes the directory and the FIFO, and starts the server with `args` added. */
  static async create(args: readonly string[] = []): Promise<RestartableServer> {
    const dir = await Deno.makeTempDir({ prefix: "push-e2e-" });
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/in.fifo`] }).output();
    if (!made.success) throw new Error("mkfifo failed");
    const server = new RestartableServer(dir, args);
    await server.start();
    return server;
  }

  get process(): ServerProcess {
    if (!this.#server) throw new Error("the server is not running");
    return this.#server;
  }

  async start(): Promise<void> {
    this.#server = await startServer({
      createFifo: false,
      permissions: DURABLE,
      args: [
        "--port",
        String(this.port),
        "--fifo",
        this.fifo,
        "--state-dir",
        this.stateDir,
        ...this.#args,
      ],
    });
  }

  /** SIGKILLs the server and waits until it is gone. */
  async kill(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    await server?.signal("SIGKILL");
    await server?.stop();
  }

  async stop(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
