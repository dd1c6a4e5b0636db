// examples/push-server.service (the compiled executable) and examples/push-server-deno.service
// (`deno run`): each passes `systemd-analyze verify` by the command the README documents, has
// the hardening the deployment relies on, keeps channel history in its StateDirectory= with
// write granted there, runs its FIFO-creating ExecStartPre for real (in a temporary directory,
// with our own group); the deno unit's ExecStart is run for real too.

import assert from "node:assert/strict";
import { COMPILE_FLAGS } from "../lib/api/compile.ts";
import { closeWs, connectWs } from "./support/ws_client.ts";
import { grantPath, writeGrants } from "./support/permissions.ts";
import { toolFor } from "./support/tools.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const UNITS = ["push-server.service", "push-server-deno.service"] as const;
/** Where systemd puts a system unit's StateDirectory= (systemd.exec(5), StateDirectory=). */
const STATE_ROOT = "/var/lib";
/** The deno that push-server-deno.service runs; any other ExecStart is the compiled binary. */
const DENO_PROGRAM = "/usr/local/bin/deno";
const STATE_DIR_VARIABLE = "PUSH_STATE_DIR";
const STATE_DIR_FLAG = "--state-dir";
const decoder = new TextDecoder();

const units = Object.fromEntries(
  await Promise.all(
    UNITS.map(async (name) => [name, await Deno.readTextFile(`${ROOT}examples/${name}`)]),
  ),
) as Record<(typeof UNITS)[number], string>;

function settings(unit: string, name: string): string[] {
  return [...unit.matchAll(new RegExp(`^${name}=(.*)$`, "gm"))].map((m) => m[1]);
}

/** The words of the unit's ExecStart: the program, then its arguments. */
function execStart(unit: string): string[] {
  const [line] = settings(unit, "ExecStart");
  return line.split(/\s+/);
}

/**
 * The unit's --state-dir: from ExecStart's arguments, else from PUSH_STATE_DIR in its
 * Environment= lines (each may hold several assignments), or null when neither sets it.
 */
function unitStateDir(unit: string): string | null {
  const args = execStart(unit);
  const flag = args.findIndex((a) => a === STATE_DIR_FLAG || a.startsWith(`${STATE_DIR_FLAG}=`));
  if (flag >= 0) return args[flag].split("=")[1] ?? args[flag + 1];
  const prefix = `${STATE_DIR_VARIABLE}=`;
  const assignments = settings(unit, "Environment").flatMap((line) => line.split(/\s+/));
  const found = assignments.findLast((a) => a.startsWith(prefix));
  return found === undefined ? null : found.slice(prefix.length);
}

/**
 * The permissions the server runs with: the deno unit's are on its ExecStart line; the compiled
 * executable's were given by `deno task compile` (COMPILE_FLAGS) and cannot be changed there.
 */
function unitPermissions(unit: string): readonly string[] {
  const [program, ...args] = execStart(unit);
  return program === DENO_PROGRAM ? args : COMPILE_FLAGS;
}

/**
 * The verify command as the README documents it: two lines, a `sed` that points ExecStart at
 * /bin/true in a copy (verify insists that the program exists), then `systemd-analyze verify`.
 */
async function documentedVerify(): Promise<string[]> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const lines = readme.split("\n");
  const at = lines.findIndex((l) =>
    l.startsWith("sed -E 's|^ExecStart=[^ ]+|ExecStart=/bin/true|'")
  );
  assert.ok(at >= 0, "README documents the sed line of the verify command");
  assert.match(lines[at + 1], /^systemd-analyze verify \/tmp\/push-server\.service$/);
  return [lines[at], lines[at + 1]];
}

const analyze = toolFor("systemd-analyze", "systemd_unit_test: systemd-analyze verify");

