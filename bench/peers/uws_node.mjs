// Peer server for bench/run.ts: uWebSockets.js on Node, loaded from its .node binary directly
// (the npm package silently falls back to ws when the binary fails to load). Broadcasts each
// FIFO line to every client (publish), echoes every message. Usage: node uws_node.mjs <fifo>
// Prints "LISTENING <port>" once it accepts connections.

import { createRequire } from "node:module";
import { readFifoLines } from "./fifo_lines.mjs";

const require = createRequire(import.meta.url);
const dir = process.env.BENCH_NODE_MODULES + "/@trufflesuite/uws-js-unofficial/dist";
const uws = require(
  `${dir}/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
);
const fifo = process.argv[2];
const MiB = 1024 * 1024;

const app = uws.App().ws("/*", {
  compression: uws.DISABLED,
  // Raised for fairness: the defaults cap payloads small and drop messages past 64 KiB of
  // backpressure.
  maxPayloadLength: 64 * MiB,
  maxBackpressure: 256 * MiB,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
  open: (ws) => ws.subscribe("all"),
  message: (ws, message, isBinary) => ws.send(message, isBinary),
});

app.listen("127.0.0.1", 0, (token) => {
  if (!token) throw new Error("uWS: listen failed");
  console.log(`LISTENING ${uws.us_socket_local_port(token)}`);
  readFifoLines(fifo, (line) => app.publish("all", line, false));
});
