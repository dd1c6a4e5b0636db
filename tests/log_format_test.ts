// Tests the log format (lib/api/log.ts createLogger): text lines by default, JSON with --log-format json.

import assert from "node:assert/strict";
import { createLogger } from "../lib/api/log.ts";

function capture(
  options: { level: "error" | "warn" | "info" | "debug"; format?: "text" | "json" },
) {
  const lines: string[] = [];
  const log = createLogger({
    ...options,
    write: (line) => lines.push(line),
    now: () => new Date("2026-12-02T13:00:00.000Z"),
  });
  return { log, lines };
}

Deno.test("text is the default format: `level: message` and key=value fields", () => {
  const { log, lines } = capture({ level: "info" });
  log.info("connection open", { conn: 7, event: "open", from: "10.0.0.1:5000" });
  log.warn("two\nlines");
  assert.deepEqual(lines, [
    "info: connection open conn=7 event=open from=10.0.0.1:5000\n",
    "warn: two | lines\n",
  ]);
});

Deno.test("text: a field value with spaces or quotes is quoted, undefined fields left out", () => {
  const { log, lines } = capture({ level: "info" });
  log.info("closed", { reason: 'going "away" now', code: undefined, ok: true });
  assert.equal(lines[0], 'info: closed reason="going \\"away\\" now" ok=true\n');
});

Deno.test("json: one object per line with time, level, msg and the fields", () => {
  const { log, lines } = capture({ level: "debug", format: "json" });
  log.error("handler text threw", { conn: 3, event: "text" });
  log.debug("multi\nline message");
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(line.endsWith("\n"));
    assert.equal(line.indexOf("\n"), line.length - 1, "exactly one line");
  }
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2026-12-02T13:00:00.000Z",
    level: "error",
    msg: "handler text threw",
    conn: 3,
    event: "text",
  });
  assert.equal(JSON.parse(lines[1]).msg, "multi\nline message");
});

Deno.test("json: fields cannot overwrite time, level or msg", () => {
  const { log, lines } = capture({ level: "info", format: "json" });
  log.info("real", { msg: "fake", level: "debug", time: "never", conn: 1 });
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2026-12-02T13:00:00.000Z",
    level: "info",
    msg: "real",
    conn: 1,
  });
});

Deno.test("lines below the level are not written, in either format", () => {
  for (const format of ["text", "json"] as const) {
    const { log, lines } = capture({ level: "warn", format });
    log.info("no");
    log.debug("no");
    log.warn("yes");
    log.error("yes");
    assert.equal(lines.length, 2, format);
  }
});

Deno.test("the server's stderr carries JSON lines with --log-format json", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { createLogger } from "${new URL("../lib/api/log.ts", import.meta.url)}";
       createLogger({ level: "info", format: "json" }).info("hello", { conn: 1 });`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stderr).trim();
  const record = JSON.parse(line);
  assert.equal(record.msg, "hello");
  assert.equal(record.conn, 1);
  assert.ok(!Number.isNaN(Date.parse(record.time)));
});
