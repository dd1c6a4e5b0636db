// Tests the export checks on a handlers module (lib/api/load_handlers.ts `checkExports`).

import assert from "node:assert/strict";
import { HANDLER_NAMES } from "../lib/api/handlers.ts";
import { checkExports } from "../lib/api/load_handlers.ts";

Deno.test("known handler names that are functions are kept, with no warnings", () => {
  const text = () => {};
  const open = async () => {};
  const result = checkExports("h.ts", { text, open });
  assert.ok("handlers" in result);
  assert.deepStrictEqual(result.warnings, []);
  assert.equal((result.handlers as Record<string, unknown>).text, text);
  assert.equal((result.handlers as Record<string, unknown>).open, open);
});

Deno.test("every documented handler name is accepted", () => {
  const module = Object.fromEntries(HANDLER_NAMES.map((n) => [n, () => {}]));
  const result = checkExports("all.ts", module);
  assert.ok("handlers" in result);
  assert.deepStrictEqual(Object.keys(result.handlers).sort(), [...HANDLER_NAMES].sort());
  assert.deepStrictEqual(result.warnings, []);
});

for (
  const [value, described] of [
    ["hello", "a string"],
    [42, "a number"],
    [null, "null"],
    [undefined, "an undefined"],
    [[], "an array"],
    [{}, "an object"],
  ] as const
) {
  Deno.test(`a known name bound to ${described} is an error naming the export`, () => {
    const result = checkExports("bad.ts", { text: () => {}, close: value });
    assert.ok("error" in result);
    assert.match(result.error, /bad\.ts/);
    assert.match(result.error, /'close'/);
    assert.match(result.error, new RegExp(`is ${described}, not a function`));
    assert.doesNotMatch(result.error, /\n/);
  });
}

Deno.test("an unknown export is a warning naming it and the handler it resembles", () => {
  const result = checkExports("typo.ts", { onText: () => {}, text: () => {} });
  assert.ok("handlers" in result);
  assert.deepStrictEqual(Object.keys(result.handlers), ["text"]);
  assert.equal(result.warnings.length, 1);
  assert.match(result.warnings[0], /typo\.ts/);
  assert.match(result.warnings[0], /'onText'.*did you mean 'text'/);
});

Deno.test("an unknown export like no handler lists the known names", () => {
  const result = checkExports("odd.ts", { frobnicate: () => {} });
  assert.ok("handlers" in result);
  assert.equal(result.warnings.length, 1);
  for (const name of HANDLER_NAMES) assert.ok(result.warnings[0].includes(name), name);
});

Deno.test("an empty module loads with no handlers and no warnings", () => {
  assert.deepStrictEqual(checkExports("empty.ts", {}), { handlers: {}, warnings: [] });
});
