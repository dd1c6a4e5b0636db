// Test support: runs PHP code with examples/push.php loaded and PUSH_FIFO set, and returns what
// the code printed as JSON. The PHP binary comes from toolFor("php") (tests/support/tools.ts).

import assert from "node:assert/strict";

const HELPER = new URL("../../examples/push.php", import.meta.url).pathname;

/**
 * Runs `php -r` with push.php required first, then `code`, which must echo one JSON value.
 * Fails the test on a non-zero exit or on any output to stderr (a PHP warning).
 */
export async function runPushPhp(php: string, fifo: string, code: string): Promise<unknown> {
  const result = await new Deno.Command(php, {
    args: ["-r", `require ${JSON.stringify(HELPER)};\n${code}`],
    env: { PUSH_FIFO: fifo },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, stderr);
  assert.equal(stderr, "", "no PHP warnings");
  return JSON.parse(new TextDecoder().decode(result.stdout));
}