for (const name of UNITS) {
  Deno.test({
    name: `${name} passes systemd-analyze verify, run as the README says`,
    ignore: analyze === null,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "push-unit-" });
      try {
        // The README's lines, with this unit, a private copy and the tool found on PATH.
        const script = (await documentedVerify()).join("\n")
          .replace("examples/push-server.service", `examples/${name}`)
          .replaceAll("/tmp/push-server.service", `${dir}/push-server.service`)
          .replace(/^systemd-analyze /m, `${analyze} `);
        const out = await new Deno.Command("sh", {
          args: ["-ec", script],
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = decoder.decode(out.stderr) + decoder.decode(out.stdout);
        assert.ok(out.success, text);
        assert.equal(text.includes("push-server.service:"), false, text);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

for (const name of UNITS) {
  Deno.test(`${name} is hardened, restarts on failure and keeps its FIFO across restarts`, () => {
    const unit = units[name];
    const expect: Record<string, string> = {
      DynamicUser: "yes",
      SupplementaryGroups: "push-writers",
      ProtectSystem: "strict",
      NoNewPrivileges: "yes",
      Restart: "on-failure",
      // Exit code 2 is a configuration error; 1 (a busy port) is restarted.
      RestartPreventExitStatus: "2",
      RuntimeDirectory: "push-server",
      RuntimeDirectoryPreserve: "yes",
      CapabilityBoundingSet: "",
    };
    for (const [key, value] of Object.entries(expect)) {
      assert.deepEqual(settings(unit, key), [value], key);
    }
    // Options come from PUSH_* variables; the FIFO lives in the preserved runtime directory.
    assert.ok(
      settings(unit, "Environment").some((e) => e.includes("PUSH_FIFO=/run/push-server/in.fifo")),
    );
    assert.deepEqual(settings(unit, "EnvironmentFile"), ["-/etc/push-server/env"]);
    // V8's JIT needs W+X memory: this setting would crash the server at start.
    assert.deepEqual(settings(unit, "MemoryDenyWriteExecute"), []);
    // The server reads PUSH_HANDLERS itself; ExecStart does not pass it.
    assert.doesNotMatch(settings(unit, "ExecStart")[0], /PUSH_HANDLERS/);
  });
}

for (const name of UNITS) {
  Deno.test(`${name} keeps history in its StateDirectory= and grants write to it`, () => {
    const unit = units[name];
    // ProtectSystem=strict leaves the state directory the one writable place under /var/lib.
    const stateDirectories = settings(unit, "StateDirectory");
    assert.deepEqual(stateDirectories, ["push-server"]);
    const stateDir = `${STATE_ROOT}/${stateDirectories[0]}`;
    assert.equal(unitStateDir(unit), stateDir, "the server's --state-dir is the StateDirectory");
    const permissions = unitPermissions(unit);
    assert.ok(
      writeGrants(permissions).includes(grantPath(stateDir)),
      `--allow-write=${stateDir} among ${permissions.join(" ")}`,
    );
  });
}

Deno.test("the two units differ only in how they start the server", () => {
  const keys = (unit: string) => new Set([...unit.matchAll(/^([A-Za-z]+)=/gm)].map((m) => m[1]));
  const own = new Set(["ExecStart", "WorkingDirectory", "CacheDirectory", "Description"]);
  const compiled = units["push-server.service"];
  const deno = units["push-server-deno.service"];
  for (const key of new Set([...keys(compiled), ...keys(deno)])) {
    if (own.has(key) || key === "Environment") continue;
    assert.deepEqual(settings(deno, key), settings(compiled, key), key);
  }
  assert.deepEqual(settings(compiled, "ExecStart"), ["/usr/local/bin/push-server"]);
  // The deno unit's cache is the only writable place deno needs.
  assert.ok(settings(deno, "Environment").includes("DENO_DIR=/var/cache/push-server"));
  assert.deepEqual(settings(deno, "CacheDirectory"), ["push-server"]);
});

for (const name of UNITS) {
  Deno.test(`${name}: ExecStartPre creates a group-writable FIFO, and keeps an existing one`, async () => {
    const [line] = settings(units[name], "ExecStartPre");
    const script = /^\+\/bin\/sh -ec '(.*)'$/.exec(line)?.[1];
    assert.ok(script, line);
    const dir = await Deno.makeTempDir({ prefix: "push-run-" });
    try {
      const group = decoder.decode(
        (await new Deno.Command("id", { args: ["-gn"], stdout: "piped" }).output()).stdout,
      ).trim();
      // systemd turns "$$" into "$"; the paths and group become ours.
      const local = script.replaceAll("$$", "$").replaceAll("/run/push-server", dir)
        .replaceAll("push-writers", group);
      const run = () =>
        new Deno.Command("sh", {
          args: ["-ec", local],
          env: { PUSH_FIFO: `${dir}/in.fifo` },
          stderr: "piped",
        }).output();
      let out = await run();
      assert.ok(out.success, decoder.decode(out.stderr));
      let info = await Deno.stat(`${dir}/in.fifo`);
      assert.ok(info.isFifo);
      assert.equal(info.mode! & 0o777, 0o660);
      const ino = info.ino;
      out = await run(); // a restart: the same FIFO stays
      assert.ok(out.success);
      info = await Deno.stat(`${dir}/in.fifo`);
      assert.equal(info.ino, ino);
      // A plain file in its place (a writer that created it by mistake) is replaced.
      await Deno.remove(`${dir}/in.fifo`);
      await Deno.writeTextFile(`${dir}/in.fifo`, "oops");
      assert.ok((await run()).success);
      assert.ok((await Deno.stat(`${dir}/in.fifo`)).isFifo);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("push-server-deno.service's ExecStart serves, with PUSH_HANDLERS from the environment", async () => {
  const unit = units["push-server-deno.service"];
  const [execStart] = settings(unit, "ExecStart");
  const [program, ...args] = execStart.split(" ");
  assert.equal(program, "/usr/local/bin/deno");
  const [workDir] = settings(unit, "WorkingDirectory");
  const dir = await Deno.makeTempDir({ prefix: "push-deno-unit-" });
  try {
    await new Deno.Command("mkfifo", { args: [`${dir}/in.fifo`] }).output();
    // The unit's command line with this checkout for /opt/push-server and this deno.
    const child = new Deno.Command(Deno.execPath(), {
      args: args.map((a) => a.replace(`${workDir}/`, ROOT)),
      cwd: ROOT,
      env: {
        PUSH_PORT: "0",
        PUSH_FIFO: `${dir}/in.fifo`,
        PUSH_HANDLERS: "echo",
        DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    try {
      while (!/listening on \S+:\d+/.test(log)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the unit's command exited: ${log}`);
        log += value;
      }
      const port = Number(/listening on \S+:(\d+)/.exec(log)![1]);
      const client = await connectWs(port);
      client.ws.send("from the deno unit");
      assert.equal(await client.next(), "from the deno unit", "PUSH_HANDLERS=echo applied");
      await closeWs(client);
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await reader.cancel().catch(() => {});
      assert.equal(status.code, 0, log);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
