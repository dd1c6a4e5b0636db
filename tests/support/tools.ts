// Owns finding the external programs that tests need (php, chromium, redis-server, promtool,
// nginx, systemd-analyze, …). Each is looked up on PATH, never at a fixed path, so that hiding
// it from PATH makes its tests skip. A missing tool is reported once, in the normal output.

const reported = new Set<string>();

/** The full path of `name` found on PATH (an executable file), or null. */
export function findTool(name: string): string | null {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir.replace(/\/$/, "")}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/**
 * The path of `name`, or null after printing one line saying which tests skip and why:
 * `skip: <what>: <name> not found on PATH`. Use the result as `ignore: tool === null`.
 */
export function toolFor(name: string, what: string): string | null {
  const found = findTool(name);
  if (found === null && !reported.has(`${name}\0${what}`)) {
    reported.add(`${name}\0${what}`);
    console.log(`skip: ${what}: ${name} not found on PATH`);
  }
  return found;
}

/** Prints one skip line for a reason that is not a missing program (e.g. an unset variable). */
export function reportSkip(what: string, why: string): void {
  if (reported.has(`${what}\0${why}`)) return;
  reported.add(`${what}\0${why}`);
  console.log(`skip: ${what}: ${why}`);
}

/** Runs `promtool check metrics` (from `toolFor("promtool", …)`) on an exposition. */
export async function promtoolCheck(
  promtool: string,
  exposition: string,
): Promise<{ ok: boolean; said: string }> {
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(exposition));
  await writer.close();
  const out = await child.output();
  const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, said };
}
