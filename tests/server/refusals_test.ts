// Tests that refused connections are visible at the default log level, rate-limited so that a
// flood cannot fill the journal, with a summary of what was suppressed.

import assert from "node:assert/strict";
import { withInProcessServer } from "../support/in_process.ts";
import { RawClient, upgradeRequest } from "../support/raw_client.ts";

Deno.test({
  name: "a wrong Origin is refused with 403 and logged at info, at most 10 lines then a summary",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withInProcessServer(
      { args: ["--allowed-origin", "https://good.example"] },
      async ({ port, server, lines, waitForLog }) => {
        const ATTEMPTS = 25;
        for (let i = 0; i < ATTEMPTS; i++) {
          const c = await RawClient.connect(port);
          await c.write(upgradeRequest({ headers: { Origin: "https://evil.example" } }));
          assert.equal((await c.readResponse()).status, 403);
          c.close();
        }
        await server.shutdown();
        await waitForLog(/more Origin refusals suppressed/);
        const refusals = lines.filter((l) =>
          /^info: refused connection from .*: 403 Origin/.test(l)
        );
        assert.equal(refusals.length, 10);
        assert.match(lines.join("\n"), /15 more Origin refusals suppressed/);
      },
    ),
});
