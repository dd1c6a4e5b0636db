// Peer server for bench/run.ts: Bun.serve's WebSocket. Broadcasts each FIFO line to every
// client (publish), echoes every message. Usage: bun bun.ts <fifo>
// Prints "LISTENING <port>" once it accepts connections.
// deno-lint-ignore-file no-explicit-any

import { createReadStream } from "node:fs";

declare const Bun: any; // Bun's types are not installed; this file runs only under bun.
const fifo = process.argv[2];
const MiB = 1024 * 1024;

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req: Request, srv: any) {
    if (srv.upgrade(req)) return undefined;
    return new Response("WebSocket only", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    // Raised for fairness: past backpressureLimit messages are dropped, and maxPayloadLength
    // caps the W3 echo.
    maxPayloadLength: 64 * MiB,
    backpressureLimit: 256 * MiB,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    open: (ws: any) => ws.subscribe("all"),
    message: (ws: any, message: string | Uint8Array) => ws.send(message),
  },
});

function readFifo(): void {
  let rest = "";
  const stream = createReadStream(fifo, { encoding: "utf8", highWaterMark: 64 * 1024 });
  stream.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      if (line !== "") server.publish("all", line);
    }
  });
  stream.on("end", readFifo);
}

console.log(`LISTENING ${server.port}`);
readFifo();
