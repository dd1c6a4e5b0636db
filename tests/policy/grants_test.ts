// lib/policy/grants.ts: which channels a token's `channels` claim allows.

import assert from "node:assert/strict";
import {
  Grants,
  MAX_GRANT_LENGTH,
  MAX_GRANTS,
  parseGrants,
  revokedChannels,
} from "../../lib/policy/grants.ts";

function grants(list: unknown): Grants {
  const parsed = parseGrants(list);
  assert.ok(parsed.ok, `grants ${JSON.stringify(list)} should parse`);
  return parsed.grants;
}

Deno.test("an exact grant allows that channel only", () => {
  const g = grants(["news", "user:42"]);
  assert.equal(g.allows("news"), true);
  assert.equal(g.allows("user:42"), true);
  for (const c of ["new", "newsy", "news.sport", "user:4", "user:421", "NEWS", ""]) {
    assert.equal(g.allows(c), false, c);
  }
});

Deno.test("a pattern `prefix*` allows every longer channel with that prefix, not the prefix itself", () => {
  const g = grants(["news.*", "user:*"]);
  for (const c of ["news.sport", "news.sport.uk", "news.*", "user:7", "user:42:inbox"]) {
    assert.equal(g.allows(c), true, c);
  }
  for (const c of ["news", "news.", "newsroom", "user:", "user", "users:1", "xnews.a"]) {
    assert.equal(g.allows(c), false, c);
  }
});

Deno.test("`*` alone allows every non-empty channel", () => {
  const g = grants(["*"]);
  for (const c of ["a", "news", "user:42", "*"]) assert.equal(g.allows(c), true, c);
  assert.equal(g.allows(""), false);
});

Deno.test("no grants allow nothing", () => {
  assert.equal(grants([]).allows("news"), false);
  assert.equal(Grants.NONE.allows("news"), false);
});

Deno.test("a * that is not the last character makes the claim invalid", () => {
  for (const bad of [["a*b"], ["*.news"], ["news**"], ["ok", "x*y"]]) {
    assert.deepEqual(parseGrants(bad), { ok: false, error: "misplaced-wildcard" }, String(bad));
  }
});

Deno.test("a claim that is not a bounded list of non-empty strings is invalid", () => {
  assert.deepEqual(parseGrants("news"), { ok: false, error: "not-a-list" });
  assert.deepEqual(parseGrants({ 0: "news" }), { ok: false, error: "not-a-list" });
  assert.deepEqual(parseGrants(null), { ok: false, error: "not-a-list" });
  assert.deepEqual(parseGrants(["news", 42]), { ok: false, error: "not-a-string" });
  assert.deepEqual(parseGrants([""]), { ok: false, error: "empty" });
  assert.deepEqual(parseGrants(["x".repeat(MAX_GRANT_LENGTH + 1)]), {
    ok: false,
    error: "too-long",
  });
  assert.equal(parseGrants(["x".repeat(MAX_GRANT_LENGTH)]).ok, true);
  const many = Array.from({ length: MAX_GRANTS + 1 }, (_, i) => `c${i}`);
  assert.deepEqual(parseGrants(many), { ok: false, error: "too-many" });
  assert.equal(parseGrants(many.slice(1)).ok, true);
});

Deno.test("a pattern covered by a shorter one is dropped without changing what is allowed", () => {
  const g = grants(["news.sport.*", "news.*", "news.*", "a"]);
  assert.deepEqual(g.toList(), ["a", "news.*"]);
  assert.equal(g.allows("news.sport.uk"), true);
  assert.equal(g.allows("news.sport."), true);
});

Deno.test("revokedChannels lists the subscribed channels that new grants no longer allow", () => {
  const g = grants(["news", "user:*"]);
  assert.deepEqual(revokedChannels(g, ["news", "sport", "user:1", "admin"]), ["sport", "admin"]);
  assert.deepEqual(revokedChannels(g, []), []);
});
