// Tests channel history on disk (lib/store/history_store.ts, lib/store/channel_log.ts): what was
// committed survives kill -9, trimming by count and age, epochs across restarts and reboots,
// the memory-only fallback when the state directory cannot be written, and the new epoch when a
// write fails later (for real: a file-size limit, as on a full disk).

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ChannelLog, MEMORY_ONLY } from "../../lib/store/channel_log.ts";
import { HISTORY_FILE, HistoryStore } from "../../lib/store/history_store.ts";
import { WRITER_LIMITS } from "../fixtures/history_writer.ts";
import { BIG_DATA_BYTES, type Report } from "../fixtures/history_disk_full.ts";

const LIMITS = { maxCount: 100, maxAgeMs: 10_000, maxBytes: 1 << 20 };

async function withDir(f: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "push-store-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The lines of a byte stream, as they complete. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let held = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    held += text;
    let nl;
    while ((nl = held.indexOf("\n")) >= 0) {
      yield held.slice(0, nl);
      held = held.slice(nl + 1);
    }
  }
}

function items(channel: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({ channel, data: JSON.stringify(i) }));
}

Deno.test("published batches are read back after the store is reopened", () =>
  withDir((dir) => {
    const first = ChannelLog.open({ stateDir: dir, limits: LIMITS, bootTime: 1000 });
    assert.ok(first.durable);
    assert.equal(first.warning, null);
    const pubs = first.log.publish([...items("a", 3), ...items("b", 2)], 1000);
    first.log.close();
    const again = ChannelLog.open({ stateDir: dir, limits: LIMITS, bootTime: 1000 }).log;
    assert.deepStrictEqual(again.position("a"), { epoch: pubs[0].epoch, offset: 3 });
    const resumed = again.resume("a", { epoch: pubs[0].epoch, offset: 0 }, 1001);
    assert.equal(resumed.decision.kind, "replay");
    assert.deepStrictEqual(resumed.replay, pubs.slice(0, 3));
    assert.equal(again.publish(items("a", 1), 1002)[0].offset, 4, "offsets keep growing");
    again.close();
  }));

Deno.test("every batch reported committed survives kill -9 of the writer", async () => {
  await withDir(async (dir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        new URL("../fixtures/history_writer.ts", import.meta.url).pathname,
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reported = new Map<string, { offset: number; epoch: string }>();
    let batches = 0;
    for await (const line of lines(child.stdout)) {
      const [channel, offset, epoch] = line.split(" ");
      reported.set(channel, { offset: Number(offset), epoch });
      if (++batches === 400) {
        child.kill("SIGKILL");
        break;
      }
    }
    const status = await child.status;
    assert.equal(reported.size, 2);
    assert.equal(status.signal, "SIGKILL");
    const log = ChannelLog.open({ stateDir: dir, bootTime: 1, limits: WRITER_LIMITS }).log;
    for (const [channel, { offset, epoch }] of reported) {
      const now = log.position(channel);
      assert.equal(now.epoch, epoch);
      assert.ok(now.offset >= offset, `${channel}: ${now.offset} < reported ${offset}`);
      const resumed = log.resume(channel, { epoch, offset: 0 }, Date.now());
      assert.equal(resumed.decision.kind, "replay", channel);
      assert.equal(resumed.replay.length, now.offset, "offsets 1..top, no hole");
    }
    log.close();
  });
});

Deno.test("the store keeps maxCount publications per channel", () =>
  withDir((dir) => {
    const opened = HistoryStore.open(dir, { limits: { ...LIMITS, maxCount: 3 } });
    assert.ok(opened.ok);
    const pubs = Array.from(
      { length: 10 },
      (_, i) => ({ channel: "a", offset: i + 1, epoch: "e", time: 0, data: "1" }),
    );
    assert.deepStrictEqual(opened.store.append(pubs), { ok: true });
    const kept = opened.store.read("a", { from: 1, to: 10, notBefore: 0 }).map((p) => p.offset);
    assert.deepStrictEqual(kept, [8, 9, 10]);
    opened.store.close();
  }));

