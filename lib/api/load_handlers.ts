// Owns loading a handlers file: resolving its name, importing it, and checking its exports.
// The same code path serves `deno run` and the compiled executable.

import { HANDLER_NAMES, type Handlers } from "./handlers.ts";
import { describeError, displayUrl, errorMessage } from "./log.ts";

/** Handlers files shipped with push-server, loadable by name (and embedded in the executable). */
export const BUILTIN_HANDLERS: Readonly<Record<string, URL>> = {
  echo: new URL("../../examples/echo.ts", import.meta.url),
};

export type LoadResult =
  | { readonly handlers: Handlers; readonly warnings: readonly string[] }
  | { readonly error: string };

/** The project directory (where deno.json is); inside a compiled executable, its embedded copy. */
const PROJECT_ROOT = new URL("../../", import.meta.url);

/**
 * Loads `spec`: a built-in name, or a path relative to the working directory. A relative path
 * that is not there is then looked up in the project directory, which is how an executable
 * finds a handlers file embedded with `deno compile --include` (see README, "Single executable").
 */
export async function loadHandlers(spec: string): Promise<LoadResult> {
  let url = BUILTIN_HANDLERS[spec];
  if (!url) {
    const candidates = [fileUrl(spec)];
    if (!spec.startsWith("/")) candidates.push(new URL(escapePath(spec), PROJECT_ROOT));
    let problem = `handlers file ${spec} not found`;
    for (const candidate of candidates) {
      try {
        const info = await Deno.stat(candidate);
        if (!info.isFile) return { error: `handlers file ${spec} is not a file` };
        url = candidate;
        break;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          problem = `handlers file ${spec}: ${errorMessage(e)}`;
        }
      }
    }
    if (!url) return { error: problem };
  }
  let module: Record<string, unknown>;
  try {
    module = await import(url.href);
  } catch (e) {
    return { error: describeImportError(spec, { url: url.href, error: e }) };
  }
  return checkExports(spec, module);
}

function fileUrl(path: string): URL {
  const base = new URL(`file://${Deno.cwd().replace(/\/?$/, "/")}`);
  return new URL(escapePath(path), base);
}

function escapePath(path: string): string {
  return path.replaceAll("%", "%25").replaceAll("#", "%23").replaceAll("?", "%3F");
}

// deno's terminal colours, which some import errors carry.
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
/** Where deno's module loader puts the location: a last line `at file:///…:line:col`. */
const LOADER_AT = /^\s*at ((?:file|https?):\/\/\S+?):(\d+):(\d+)\s*$/m;

/** deno's module loader failed (syntax, resolution, reading), as opposed to the module's code. */
function isLoaderError(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  return (error as { code?: string }).code === "ERR_MODULE_NOT_FOUND" ||
    /^Import '/.test(error.message);
}

/**
 * One line for a failed `import()` of handlers file `spec` (loaded from `url`). deno wraps
 * loader errors in a TypeError whose message holds the real one, a code excerpt and the
 * location on separate lines: keep the location as `file:line:column`, the message, and for
 * an unreadable file the cause (`Permission denied`). An error thrown by the module's own
 * top-level code is reported with the frame it came from.
 */
export function describeImportError(
  spec: string,
  { url, error }: { url: string; error: unknown },
): string {
  if (!isLoaderError(error)) {
    return `cannot load handlers file ${spec}: ${describeError(error)}`;
  }
  const message = error.message.replace(ANSI, "");
  const lines = message.split("\n");
  const at = LOADER_AT.exec(message);
  const where = at ? `${displayUrl(at[1])}:${at[2]}:${at[3]}` : undefined;

  const failed = /^Import '([^']+)' failed\.?$/.exec(lines[0].trim());
  if (failed) {
    // The causes follow as "    0: Permission denied (os error 13)".
    const causes = lines.slice(1).map((l) => /^\s*\d+: (.*)$/.exec(l)?.[1]).filter(Boolean);
    const cause = causes.join(": ") || "unknown cause";
    const file = failed[1] === url ? "" : ` (importing ${displayUrl(failed[1])})`;
    return `cannot read handlers file ${spec}${file}: ${cause}`;
  }
  const first = lines[0].trim();
  const syntax = /^SyntaxError: (.*)$/.exec(first);
  if (syntax && where) return `handlers file ${where}: syntax error: ${syntax[1]}`;
  const missing = /^Module not found "([^"]+)"\.?$/.exec(first);
  if (missing && where) {
    return `handlers file ${where}: module not found: ${displayUrl(missing[1])}`;
  }
  return where ? `handlers file ${where}: ${first}` : `cannot load handlers file ${spec}: ${first}`;
}

/** Known names must be functions; unknown names get a warning (a typo such as `onText`). */
export function checkExports(spec: string, module: Record<string, unknown>): LoadResult {
  const known = new Set<string>(HANDLER_NAMES);
  const warnings: string[] = [];
  const handlers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(module)) {
    if (!known.has(name)) {
      const guess = suggestName(name);
      const hint = guess ? `did you mean '${guess}'?` : `known: ${HANDLER_NAMES.join(", ")}`;
      warnings.push(
        `handlers file ${spec}: export '${name}' is not a handler name and is ignored (${hint})`,
      );
      continue;
    }
    if (typeof value !== "function") {
      return {
        error: `handlers file ${spec}: export '${name}' is ${describe(value)}, not a function`,
      };
    }
    handlers[name] = value;
  }
  return { handlers: handlers as Handlers, warnings };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** The handler name a near miss was meant to be: `onText`, `ws_server_text`, `Text` → `text`. */
export function suggestName(name: string): string | undefined {
  const bare = name.toLowerCase().replace(/^(ws_server_|on_?|handle_?)/, "");
  const renamed: Record<string, string> = { authenticate: "upgrade", started: "start" };
  const guess = renamed[bare] ?? bare;
  return (HANDLER_NAMES as readonly string[]).includes(guess) ? guess : undefined;
}
