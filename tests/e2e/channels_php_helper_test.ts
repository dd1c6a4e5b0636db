// End to end through the real server: examples/push.php, the PHP helper a web application uses,
// writes FIFO lines that arrive on subscribed clients: push_publish() on the channel with its
// offset, push_broadcast() on plain clients; a line over PIPE_BUF is refused and nothing of it
// arrives; with the server down, a call fails at once with a reason instead of blocking.

import assert from "node:assert/strict";
import { runPushPhp } from "../support/php.ts";
import { toolFor } from "../support/tools.ts";
import { PushV1Client, RestartableServer } from "../support/push_v1.ts";

const php = toolFor(
  "php",
  "examples/push.php against the real server (apt-get install -y php-cli)",
);

/** Runs PHP with push.php loaded; `body` returns an array printed as JSON. */
function runPhp(fifo: string, body: string): Promise<unknown> {
  return runPushPhp(php!, fifo, `echo json_encode((function () { ${body} })());`);
}

Deno.test({
  name:
    "push.php's lines arrive: publications on the subscribed channel, broadcasts on plain clients",
  ignore: php === null,
  async fn() {
    const server = await RestartableServer.create();
    try {
      const client = await PushV1Client.open(server.port);
      assert.equal((await client.subscribe("news")).type, "subscribed");
      const plain = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      const plainLine = new Promise<string>((resolve) =>
        plain.addEventListener("message", (e) => resolve(String(e.data)), { once: true })
      );
      await new Promise((resolve) => plain.addEventListener("open", resolve));

      const results = await runPhp(
        server.fifo,
        `return [
          push_publish('news', ['title' => 'Grüße', 'n' => 1]),
          push_publish('news', str_repeat('x', 5000)), push_last_error(),
          push_publish('other', ['n' => 0]),
          push_publish('news', ['n' => 2]),
          push_broadcast('plain from php'),
        ];`,
      ) as unknown[];
      assert.deepStrictEqual(results.slice(0, 2), [true, false]);
      assert.match(String(results[2]), /over PIPE_BUF/);
      assert.deepStrictEqual(results.slice(3), [true, true, true]);

      const publications = [];
      while (publications.length < 2) {
        const m = await client.next();
        if (m.type === "publication") publications.push(m);
      }
      assert.deepStrictEqual(publications, [
        { type: "publication", channel: "news", offset: 1, data: { title: "Grüße", n: 1 } },
        { type: "publication", channel: "news", offset: 2, data: { n: 2 } },
      ]);
      assert.equal(await plainLine, "plain from php");
      plain.close();
      client.close();

      // With the server down the helper fails at once, with a reason.
      await server.kill();
      const down = await runPhp(
        server.fifo,
        "return [push_publish('news', ['n' => 3]), push_last_error()];",
      ) as unknown[];
      assert.equal(down[0], false);
      assert.match(String(down[1]), /not reading/);
    } finally {
      await server.stop();
    }
  },
});
