// Test support: reads Deno permission flags as the tests compare them (the compile task's, a
// deno.json task's, a systemd unit's ExecStart), so that a grant is checked, not a spelling.

const ALLOW_WRITE = "--allow-write=";

/** A path as a grant names it, without a leading "./" or a trailing "/". */
export function grantPath(path: string): string {
  return path.replace(/^\.\//, "").replace(/(.)\/$/, "$1");
}

/**
 * The paths that `--allow-write=…` flags among `args` grant, as `grantPath` spells them. A bare
 * `--allow-write` (every path) is not listed: the grants checked here are meant to be narrow.
 */
export function writeGrants(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith(ALLOW_WRITE))
    .flatMap((a) => a.slice(ALLOW_WRITE.length).split(","))
    .map(grantPath);
}
