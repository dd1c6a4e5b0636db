// Owns a minimal echo server for permessage-deflate interop tests: it negotiates with
// negotiateDeflate, reads (possibly fragmented, compressed) client messages with inflateText,
// and echoes each through MessageFrames. It records what arrived, frame by frame.

import { concatBytes } from "../../lib/protocol/bytes.ts";
import { MessageFrames } from "../../lib/protocol/compressed_frames.ts";
import { inflateMessage, inflateText } from "../../lib/protocol/deflate.ts";
import {
  applyMask,
  encodeFrame,
  NEED_DATA,
  Opcode,
  parseFrameHeader,
} from "../../lib/protocol/frame.ts";
import { acceptValue } from "../../lib/protocol/handshake.ts";
import {
  type DeflateParams,
  type DeflatePolicy,
  negotiateDeflate,
} from "../../lib/protocol/permessage_deflate.ts";

const RSV1 = 4;
const HEAD_END = "\r\n\r\n";

/** One message as the echo server received it. */
export interface ReceivedMessage {
  readonly text: string;
  /** RSV1 of each frame, in order: only the first may be set (RFC 7692 §6.1). */
  readonly rsv1: readonly boolean[];
  readonly compressedBytes: number;
}

export interface EchoServerOptions {
  readonly policy?: DeflatePolicy;
  /** Compression threshold for the echo; 0 compresses everything. */
  readonly threshold?: number;
  readonly maxMessageSize?: number;
}

/** A one-connection-at-a-time echo server on 127.0.0.1, port 0. */
export class DeflateEchoServer {
  readonly #listener: Deno.Listener;
  readonly #options: EchoServerOptions;
  readonly received: ReceivedMessage[] = [];
  /** The negotiated parameters of the last connection (null: declined). */
  params: DeflateParams | null = null;
  /** The Sec-WebSocket-Extensions offer of the last connection. */
  offer: string | null = null;
  /** How many echoes went out compressed. */
  compressedEchoes = 0;
  /** A failure the server hit (inflate error), if any. */
  failure: string | null = null;
  readonly #done: Promise<void>;
  readonly #conns = new Set<Deno.Conn>();

  constructor(options: EchoServerOptions = {}) {
    this.#options = options;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#done = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Stops listening and drops any connection still open. */
  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#done;
  }

  async #accept(): Promise<void> {
    const tasks: Promise<void>[] = [];
    try {
      for await (const conn of this.#listener) tasks.push(this.#serve(conn));
    } catch {
      // The listener was closed.
    }
    await Promise.all(tasks);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    try {
      await this.#session(conn);
    } catch (e) {
      this.failure ??= String(e);
    } finally {
      if (this.#conns.delete(conn)) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    }
  }

  async #session(conn: Deno.Conn): Promise<void> {
    const reader = conn.readable.getReader();
    const writer = conn.writable.getWriter();
    let buffer: Uint8Array = new Uint8Array(0);
    const more = async (): Promise<boolean> => {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer = concatBytes([buffer, value], buffer.length + value.length);
      return true;
    };
    // The opening handshake (RFC 6455 §4.2), just enough for a well-behaved client.
    let head = "";
    for (;;) {
      head = new TextDecoder().decode(buffer);
      if (head.includes(HEAD_END)) break;
      if (!await more()) return;
    }
    const headLength = head.indexOf(HEAD_END) + HEAD_END.length;
    buffer = buffer.slice(headLength);
    const headers = new Map<string, string[]>();
    for (const line of head.slice(0, headLength).split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    const offers = headers.get("sec-websocket-extensions") ?? null;
    this.offer = offers?.join(", ") ?? null;
    const params = negotiateDeflate(offers, this.#options.policy);
    this.params = params;
    const key = headers.get("sec-websocket-key")?.[0] ?? "";
    let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${acceptValue(key)}\r\n`;
    if (params) response += `Sec-WebSocket-Extensions: ${params.header}\r\n`;
    await writer.write(new TextEncoder().encode(response + "\r\n"));

    const maxMessageSize = this.#options.maxMessageSize ?? 64 * 1024 * 1024;
    let parts: Uint8Array[] = [];
    let rsv1: boolean[] = [];
    let opcode = -1;
    for (;;) {
      const h = parseFrameHeader(buffer);
      if (
        h === NEED_DATA || (!("error" in h) && buffer.length < h.headerLength + h.payloadLength)
      ) {
        if (!await more()) return;
        continue;
      }
      if ("error" in h) throw new Error(h.error);
      const payload = buffer.slice(h.headerLength, h.headerLength + h.payloadLength);
      buffer = buffer.slice(h.headerLength + h.payloadLength);
      if (h.mask) applyMask(payload, h.mask);
      if (h.opcode === Opcode.CLOSE) {
        for (const chunk of encodeFrame(Opcode.CLOSE, payload.subarray(0, 2))) {
          await writer.write(chunk);
        }
        return;
      }
      if (h.opcode === Opcode.PING) continue;
      if (h.opcode !== Opcode.CONTINUATION) opcode = h.opcode;
      parts.push(payload);
      rsv1.push((h.rsv & RSV1) !== 0);
      if (!h.fin) continue;
      const compressed = rsv1[0];
      const size = parts.reduce((n, p) => n + p.length, 0);
      let text: string;
      if (compressed) {
        const result = opcode === Opcode.TEXT
          ? inflateText(parts, { maxMessageSize })
          : inflateMessage(parts, { maxMessageSize });
        if (!result.ok) {
          this.failure = `${result.kind}: ${result.reason}`;
          return;
        }
        text = "text" in result ? result.text : new TextDecoder().decode(result.data);
      } else {
        text = new TextDecoder().decode(concatBytes(parts, size));
      }
      this.received.push({ text, rsv1, compressedBytes: compressed ? size : 0 });
      parts = [];
      rsv1 = [];
      const frames = new MessageFrames(text, { threshold: this.#options.threshold ?? 0 });
      const out = frames.forConnection(params);
      if (out !== frames.plain()) this.compressedEchoes++;
      for (const chunk of out) await writer.write(chunk);
    }
  }
}
