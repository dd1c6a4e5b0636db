// Tests the recovery decision (lib/channels/recovery.ts).

import assert from "node:assert/strict";
import { coversRange, decideRecovery } from "../../lib/channels/recovery.ts";

const VIEW = { epoch: "e", top: 10, floor: 4 };

Deno.test("no position: fresh, at the channel's current position", () => {
  assert.deepStrictEqual(decideRecovery(null, VIEW), { kind: "fresh", epoch: "e", offset: 10 });
});

Deno.test("same epoch and offset covered: replay from offset+1 through top", () => {
  assert.deepStrictEqual(decideRecovery({ epoch: "e", offset: 7 }, VIEW), {
    kind: "replay",
    epoch: "e",
    offset: 10,
    from: 8,
    to: 10,
  });
  assert.deepStrictEqual(decideRecovery({ epoch: "e", offset: 3 }, VIEW), {
    kind: "replay",
    epoch: "e",
    offset: 10,
    from: 4,
    to: 10,
  });
  const upToDate = decideRecovery({ epoch: "e", offset: 10 }, VIEW);
  assert.ok(upToDate.kind === "replay" && upToDate.from === 11 && upToDate.to === 10);
});

Deno.test("another epoch, an offset below the floor or above top: lost, with the position", () => {
  for (
    const since of [{ epoch: "x", offset: 7 }, { epoch: "e", offset: 2 }, {
      epoch: "e",
      offset: 11,
    }]
  ) {
    assert.deepStrictEqual(decideRecovery(since, VIEW), { kind: "lost", epoch: "e", offset: 10 });
  }
});

Deno.test("a channel never published to resumes from offset 0 of its epoch", () => {
  const view = { epoch: "boot", top: 0, floor: 1 };
  const d = decideRecovery({ epoch: "boot", offset: 0 }, view);
  assert.ok(d.kind === "replay" && d.from === 1 && d.to === 0);
});

Deno.test("coversRange accepts exactly from..to in order", () => {
  const at = (...o: number[]) => o.map((offset) => ({ offset }));
  assert.ok(coversRange(at(3, 4, 5), { from: 3, to: 5 }));
  assert.ok(coversRange([], { from: 6, to: 5 }));
  assert.ok(!coversRange(at(3, 5), { from: 3, to: 5 }));
  assert.ok(!coversRange(at(4, 5), { from: 3, to: 5 }));
  assert.ok(!coversRange(at(3, 4), { from: 3, to: 5 }));
  assert.ok(!coversRange(at(4, 3, 5), { from: 3, to: 5 }));
});
