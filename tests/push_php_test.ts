// Tests examples/push.php, the PHP helper that writes FIFO commands: its lines are read back
// from a plain FIFO and classified by lib/channels/commands.ts, lines over PIPE_BUF are refused
// with a reason, and a FIFO without a reader fails at once instead of blocking.

import assert from "node:assert/strict";
import { classifyLine } from "../lib/channels/commands.ts";
import { runPushPhp } from "./support/php.ts";
import { toolFor } from "./support/tools.ts";

const php = toolFor("php", "examples/push.php tests");
const mkfifo = toolFor("mkfifo", "examples/push.php tests");

/** Runs PHP statements with push.php loaded; each `out(...)` becomes one JSON result. */
async function runPhp(fifo: string, body: string): Promise<unknown[]> {
  const code = `$results = [];
    function out($ok) { global $results; $results[] = [$ok, push_last_error()]; }
    ${body}
    echo json_encode($results);`;
  return await runPushPhp(php!, fifo, code) as unknown[];
}

async function withFifo(f: (fifo: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-php-" });
  const fifo = `${dir}/in.fifo`;
  try {
    const made = await new Deno.Command(mkfifo!, { args: [fifo] }).output();
    assert.equal(made.code, 0);
    await f(fifo);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads what is in the FIFO now (the reader holds it open read-write, so it never sees EOF). */
async function drain(reader: Deno.FsFile, expectedLines: number): Promise<string[]> {
  let text = "";
  const buffer = new Uint8Array(65536);
  while (text.split("\n").length - 1 < expectedLines) {
    const n = await reader.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text.split("\n").slice(0, -1);
}

Deno.test({
  name: "push.php writes one command line per call, each classified as intended",
  ignore: php === null || mkfifo === null,
  fn: () =>
    withFifo(async (fifo) => {
      // Read-write keeps a reader on the FIFO without blocking the open (Linux).
      using reader = await Deno.open(fifo, { read: true, write: true });
      const results = await runPhp(
        fifo,
        `out(push_publish('news', ['title' => "Line\\nbreak", 'url' => 'a/b']));
         out(push_to_user('42', [1, 2]));
         out(push_disconnect('42'));
         out(push_broadcast('hello everyone'));
         out(push_broadcast('{"type":"chat"}'));`,
      );
      assert.deepStrictEqual(results, Array(5).fill([true, ""]));
      const lines = await drain(reader, 5);
      assert.deepStrictEqual(lines.map(classifyLine), [
        { kind: "publish", channel: "news", data: '{"title":"Line\\nbreak","url":"a/b"}' },
        { kind: "user", user: "42", data: "[1,2]" },
        { kind: "disconnect", user: "42" },
        { kind: "broadcast", text: "hello everyone" },
        { kind: "broadcast", text: '{"type":"chat"}' },
      ]);
    }),
});

Deno.test({
  name: "push.php refuses a line over PIPE_BUF (4096 bytes) and bad input, with a reason",
  ignore: php === null || mkfifo === null,
  fn: () =>
    withFifo(async (fifo) => {
      using reader = await Deno.open(fifo, { read: true, write: true });
      const results = await runPhp(
        fifo,
        `out(push_publish('news', str_repeat('x', 5000)));
         out(push_publish('news', str_repeat('x', 4096 - strlen('{"channel":"news","data":""}') - 1)));
         out(push_publish('bad name', 1));
         out(push_broadcast("two\\nlines"));
         out(push_broadcast('{"channel":"news"}'));
         out(push_broadcast('{not json'));
         out(push_to_user('', 1));`,
      ) as [boolean, string][];
      assert.match(results[0][1], /line of 5029 bytes is over PIPE_BUF \(4096\)/);
      assert.deepStrictEqual(results[1], [true, ""], "exactly 4096 bytes is accepted");
      for (const [ok, reason] of [results[0], ...results.slice(2)]) {
        assert.equal(ok, false);
        assert.ok(reason.length > 0);
      }
      const lines = await drain(reader, 1);
      assert.equal(lines.length, 1);
      assert.equal(new TextEncoder().encode(lines[0] + "\n").length, 4096);
    }),
});

Deno.test({
  name: "push.php fails at once, without blocking, when nobody reads the FIFO",
  ignore: php === null || mkfifo === null,
  fn: () =>
    withFifo(async (fifo) => {
      const results = await runPhp(fifo, `out(push_publish('news', 1)); out(push_broadcast('x'));`);
      assert.deepStrictEqual(results, [
        [false, `push-server is not reading ${fifo}`],
        [false, `push-server is not reading ${fifo}`],
      ]);
      const missing = await runPhp(`${fifo}.absent`, `out(push_publish('news', 1));`);
      assert.match((missing as [boolean, string][])[0][1], /is not a FIFO/);
    }),
});
