// Peer server for bench/run.ts: Deno.serve + Deno.upgradeWebSocket. Broadcasts each FIFO line
// to every client, echoes every message. Usage: deno run -A deno_upgrade.ts <fifo>
// Prints "LISTENING <port>" once it accepts connections.

const fifo = Deno.args[0];
const sockets = new Set<WebSocket>();

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`LISTENING ${port}`),
}, (req) => {
  const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  socket.onopen = () => sockets.add(socket);
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => sockets.delete(socket);
  socket.onmessage = (e) => socket.send(e.data);
  return response;
});

async function readFifo(): Promise<void> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const file = await Deno.open(fifo, { read: true });
    let rest = "";
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      const lines = (rest + decoder.decode(buf.subarray(0, n), { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line === "") continue;
        for (const s of sockets) s.send(line);
      }
    }
    file.close();
  }
}

readFifo();
await server.finished;
