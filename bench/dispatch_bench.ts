// Micro-benchmark of what --admin-listen adds per client message on the handler path
// (`deno bench bench/dispatch_bench.ts`): Dispatch.message with handler durations measured
// (timed, as with --admin-listen: two performance.now() calls, closures, a histogram) against
// the untimed path (one counter), with a handler that does nothing.

import type { Connection, Handlers, Logger, Server } from "../lib/api/handlers.ts";
import { PushStats } from "../lib/metrics/stats.ts";
import { Dispatch } from "../lib/server/dispatch.ts";

const log = { error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;
const handlers: Handlers = { text: () => {} };
const conn = { id: 1 } as unknown as Connection;
const server = {} as Server;
const event = { type: "text", data: "hello" } as const;

function dispatch(timed: boolean): Dispatch {
  return new Dispatch(handlers, {
    server,
    log,
    upgradeTimeout: 5000,
    stats: new PushStats(),
    timed,
  });
}
const untimed = dispatch(false);
const timed = dispatch(true);

Deno.bench(
  "one text message, untimed (no --admin-listen)",
  { group: "message", baseline: true },
  () => {
    untimed.message(conn, event);
  },
);

Deno.bench("one text message, timed (--admin-listen)", { group: "message" }, () => {
  timed.message(conn, event);
});

Deno.bench("two performance.now() calls", { group: "clock" }, () => {
  performance.now();
  performance.now();
});
