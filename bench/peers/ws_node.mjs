// Peer server for bench/run.ts: npm ws on Node. Broadcasts each FIFO line to every client,
// echoes every message. Usage: node ws_node.mjs <fifo> (ws resolved from bench/out).
// Prints "LISTENING <port>" once it accepts connections.

import { createServer } from "node:http";
import { createRequire } from "node:module";
import { readFifoLines } from "./fifo_lines.mjs";

const require = createRequire(process.env.BENCH_NODE_MODULES + "/");
const { WebSocketServer } = require("ws");
const fifo = process.argv[2];

const http = createServer();
const wss = new WebSocketServer({
  server: http,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: false,
  clientTracking: true,
});
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});

http.listen(0, "127.0.0.1", () => {
  console.log(`LISTENING ${http.address().port}`);
  readFifoLines(fifo, (line) => {
    for (const ws of wss.clients) ws.send(line);
  });
});
