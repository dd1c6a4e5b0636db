// Tests the channel name rule (lib/channels/names.ts).

import assert from "node:assert/strict";
import {
  channelNameError,
  isChannelName,
  MAX_CHANNEL_NAME_LENGTH,
} from "../../lib/channels/names.ts";

Deno.test("channel names of [A-Za-z0-9_.:@-] up to 128 characters are valid", () => {
  for (const name of ["news", "user:42", "a.b_c-d@e", "X", "x".repeat(MAX_CHANNEL_NAME_LENGTH)]) {
    assert.equal(channelNameError(name), null, name);
    assert.ok(isChannelName(name));
  }
});

Deno.test("empty, overlong, non-string and other characters are refused with a reason", () => {
  const bad: unknown[] = [
    "",
    "x".repeat(MAX_CHANNEL_NAME_LENGTH + 1),
    "a b",
    "a/b",
    'a"b',
    "é",
    "a\nb",
    42,
    null,
    undefined,
    ["news"],
  ];
  for (const name of bad) {
    const reason = channelNameError(name);
    assert.equal(typeof reason, "string", String(name));
    assert.ok(!isChannelName(name));
  }
});
