// Handlers for bench/memory.ts: examples/echo.ts, plus one probe message that answers with the
// server's own memory figures (after a full garbage collection when the server runs with
// --v8-flags=--expose-gc), so that the bench can tell live heap from memory not returned.

import type { Connection } from "../lib/api/handlers.ts";
import { binary, text as echoText } from "../examples/echo.ts";

/** The text message that asks for memory figures instead of an echo (same in memory.ts). */
const PROBE = "\u0000memory?";

export { binary };

export function text(conn: Connection, message: string): void {
  if (message !== PROBE) return echoText(conn, message);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  conn.send(JSON.stringify({ gc: gc !== undefined, ...Deno.memoryUsage() }));
}