Deno.test("history older than maxAge is not replayed: recovered:false", () =>
  withDir((dir) => {
    const limits = { maxCount: 100, maxAgeMs: 1000, maxBytes: 1 }; // memory holds nothing
    const log = ChannelLog.open({ stateDir: dir, limits, bootTime: 1000 }).log;
    const [old] = log.publish(items("a", 1), 0);
    log.publish(items("a", 1), 900);
    assert.equal(log.resume("a", { epoch: old.epoch, offset: 0 }, 999).replay.length, 2);
    assert.equal(log.resume("a", { epoch: old.epoch, offset: 0 }, 1500).decision.kind, "lost");
    assert.equal(log.resume("a", { epoch: old.epoch, offset: 1 }, 1500).replay.length, 1);
    log.trim(1500);
    assert.equal(log.resume("a", { epoch: old.epoch, offset: 1 }, 1500).replay.length, 1);
    log.trim(2000);
    assert.equal(log.resume("a", { epoch: old.epoch, offset: 1 }, 2000).decision.kind, "lost");
    log.close();
  }));

Deno.test("after a reboot following a NORMAL run every epoch changes; after FULL none", () =>
  withDir((dir) => {
    const open = (bootTime: number | null, synchronous?: "normal" | "full") =>
      ChannelLog.open({ stateDir: dir, limits: LIMITS, bootTime, synchronous }).log;
    const first = open(1000);
    const [pub] = first.publish(items("a", 1), 0);
    first.close();
    const sameBoot = open(1003); // within the tolerance for clock steps
    assert.equal(sameBoot.position("a").epoch, pub.epoch);
    sameBoot.close();
    const rebooted = open(9000, "full");
    const epoch = rebooted.position("a").epoch;
    assert.notEqual(epoch, pub.epoch);
    assert.equal(rebooted.position("a").offset, 1, "offsets still only grow");
    assert.equal(rebooted.resume("a", { epoch: pub.epoch, offset: 0 }, 0).decision.kind, "lost");
    rebooted.close();
    const afterFull = open(20000);
    assert.equal(afterFull.position("a").epoch, epoch, "a FULL run lost nothing at the reboot");
    afterFull.close();
    const unknown = open(null); // no --allow-sys: the last run was NORMAL, so trust nothing
    assert.notEqual(unknown.position("a").epoch, epoch);
    unknown.close();
    const afterUnknown = open(null); // and "auto" chose FULL for that run
    assert.equal(afterUnknown.position("a").epoch, unknown.position("a").epoch);
    afterUnknown.close();
  }));

Deno.test("a state directory that cannot be created: memory only, one warning", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const opened = ChannelLog.open({ stateDir: `${dir}/file/state`, limits: LIMITS });
    assert.equal(opened.durable, false);
    assert.match(opened.warning ?? "", /^history kept in memory only: cannot open .*file\/state/);
    assert.equal(`${MEMORY_ONLY}: ${opened.log.memoryOnly}`, opened.warning, "the same reason");
    assert.ok(!opened.warning!.includes("\n"), "one line");
    const [pub] = opened.log.publish(items("a", 1), 0);
    assert.equal(opened.log.resume("a", { epoch: pub.epoch, offset: 0 }, 0).replay.length, 1);
    opened.log.close();
  }));

Deno.test("a write that fails at run time: memory only from then on, a new epoch, one warning", () =>
  withDir((dir) => {
    const warnings: string[] = [];
    const opened = ChannelLog.open({
      stateDir: dir,
      limits: LIMITS,
      bootTime: 1000,
      warn: (line) => warnings.push(line),
    });
    const log = opened.log;
    const [before] = log.publish(items("a", 1), 0);
    assert.equal(log.memoryOnly, null, "written to disk so far");
    // Another connection holds SQLite's write lock: the server's next commit times out.
    const other = new DatabaseSync(`${dir}/${HISTORY_FILE}`);
    other.exec("BEGIN IMMEDIATE");
    try {
      const [after] = log.publish(items("a", 1), 0);
      assert.equal(log.durable, false);
      assert.match(log.memoryOnly ?? "", /^history write failed: .*locked/);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], new RegExp(`; ${MEMORY_ONLY} from now on$`));
      assert.notEqual(after.epoch, before.epoch, "resuming clients learn that history broke");
      log.publish(items("a", 1), 0);
      assert.equal(warnings.length, 1, "warned once");
    } finally {
      other.exec("ROLLBACK");
      other.close();
      log.close();
    }
  }));

