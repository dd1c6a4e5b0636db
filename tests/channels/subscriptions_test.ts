// Tests the subscription index (lib/channels/subscriptions.ts).

import assert from "node:assert/strict";
import fc from "fast-check";
import { REPLAYING, SubscriptionIndex } from "../../lib/channels/subscriptions.ts";

Deno.test("subscribers of a channel are exactly the connections subscribed to it", () => {
  const index = new SubscriptionIndex<number>();
  assert.equal(index.subscribe(1, "news"), "added");
  assert.equal(index.subscribe(2, "news"), "added");
  assert.equal(index.subscribe(2, "user:2"), "added");
  assert.equal(index.subscribe(1, "news"), "already");
  assert.deepStrictEqual([...index.subscribers("news").keys()], [1, 2]);
  assert.deepStrictEqual([...index.subscribers("none").keys()], []);
  assert.deepStrictEqual([...index.channelsOf(2)], ["news", "user:2"]);
  assert.ok(index.unsubscribe(1, "news"));
  assert.ok(!index.unsubscribe(1, "news"));
  assert.deepStrictEqual([...index.subscribers("news").keys()], [2]);
});

Deno.test("a connection's subscriptions are capped", () => {
  const index = new SubscriptionIndex<string>({ maxPerConnection: 2 });
  assert.equal(index.subscribe("c", "a"), "added");
  assert.equal(index.subscribe("c", "b"), "added");
  assert.equal(index.subscribe("c", "c"), "limit");
  assert.equal(index.subscribe("c", "a"), "already");
  index.unsubscribe("c", "a");
  assert.equal(index.subscribe("c", "c"), "added");
});

Deno.test("removing a connection frees every channel it held", () => {
  const index = new SubscriptionIndex<number>();
  index.subscribe(1, "a");
  index.subscribe(1, "b");
  index.subscribe(2, "b");
  assert.deepStrictEqual(index.removeConnection(1).sort(), ["a", "b"]);
  assert.equal(index.channelCount, 1);
  assert.equal(index.connectionCount, 1);
  assert.deepStrictEqual(index.removeConnection(1), []);
});

Deno.test("the index agrees with a model under any sequence of operations", () => {
  const op = fc.tuple(
    fc.constantFrom("sub", "unsub", "close"),
    fc.nat(4),
    fc.constantFrom("a", "b", "c", "d"),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const index = new SubscriptionIndex<number>({ maxPerConnection: 3 });
    const model = new Map<number, Set<string>>();
    for (const [kind, conn, channel] of ops) {
      const mine = model.get(conn) ?? new Set();
      model.set(conn, mine);
      if (kind === "sub") {
        const expect = mine.has(channel) ? "already" : mine.size >= 3 ? "limit" : "added";
        assert.equal(index.subscribe(conn, channel), expect);
        if (expect === "added") mine.add(channel);
      } else if (kind === "unsub") {
        assert.equal(index.unsubscribe(conn, channel), mine.delete(channel));
      } else {
        index.removeConnection(conn);
        mine.clear();
      }
    }
    for (const channel of ["a", "b", "c", "d"]) {
      const expected = [...model].filter(([, s]) => s.has(channel)).map(([c]) => c).sort();
      assert.deepStrictEqual([...index.subscribers(channel).keys()].sort(), expected);
    }
  }));
});

Deno.test("each subscription keeps the offset its replay reached, for fan-out to skip", () => {
  const index = new SubscriptionIndex<string>();
  index.subscribe("fresh", "news");
  index.subscribe("resumed", "news", 12);
  const to = (offset: number) =>
    [...index.subscribers("news")].filter(([, after]) => offset > after).map(([c]) => c);
  assert.deepStrictEqual(to(12), ["fresh"], "offset 12 was replayed to 'resumed' already");
  assert.deepStrictEqual(to(13), ["fresh", "resumed"]);
});

Deno.test("a subscription still replaying is skipped by fan-out until its replay sets where it reached", () => {
  const index = new SubscriptionIndex<string>();
  index.subscribe("replaying", "news", REPLAYING);
  const to = (offset: number) =>
    [...index.subscribers("news")].filter(([, after]) => offset > after).map(([c]) => c);
  assert.deepStrictEqual(to(1_000_000), [], "held while its replay runs");
  assert.equal(index.setAfter("replaying", "news", 20), true);
  assert.deepStrictEqual([to(20), to(21)], [[], ["replaying"]]);
  assert.equal(index.setAfter("replaying", "sport", 1), false, "not subscribed to sport");
  assert.equal(index.setAfter("other", "news", 1), false, "not subscribed at all");
});
