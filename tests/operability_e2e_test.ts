// The real server process: --log-format json turns every stderr line into a JSON object, and
// the public port serves none of the admin paths (/metrics, /healthz, /readyz, /).

import assert from "node:assert/strict";
import { startServer } from "./support/server_process.ts";

Deno.test("--log-format json: every line the server writes to stderr is one JSON object", async () => {
  const server = await startServer({ args: ["--log-format", "json"], logLevel: "info" });
  try {
    const lines = server.stderr().trim().split("\n");
    assert.ok(lines.length >= 1);
    for (const line of lines) {
      const record = JSON.parse(line);
      assert.equal(typeof record.time, "string");
      assert.ok(["info", "warn"].includes(record.level), line);
      assert.equal(typeof record.msg, "string");
    }
    assert.ok(
      lines.some((l) => /^listening on 127\.0\.0\.1:\d+/.test(JSON.parse(l).msg)),
      lines.join("\n"),
    );
  } finally {
    await server.stop();
  }
});

Deno.test("the public WebSocket port serves none of the admin paths", async () => {
  // The start page (also at /) is off here, so that / must refuse like the admin paths.
  const server = await startServer({ args: ["--page", "off"] });
  try {
    for (const path of ["/metrics", "/healthz", "/readyz", "/", "/status.json"]) {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
      const body = await res.text();
      assert.notEqual(res.status, 200, path);
      assert.doesNotMatch(body, /push_connections_open|<svg|^ok$|^ready$/m, path);
    }
  } finally {
    await server.stop();
  }
});
