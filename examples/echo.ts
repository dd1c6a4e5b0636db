// Echoes every text and binary message back to its sender (used by fuzzingclient.json).

import type { Connection } from "../lib/api/handlers.ts";

export function text(conn: Connection, message: string): void {
  conn.send(message);
}

export function binary(conn: Connection, data: Uint8Array): void {
  conn.send(data);
}
