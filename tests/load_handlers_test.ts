// Tests the export checks on a handlers module (lib/api/load_handlers.ts `checkExports`).

import assert from "node:assert/strict";
import { HANDLER_NAMES } from "../lib/api/handlers.ts";
import { reportSkip } from "./support/tools.ts";
import { checkExports, describeImportError, loadHandlers } from "../lib/api/load_handlers.ts";

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

/** Writes `files` into a fresh directory, runs `fn` there, and removes the directory. */
async function withFiles(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-load-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function loadError(path: string): Promise<string> {
  const result = await loadHandlers(path);
  assert.ok("error" in result, JSON.stringify(result));
  assert.doesNotMatch(result.error, /[\n\r]/, "one line");
  assert.ok(!result.error.includes("\u001b"), "no terminal colours");
  return result.error;
}

Deno.test("a syntax error is reported as file:line:column and the message, with no TypeError prefix", () =>
  withFiles({ "broken.ts": "// line 1\nexport function text( {\n" }, async (dir) => {
    const error = await loadError(`${dir}/broken.ts`);
    assert.match(error, new RegExp(`^handlers file ${dir}/broken\\.ts:2:\\d+: syntax error: \\S`));
    assert.doesNotMatch(error, /TypeError|SyntaxError:/);
  }));

Deno.test("an import the handlers file makes that is missing names the importing line", () =>
  withFiles({ "h.ts": 'export const x = 1;\nimport "./gone.ts";\n' }, async (dir) => {
    assert.equal(
      await loadError(`${dir}/h.ts`),
      `handlers file ${dir}/h.ts:2:8: module not found: ${dir}/gone.ts`,
    );
  }));

Deno.test("an error thrown by the file's top-level code names the line it came from", () =>
  withFiles(
    { "h.ts": 'const secret = "";\nif (!secret) throw new Error("set SECRET");\n' },
    async (dir) => {
      assert.equal(
        await loadError(`${dir}/h.ts`),
        `cannot load handlers file ${dir}/h.ts: set SECRET (at ${dir}/h.ts:2:20)`,
      );
    },
  ));

Deno.test("an unreadable handlers file gives the cause (deno's 'Import … failed' shape)", () => {
  // The message deno 2.9.6 gives for a mode-000 file read by another user.
  const error = Object.assign(
    new TypeError("Import 'file:///srv/h.ts' failed.\n    0: Permission denied (os error 13)"),
    { code: "ERR_MODULE_NOT_FOUND" },
  );
  assert.equal(
    describeImportError("h.ts", { url: "file:///srv/h.ts", error }),
    "cannot read handlers file h.ts: Permission denied (os error 13)",
  );
  assert.equal(
    describeImportError("h.ts", { url: "file:///srv/other.ts", error }),
    "cannot read handlers file h.ts (importing /srv/h.ts): Permission denied (os error 13)",
  );
});

Deno.test({
  name: "an unreadable handlers file (mode 000) is one line with 'Permission denied'",
  // root reads any file, so the mode cannot make it unreadable.
  ignore: Deno.uid() === 0,
  fn: () =>
    withFiles({ "h.ts": "export function text() {}\n" }, async (dir) => {
      await Deno.chmod(`${dir}/h.ts`, 0o000);
      assert.match(
        await loadError(`${dir}/h.ts`),
        /^cannot read handlers file .*Permission denied/,
      );
    }),
});
if (Deno.uid() === 0) {
  reportSkip("unreadable handlers file test", "running as root, who reads any file");
}

Deno.test("a handlers file outside the repository imports the types by path; `import type` loads nothing", async () => {
  const api = new URL("../lib/api/handlers.ts", import.meta.url).pathname;
  const body = (from: string) =>
    `import type { Connection, Server } from "${from}";\n` +
    "export function text(conn: Connection, message: string, _server: Server) {\n" +
    "  conn.send(message);\n}\n";
  await withFiles(
    { "real.ts": body(api), "gone.ts": body("/nonexistent/lib/api/handlers.ts") },
    async (dir) => {
      // As the README says: deno check finds the types at the path given.
      const check = await new Deno.Command(Deno.execPath(), {
        args: ["check", "--quiet", `${dir}/real.ts`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(check.success, new TextDecoder().decode(check.stderr));
      for (const name of ["real.ts", "gone.ts"]) {
        const result = await loadHandlers(`${dir}/${name}`);
        assert.ok("handlers" in result, JSON.stringify(result));
        assert.equal(typeof result.handlers.text, "function");
      }
    },
  );
});
