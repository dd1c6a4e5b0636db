// Test support: a raw TCP WebSocket client that sends exactly the bytes a test asks for —
// any upgrade request, any masked frame — and reads back the HTTP head, frames and TCP end.
// The one raw client, client-frame encoder and Close-body builder of the test suite.

import { concat } from "./feed.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A frame as read from the server. `payload` is a copy. */
export interface ServerFrame {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Uint8Array;
}

/** The head of an HTTP response. Header names are lower case. */
export interface HttpResponse {
  readonly status: number;
  readonly statusLine: string;
  readonly headers: Map<string, string>;
  /** Bytes received after the head (a body, or the first frames). */
  readonly rest: Uint8Array;
  /** A refusal's body as text ("" after a 101). */
  readonly body: string;
}

/** What `RawClient.handshake` sends: a valid upgrade for `path`, with extra headers. */
export interface HandshakeOptions {
  readonly path?: string;
  /** Extra or replaced header lines (null removes one), e.g. { Origin: "https://a.example" }. */
  readonly headers?: Record<string, string | null>;
}

/** A raw connection and the server's answer to its upgrade request. */
export interface Handshake {
  readonly client: RawClient;
  readonly res: HttpResponse;
}

/** What to put in a client frame; anything may be wrong on purpose. */
export interface FrameSpec {
  readonly opcode: number;
  readonly payload?: Uint8Array | string;
  /** Default true. */
  readonly fin?: boolean;
  /** The three RSV bits as 0–7 (RSV1 is 4). Default 0. */
  readonly rsv?: number;
  /** Default true; false sends an unmasked frame (a protocol error from a client). */
  readonly masked?: boolean;
  /** Default: the shortest. "16" or "64" force the extended length forms. */
  readonly lengthEncoding?: "7" | "16" | "64";
  /** Default: a fixed non-zero key. */
  readonly mask?: Uint8Array;
}

const DEFAULT_MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const PING_OPCODE = 0x9;
const PONG_OPCODE = 0xa;

