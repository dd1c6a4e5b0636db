// Checks that the pure modules stay pure (STYLE.md rule 1): no Deno, timers, clock,
// randomness or console. Comments are removed first, so prose may mention them.

import assert from "node:assert/strict";

/** The folders of lib/ that hold the pure core: every .ts file in them is checked. */
export const PURE_FOLDERS = ["protocol", "policy", "channels"];

/** Modules outside lib/ a pure module may import: computation only, no I/O. */
const ALLOWED_EXTERNAL = ["node:crypto", "node:zlib"];

const LIB = new URL("../lib/", import.meta.url);

function pureFiles(): string[] {
  const files: string[] = [];
  for (const folder of PURE_FOLDERS) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(new URL(`${folder}/`, LIB))];
    } catch {
      continue; // A folder that does not exist yet holds nothing impure.
    }
    for (const e of entries) {
      if (e.isFile && e.name.endsWith(".ts")) files.push(`${folder}/${e.name}`);
    }
  }
  return files.sort();
}

const PURE = pureFiles();

const FORBIDDEN: Record<string, RegExp> = {
  "Deno": /\bDeno\s*\./,
  "setTimeout": /\bsetTimeout\b/,
  "setInterval": /\bsetInterval\b/,
  "Date": /\bDate\b/,
  "performance.now": /\bperformance\b/,
  "Math.random": /\bMath\s*\.\s*random\b/,
  "crypto.getRandomValues": /\bgetRandomValues\b|\brandomUUID\b|\brandomBytes\b/,
  "console": /\bconsole\b/,
};

/** Removes // and /* *\/ comments, keeping strings (a rough but sufficient pass for lib/). */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

for (const file of PURE) {
  Deno.test(`lib/${file} uses no Deno, timers, clock, randomness or console (STYLE rule 1)`, async () => {
    const source = stripComments(
      await Deno.readTextFile(new URL(`../lib/${file}`, import.meta.url)),
    );
    for (const [name, pattern] of Object.entries(FORBIDDEN)) {
      const match = pattern.exec(source);
      assert.equal(
        match,
        null,
        `lib/${file} uses ${name}: …${
          source.slice(Math.max(0, (match?.index ?? 0) - 40), (match?.index ?? 0) + 40)
        }…`,
      );
    }
  });
}

Deno.test("the purity check catches each forbidden use", () => {
  const samples: Record<string, string> = {
    "Deno": "await Deno.readFile(p)",
    "setTimeout": "setTimeout(f, 1)",
    "setInterval": "const t = setInterval(f, 1)",
    "Date": "const now = Date.now()",
    "performance.now": "performance.now()",
    "Math.random": "Math.random()",
    "crypto.getRandomValues": "crypto.getRandomValues(key)",
    "console": "console.log(x)",
  };
  for (const [name, code] of Object.entries(samples)) {
    assert.match(stripComments(code), FORBIDDEN[name], name);
    assert.doesNotMatch(stripComments(`// ${code}`), FORBIDDEN[name], `${name} in a comment`);
  }
});

Deno.test("the pure core folders hold modules to check", () => {
  assert.ok(PURE.length >= 7, `found only ${PURE.join(", ")}`);
});

Deno.test("pure modules import only other pure modules, or node:crypto and node:zlib", async () => {
  for (const file of PURE) {
    const source = await Deno.readTextFile(new URL(`../lib/${file}`, import.meta.url));
    for (const [line, spec] of source.matchAll(/^import[^"]*"([^"]+)"/gm)) {
      const target = new URL(spec, new URL(file, LIB)).href.slice(LIB.href.length);
      // The handler API's types may be named: a type import leaves nothing at run time.
      const typeOnly = line.startsWith("import type") && target === "api/handlers.ts";
      const allowed = PURE.includes(target) || ALLOWED_EXTERNAL.includes(spec) || typeOnly;
      assert.ok(allowed, `lib/${file} imports ${spec}`);
    }
  }
});
