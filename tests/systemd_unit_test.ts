// examples/push-server.service: linted with `systemd-analyze verify` where systemd exists,
// checked for the hardening the deployment relies on, and its FIFO-creating ExecStartPre
// script run for real (in a temporary directory, with our own group).

import assert from "node:assert/strict";
import { toolFor } from "./support/tools.ts";

const UNIT_PATH = new URL("../examples/push-server.service", import.meta.url).pathname;
const unit = await Deno.readTextFile(UNIT_PATH);

function settings(name: string): string[] {
  return [...unit.matchAll(new RegExp(`^${name}=(.*)$`, "gm"))].map((m) => m[1]);
}

// Found on PATH (Debian: apt-get install -y systemd); missing, the verify test skips.
const analyze = toolFor(
  "systemd-analyze",
  "systemd-analyze verify of the unit (apt-get install -y systemd)",
);

Deno.test({
  name: "push-server.service passes systemd-analyze verify",
  ignore: analyze === null,
  fn: async () => {
    // verify insists that ExecStart's binary exists; point it at one that does.
    const dir = await Deno.makeTempDir({ prefix: "push-unit-" });
    try {
      const copy = `${dir}/push-server.service`;
      await Deno.writeTextFile(
        copy,
        unit.replace("ExecStart=/usr/local/bin/push-server", "ExecStart=/bin/true"),
      );
      const out = await new Deno.Command(analyze!, {
        args: ["verify", copy],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert.ok(out.success, text);
      assert.equal(text.includes("push-server.service:"), false, text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("push-server.service is hardened, restarts on failure and keeps its FIFO across restarts", () => {
  const expect: Record<string, string> = {
    DynamicUser: "yes",
    SupplementaryGroups: "push-writers",
    ProtectSystem: "strict",
    NoNewPrivileges: "yes",
    Restart: "on-failure",
    RuntimeDirectory: "push-server",
    RuntimeDirectoryPreserve: "yes",
    CapabilityBoundingSet: "",
  };
  for (const [name, value] of Object.entries(expect)) {
    assert.deepEqual(settings(name), [value], name);
  }
  // Options come from PUSH_* variables; the FIFO lives in the preserved runtime directory.
  assert.ok(settings("Environment").some((e) => e.includes("PUSH_FIFO=/run/push-server/in.fifo")));
  assert.deepEqual(settings("EnvironmentFile"), ["-/etc/push-server/env"]);
  // V8's JIT needs W+X memory: this setting would crash the server at start.
  assert.deepEqual(settings("MemoryDenyWriteExecute"), []);
});

Deno.test("the unit's ExecStartPre creates a group-writable FIFO, and keeps an existing one", async () => {
  const [line] = settings("ExecStartPre");
  const script = /^\+\/bin\/sh -ec '(.*)'$/.exec(line)?.[1];
  assert.ok(script, line);
  const dir = await Deno.makeTempDir({ prefix: "push-run-" });
  try {
    const group = new TextDecoder().decode(
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
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
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