/** Encodes one client frame (masked unless told otherwise). Returns a new array. */
export function clientFrame(spec: FrameSpec): Uint8Array {
  const payload = typeof spec.payload === "string"
    ? encoder.encode(spec.payload)
    : spec.payload ?? new Uint8Array(0);
  const masked = spec.masked ?? true;
  const n = payload.length;
  const enc = spec.lengthEncoding ?? (n < 126 ? "7" : n <= 0xffff ? "16" : "64");
  const extra = enc === "7" ? 0 : enc === "16" ? 2 : 8;
  const out = new Uint8Array(2 + extra + (masked ? 4 : 0) + n);
  out[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode;
  const maskBit = masked ? 0x80 : 0;
  const view = new DataView(out.buffer);
  if (enc === "7") {
    out[1] = maskBit | n;
  } else if (enc === "16") {
    out[1] = maskBit | 126;
    view.setUint16(2, n);
  } else {
    out[1] = maskBit | 127;
    view.setUint32(2, Math.floor(n / 2 ** 32));
    view.setUint32(6, n >>> 0);
  }
  let pos = 2 + extra;
  if (masked) {
    const mask = spec.mask ?? DEFAULT_MASK;
    out.set(mask, pos);
    pos += 4;
    for (let i = 0; i < n; i++) out[pos + i] = payload[i] ^ mask[i & 3];
  } else {
    out.set(payload, pos);
  }
  return out;
}

/** A Close frame body: 2-byte code and a reason (string or raw bytes). */
export function closeBody(code: number, reason: string | Uint8Array = ""): Uint8Array {
  const r = typeof reason === "string" ? encoder.encode(reason) : reason;
  const out = new Uint8Array(2 + r.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

/** A valid upgrade request for `path` with extra or replaced headers (null removes one). */
export function upgradeRequest(
  options: {
    path?: string;
    method?: string;
    version?: string;
    headers?: Record<string, string | null>;
    host?: string;
  } = {},
): string {
  const headers: Record<string, string | null> = {
    Host: options.host ?? "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...options.headers,
  };
  let head = `${options.method ?? "GET"} ${options.path ?? "/"} ${
    options.version ?? "HTTP/1.1"
  }\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null) head += `${name}: ${value}\r\n`;
  }
  return head + "\r\n";
}

/** The Sec-WebSocket-Accept for the default key, from RFC 6455 §1.3. */
export const SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** Raised when the server closed TCP while a read needed more bytes. */
export class ConnectionClosed extends Error {
  constructor(message = "the server closed the connection") {
    super(message);
    this.name = "ConnectionClosed";
  }
}

/** Raised when the server sent nothing within the bound. */
export class ReadTimeout extends Error {
  constructor(ms: number) {
    super(`no data from the server within ${ms} ms`);
    this.name = "ReadTimeout";
  }
}

/** One raw TCP connection to the server, with a read buffer. */
export class RawClient {
  readonly conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;
  #closed = false;
  #roundTrips = 0;
  #pending: Promise<Uint8Array | null> | null = null;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname, port }));
  }

  /**
   * Connects and sends a valid upgrade request (with `options`), and reads the answer, whatever
   * it is. After a refusal the caller still owns `client` and closes it.
   */
  static async handshake(port: number, options: HandshakeOptions = {}): Promise<Handshake> {
    const client = await RawClient.connect(port);
    try {
      await client.write(upgradeRequest(options));
      return { client, res: await client.readResponse() };
    } catch (e) {
      client.close();
      throw e;
    }
  }

  /**
   * Connects and completes a valid handshake; fails the test if the server refuses. With
   * `roundTrip`, also waits for a pong: the server has then registered the connection (it
   * writes the 101 before it does), so a broadcast sent next reaches it.
   */
  static async open(
    port: number,
    options: HandshakeOptions & { roundTrip?: boolean } = {},
  ): Promise<RawClient> {
    const { client, res } = await RawClient.handshake(port, options);
    if (res.status !== 101) {
      client.close();
      throw new Error(`handshake refused: ${res.statusLine}`);
    }
    if (options.roundTrip) await client.roundTrip();
    return client;
  }

  /** Bytes received and not consumed yet. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let done = 0;
    while (done < bytes.length) done += await this.conn.write(bytes.subarray(done));
  }

  /** Sends one frame built by `clientFrame`. */
  sendFrame(spec: FrameSpec): Promise<void> {
    return this.write(clientFrame(spec));
  }

  /**
   * Sends a ping and reads up to its pong: the server has processed everything sent before.
   * Frames that arrive before the pong are discarded.
   */
  async roundTrip(timeoutMs = 5000): Promise<void> {
    const payload = `rt${++this.#roundTrips}`;
    await this.sendFrame({ opcode: PING_OPCODE, payload });
    for (;;) {
      const frame = await this.readFrame(timeoutMs);
      if (frame.opcode === PONG_OPCODE && decoder.decode(frame.payload) === payload) return;
    }
  }

  /** Reads more bytes into the buffer; false at EOF (or reset). A read that times out is
   * kept and awaited by the next call, so no bytes are lost. */
  async #fill(timeoutMs: number): Promise<boolean> {
    if (this.#eof) return false;
    if (!this.#pending) {
      const chunk = new Uint8Array(64 * 1024);
      this.#pending = this.conn.read(chunk).then(
        (n) => (n === null ? null : chunk.subarray(0, n)),
        (e) => {
          if (
            this.#closed || e instanceof Deno.errors.ConnectionReset ||
            e instanceof Deno.errors.BrokenPipe
          ) {
            return null;
          }
          throw e;
        },
      );
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    let got: Uint8Array | null | "timeout";
    try {
      got = await Promise.race([this.#pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (got === "timeout") throw new ReadTimeout(timeoutMs);
    this.#pending = null;
    if (got === null) {
      this.#eof = true;
      return false;
    }
    this.#buf = concat([this.#buf, got]);
    return true;
  }

  async #need(count: number, timeoutMs: number): Promise<void> {
    while (this.#buf.length < count) {
      if (!(await this.#fill(timeoutMs))) throw new ConnectionClosed();
    }
  }

  #take(count: number): Uint8Array {
    const out = this.#buf.slice(0, count);
    this.#buf = this.#buf.subarray(count);
    return out;
  }

  /**
   * Reads frames until one that is not a ping or pong, and returns it. Pings are answered, as
   * a client must (RFC 6455 §5.5.2): a test that outlasts --ping-interval is not dropped.
   */
  async readMessageFrame(timeoutMs = 5000): Promise<ServerFrame> {
    for (;;) {
      const frame = await this.readFrame(timeoutMs);
      if (frame.opcode === PING_OPCODE) {
        await this.sendFrame({ opcode: PONG_OPCODE, payload: frame.payload });
      } else if (frame.opcode !== PONG_OPCODE) {
        return frame;
      }
    }
  }

  /** Reads an HTTP response head (and, when Content-Length says so, its body into `rest`). */
  async readResponse(timeoutMs = 5000): Promise<HttpResponse> {
    let end = -1;
    for (;;) {
      end = indexOfHeadEnd(this.#buf);
      if (end >= 0) break;
      if (!(await this.#fill(timeoutMs))) throw new ConnectionClosed("closed before a response");
    }
    const lines = decoder.decode(this.#take(end)).split("\r\n").filter((l) => l !== "");
    const statusLine = lines[0];
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const status = Number(statusLine.split(" ")[1]);
    const length = Number(headers.get("content-length") ?? 0);
    if (status !== 101 && length > 0) await this.#need(length, timeoutMs);
    const rest = status !== 101 ? this.#take(length) : this.#buf.slice();
    const body = status !== 101 ? decoder.decode(rest) : "";
    return { status, statusLine, headers, rest, body };
  }

  /** Reads one frame from the server. Throws ConnectionClosed if TCP ends first. */
  async readFrame(timeoutMs = 5000): Promise<ServerFrame> {
    await this.#need(2, timeoutMs);
    const b0 = this.#buf[0], b1 = this.#buf[1];
    let len = b1 & 0x7f;
    let pos = 2;
    if (len === 126) {
      await this.#need(4, timeoutMs);
      len = (this.#buf[2] << 8) | this.#buf[3];
      pos = 4;
    } else if (len === 127) {
      await this.#need(10, timeoutMs);
      const v = new DataView(this.#buf.buffer, this.#buf.byteOffset + 2, 8);
      len = v.getUint32(0) * 2 ** 32 + v.getUint32(4);
      pos = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked) pos += 4;
    await this.#need(pos + len, timeoutMs);
    this.#take(pos);
    return {
      fin: (b0 & 0x80) !== 0,
      rsv: (b0 >> 4) & 7,
      opcode: b0 & 0x0f,
      masked,
      payload: this.#take(len),
    };
  }

  /** Resolves true once the server has closed TCP (EOF or reset) within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      try {
        if (!(await this.#fill(left))) return true;
      } catch (e) {
        if (e instanceof ReadTimeout) return false;
        throw e;
      }
      // Data arrived: discard it and keep waiting for the end.
      this.#buf = new Uint8Array(0);
    }
  }

  /** Abrupt close: the socket goes away without a Close frame. */
  close(): void {
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i + 4;
    }
  }
  return -1;
}

/** Decodes a Close frame payload. */
export function parseClose(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length < 2) return { code: 1005, reason: "" };
  return { code: (payload[0] << 8) | payload[1], reason: decoder.decode(payload.subarray(2)) };
}
