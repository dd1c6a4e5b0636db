// Test support: an npm:ws client whose messages are queued, so tests await them in order.
// (For exact bytes on the wire, use the raw client in raw_client.ts.)

// @ts-types="@types/ws"
import { WebSocket } from "ws";

const decoder = new TextDecoder();

export interface CloseSeen {
  readonly code: number;
  readonly reason: string;
}

/** An npm:ws client whose messages are queued, so tests can await them in order. */
export interface WsClient {
  readonly ws: WebSocket;
  /** The next message (text as string, binary as Uint8Array); rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<string | Uint8Array>;
  /** Every message received and not yet taken by `next`. */
  pending(): readonly (string | Uint8Array)[];
  /** Resolves with the close code and reason the server sent (1006 when none). */
  readonly closed: Promise<CloseSeen>;
  /**
   * Sends a ping and waits for its pong: the server has read everything sent before, and its
   * connection is registered (it answers pings only once the connection is open).
   */
  roundTrip(timeoutMs?: number): Promise<void>;
}

export interface WsOptions {
  readonly protocols?: string | string[];
  readonly headers?: Record<string, string>;
  /** The largest message the client accepts (npm:ws's default is 100 MiB). */
  readonly maxPayload?: number;
  /** The local address to connect from, e.g. "127.0.0.2" to look like another host. */
  readonly localAddress?: string;
  /** The host to connect to (default 127.0.0.1). */
  readonly host?: string;
}

/** Opens an npm:ws connection; rejects with the HTTP status when the server refuses. */
export function connectWs(port: number, path = "/", options: WsOptions = {}): Promise<WsClient> {
  const host = options.host ?? "127.0.0.1";
  const ws = new WebSocket(`ws://${host}:${port}${path}`, options.protocols ?? [], {
    headers: options.headers,
    maxPayload: options.maxPayload,
    localAddress: options.localAddress,
  });
  ws.binaryType = "nodebuffer";
  const queue: (string | Uint8Array)[] = [];
  const waiters: (() => void)[] = [];
  ws.on("message", (data: Uint8Array, isBinary: boolean) => {
    queue.push(isBinary ? new Uint8Array(data) : decoder.decode(data));
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<CloseSeen>((resolve) => {
    ws.on("close", (code: number, reason: Uint8Array) => {
      resolve({ code, reason: decoder.decode(reason) });
      for (const w of waiters.splice(0)) w();
    });
  });
  let roundTrips = 0;
  const client: WsClient = {
    ws,
    closed,
    pending: () => queue,
    roundTrip(timeoutMs = 5000) {
      const payload = `rt${++roundTrips}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          ws.off("pong", onPong);
          reject(new Error(`no pong within ${timeoutMs} ms`));
        }, timeoutMs);
        const onPong = (data: Uint8Array) => {
          if (decoder.decode(data) !== payload) return;
          clearTimeout(timer);
          ws.off("pong", onPong);
          resolve();
        };
        ws.on("pong", onPong);
        ws.ping(payload);
      });
    },
    next(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no message within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const check = () => {
          if (queue.length > 0) {
            clearTimeout(timer);
            resolve(queue.shift()!);
          } else if (ws.readyState === WebSocket.CLOSED) {
            clearTimeout(timer);
            reject(new Error("connection closed while waiting for a message"));
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("unexpected-response", (_req: unknown, res: { statusCode: number }) => {
      reject(new HttpRefusal(res.statusCode));
      ws.terminate();
    });
    ws.once("error", (e: Error) => reject(e));
  });
}

/** The status a server answered instead of 101 (npm:ws's "unexpected-response"). */
export class HttpRefusal extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`server answered ${status}`);
    this.name = "HttpRefusal";
    this.status = status;
  }
}

/** Closes a ws client and waits for the close to complete. */
export async function closeWs(client: WsClient): Promise<void> {
  if (client.ws.readyState !== WebSocket.CLOSED) client.ws.close(1000);
  await client.closed;
}
