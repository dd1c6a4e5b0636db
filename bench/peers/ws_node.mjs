// Peer server for bench/run.ts: npm ws on Node. Broadcasts each FIFO line to every client,
// echoes every message. Usage: node ws_node.mjs <fifo> (ws resolved from bench/out).
// Prints "LISTENING <port>" once it accepts connections.

import { createReadStream } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";

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

function readFifo() {
  let rest = "";
  const stream = createReadStream(fifo, { encoding: "utf8", highWaterMark: 64 * 1024 });
  stream.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop();
    for (const line of lines) {
      if (line === "") continue;
      for (const ws of wss.clients) ws.send(line);
    }
  });
  stream.on("end", readFifo);
}

http.listen(0, "127.0.0.1", () => {
  console.log(`LISTENING ${http.address().port}`);
  readFifo();
});
