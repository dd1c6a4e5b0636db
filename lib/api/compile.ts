// Owns `deno task compile`: runs `deno compile` with the executable's permissions and the
// embedded examples, and turns the one failure a fresh machine meets (no denort, the runtime
// that deno compile downloads) into one line saying what is missing and where it comes from.
// Extra arguments go to deno compile: `deno task compile --include handlers/shop.ts`.

/** The executable's permissions and embedded files; the compile test uses the same list. */
export const COMPILE_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-env",
  "--allow-run=mkfifo",
  "--allow-sys=uid,gid,osUptime",
  "--allow-write=./.push-state,/var/lib/push-server",
  "--include",
  "examples/",
  "--include",
  "client/",
];

/** Where the executable goes, relative to the project directory. */
export const COMPILE_OUTPUT = "push-server";

const ROOT = new URL("../../", import.meta.url);

/** The denort archive of this deno's version and platform, and the page that offers it. */
export function denortSource(
  { version, target }: { version: string; target: string },
): { archive: string; page: string } {
  return {
    archive: `denort-${target}.zip`,
    page: `https://github.com/denoland/deno/releases/tag/v${version}`,
  };
}

/** Explains a missing or unusable denort in one line; `stderr` is deno compile's. */
export function denortProblem(
  { denortBin, stderr, version, target }: {
    denortBin: string | undefined;
    stderr: string;
    version: string;
    target: string;
  },
): string | null {
  const { archive, page } = denortSource({ version, target });
  const fix = `unzip ${archive} from the Deno ${version} release (${page}) and set ` +
    `DENORT_BIN=/path/to/denort`;
  if (denortBin !== undefined && denortBin !== "" && !isFile(denortBin)) {
    return `DENORT_BIN=${denortBin} is not a file; ${fix}`;
  }
  // deno compile fails with "Setting up base binary" and a download error when it cannot
  // fetch denort (dl.deno.land unreachable, no DENORT_BIN).
  if (/Setting up base binary|dl\.deno\.land|denort/i.test(stderr)) {
    const why = denortBin ? `DENORT_BIN=${denortBin} did not work` : "it could not be downloaded";
    return `deno compile needs denort, the Deno ${version} runtime for ${target}, and ${why}: ${fix}`;
  }
  return null;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const denortBin = Deno.env.get("DENORT_BIN");
  const context = { denortBin, version: Deno.version.deno, target: Deno.build.target };
  const early = denortProblem({ ...context, stderr: "" });
  if (early) {
    console.error(`deno task compile: ${early}`);
    return 1;
  }
  const output = Deno.args.some((a) => /^(-o|--output)(=|$)/.test(a))
    ? []
    : ["--output", COMPILE_OUTPUT];
  // An empty DENORT_BIN means unset, for deno compile too.
  const env = Deno.env.toObject();
  if (!denortBin) delete env.DENORT_BIN;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["compile", ...COMPILE_FLAGS, ...output, ...Deno.args, "main.ts"],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  });
  const { code, stderr } = await child.output();
  const text = new TextDecoder().decode(stderr);
  const problem = code === 0 ? null : denortProblem({ ...context, stderr: text });
  if (problem) {
    console.error(`deno task compile: ${problem}`);
  } else {
    await Deno.stderr.write(stderr);
  }
  return code;
}

if (import.meta.main) Deno.exit(await main());
