// Shared by the Node peer servers: reads a FIFO forever, reopening it when its writers close,
// and calls onLine for each non-empty line (split on "\n").

import { createReadStream } from "node:fs";

export function readFifoLines(fifo, onLine) {
  let rest = "";
  const stream = createReadStream(fifo, { encoding: "utf8", highWaterMark: 64 * 1024 });
  stream.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop();
    for (const line of lines) {
      if (line !== "") onLine(line);
    }
  });
  stream.on("end", () => readFifoLines(fifo, onLine));
}