Deno.test("without --allow-write the server gets memory-only history and one warning line", async () => {
  await withDir(async (dir) => {
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `import { ChannelLog } from ${
        JSON.stringify(new URL("../../lib/store/channel_log.ts", import.meta.url).href)
      };
      const o = ChannelLog.open({ stateDir: ${JSON.stringify(`${dir}/state`)} });
      console.log(JSON.stringify({ durable: o.durable, warning: o.warning }));`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `--allow-read=${dir},/proc`, probe],
      env: { NO_COLOR: "1" },
    }).output();
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(result.durable, false);
    assert.match(result.warning, /history kept in memory only: .*--allow-write/);
  });
});

/** A file-size limit (in KiB, as `ulimit -f` counts) that the small batches fit and the big not. */
const FILE_SIZE_LIMIT_KIB = 512;

/**
 * Runs tests/fixtures/history_disk_full.ts on `stateDir`, under the file-size limit when
 * `limited`. SIGXFSZ is ignored (it stays ignored across exec), so a write past the limit fails
 * with EFBIG instead of killing the process: the kernel refuses the write, as a full disk would,
 * root included.
 */
async function runDiskFull(stateDir: string, { limited }: { limited: boolean }): Promise<Report> {
  const fixture = new URL("../fixtures/history_disk_full.ts", import.meta.url).pathname;
  const limit = limited ? `trap '' XFSZ; ulimit -f ${FILE_SIZE_LIMIT_KIB}; ` : "";
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      `${limit}exec "$0" run --allow-read --allow-write "$1" "$2"`,
      Deno.execPath(),
      fixture,
      stateDir,
    ],
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `the child failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

Deno.test("a history write that really fails (file-size limit, as on a full disk): one warning, a new epoch, the old one resumes recovered:false, memory only after", () =>
  withDir(async (dir) => {
    assert.ok(BIG_DATA_BYTES > FILE_SIZE_LIMIT_KIB * 1024, "the big batch exceeds the limit");
    // The same run without the limit: every write succeeds, one epoch throughout.
    const control = await runDiskFull(`${dir}/control`, { limited: false });
    assert.deepStrictEqual(control.warnings, []);
    assert.equal(control.durableAtEnd, true);
    assert.equal(new Set(control.published.map(([epoch]) => epoch)).size, 1);

    const r = await runDiskFull(`${dir}/limited`, { limited: true });
    assert.equal(r.durableAtStart, true, "the store opened: the small writes fit the limit");
    assert.equal(r.warnings.length, 1, `one warning: ${JSON.stringify(r.warnings)}`);
    assert.match(
      r.warnings[0],
      /^history write failed: .+; history kept in memory only from now on$/,
    );
    const [[before, first], [renewed, big], [after, last]] = r.published;
    assert.notEqual(renewed, before, "the failed write changed the epoch");
    assert.equal(after, renewed, "one change, not one per publication");
    assert.deepStrictEqual([first, big, last], [1, 2, 3], "offsets go on across the epochs");
    assert.equal(r.durableAtEnd, false, "memory only from then on");
    // A client resuming in the old epoch is told history may be lost, and gets no replay.
    assert.deepStrictEqual(r.resumed[0], [
      { type: "subscribed", channel: "a", recovered: false, epoch: renewed, offset: 3 },
    ]);
    // Publishing still works: a client of the new epoch resumes from memory.
    assert.deepStrictEqual(r.resumed[1], [
      { type: "subscribed", channel: "a", recovered: true, epoch: renewed, offset: 3 },
      ["a", 3, "after"],
    ]);
  }));
