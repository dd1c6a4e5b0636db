// Tests permessage-deflate negotiation (lib/protocol/permessage_deflate.ts) by RFC 7692 section:
// the offer grammar (RFC 6455 §9.1), each parameter, malformed and duplicate ones, several offers.

import assert from "node:assert/strict";
import {
  type DeflateParams,
  negotiateDeflate,
  parseExtensionOffers,
} from "../lib/protocol/permessage_deflate.ts";

const BASE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

function accepted(offer: string | string[], policy = {}): DeflateParams {
  const params = negotiateDeflate(offer, policy);
  assert.ok(params, `offer declined: ${JSON.stringify(offer)}`);
  return params;
}

Deno.test("offers: list of extensions with params, bare and with values (RFC 6455 §9.1)", () => {
  assert.deepEqual(
    parseExtensionOffers(
      "foo, permessage-deflate; client_max_window_bits; server_max_window_bits=10",
    ),
    [
      { name: "foo", params: [] },
      {
        name: "permessage-deflate",
        params: [
          { name: "client_max_window_bits", value: null },
          { name: "server_max_window_bits", value: "10" },
        ],
      },
    ],
  );
});

Deno.test("offers: quoted values are unescaped, commas inside quotes do not split (RFC 6455 §9.1)", () => {
  assert.deepEqual(parseExtensionOffers('x; a="1\\0", y; b = "2"'), [
    { name: "x", params: [{ name: "a", value: "10" }] },
    { name: "y", params: [{ name: "b", value: "2" }] },
  ]);
  // A quoted value that is not a token after unescaping makes that element malformed only.
  assert.deepEqual(parseExtensionOffers('x; a="1,2", y'), [{ name: "y", params: [] }]);
});

Deno.test("offers: empty elements and whitespace are skipped; several header lines form one list (RFC 7230 §7)", () => {
  assert.deepEqual(
    parseExtensionOffers([" , a ;\tb , ,", "c"]).map((o) => o.name),
    ["a", "c"],
  );
  assert.deepEqual(parseExtensionOffers(null), []);
  assert.deepEqual(parseExtensionOffers(""), []);
});

Deno.test("offers: a malformed element is dropped and the next one still counts (RFC 6455 §9.1)", () => {
  for (
    const bad of [
      "permessage-deflate; ",
      "permessage-deflate;;",
      "permessage-deflate; a=",
      "permessage-deflate x",
      "permessage-deflate; a=1 2",
      "@bad",
      'permessage-deflate; a=""',
    ]
  ) {
    assert.deepEqual(parseExtensionOffers(`${bad}, next`), [{ name: "next", params: [] }], bad);
    assert.equal(negotiateDeflate(bad), null, bad);
    assert.equal(accepted(`${bad}, permessage-deflate`).header, BASE, bad);
  }
});

Deno.test("offers: an unterminated quote swallows the rest of the line (RFC 6455 §9.1)", () => {
  assert.deepEqual(parseExtensionOffers('x; a="open, permessage-deflate'), []);
  assert.equal(negotiateDeflate(['x; a="open, y', "permessage-deflate"])?.header, BASE);
});

Deno.test("no offer, or only other extensions: declined, no header (RFC 7692 §5)", () => {
  assert.equal(negotiateDeflate(null), null);
  assert.equal(negotiateDeflate(undefined), null);
  assert.equal(negotiateDeflate("x-webkit-deflate-frame"), null);
  assert.equal(negotiateDeflate("Permessage-Deflate"), null);
});

Deno.test("a bare offer: accepted with both no_context_takeover params (RFC 7692 §7.1.1)", () => {
  const p = accepted("permessage-deflate");
  assert.equal(p.header, BASE);
  assert.equal(p.serverNoContextTakeover, true);
  assert.equal(p.clientNoContextTakeover, true);
  assert.equal(p.serverMaxWindowBits, 15);
  assert.equal(p.clientMaxWindowBits, 15);
  assert.equal(p.compressWindowBits, 15);
});

Deno.test("Chromium's offer: client_max_window_bits without a value is answered (RFC 7692 §7.1.2.2)", () => {
  const p = accepted("permessage-deflate; client_max_window_bits");
  assert.equal(p.header, `${BASE}; client_max_window_bits=15`);
  const limited = accepted("permessage-deflate; client_max_window_bits", {
    clientMaxWindowBits: 10,
  });
  assert.equal(limited.header, `${BASE}; client_max_window_bits=10`);
  assert.equal(limited.clientMaxWindowBits, 10);
});

Deno.test("client_max_window_bits with a value: answered with the same or smaller (RFC 7692 §7.1.2.2)", () => {
  assert.equal(accepted("permessage-deflate; client_max_window_bits=9").clientMaxWindowBits, 9);
  assert.equal(
    accepted("permessage-deflate; client_max_window_bits=12", { clientMaxWindowBits: 10 }).header,
    `${BASE}; client_max_window_bits=10`,
  );
});

Deno.test("client_max_window_bits not offered: never in the response, whatever the policy (RFC 7692 §7.1.2.2)", () => {
  const p = accepted("permessage-deflate", { clientMaxWindowBits: 9 });
  assert.equal(p.header, BASE);
  assert.equal(p.clientMaxWindowBits, 15);
});

Deno.test("server_max_window_bits 9–15: honoured, echoed, used for compressing (RFC 7692 §7.1.2.1)", () => {
  for (let bits = 9; bits <= 15; bits++) {
    const p = accepted(`permessage-deflate; server_max_window_bits=${bits}`);
    assert.equal(p.header, `${BASE}; server_max_window_bits=${bits}`);
    assert.equal(p.serverMaxWindowBits, bits);
    assert.equal(p.compressWindowBits, bits);
  }
  // A smaller server limit answers with the smaller value, offered or not.
  assert.equal(
    accepted("permessage-deflate; server_max_window_bits=12", { serverMaxWindowBits: 10 }).header,
    `${BASE}; server_max_window_bits=10`,
  );
  assert.equal(
    accepted("permessage-deflate", { serverMaxWindowBits: 11 }).header,
    `${BASE}; server_max_window_bits=11`,
  );
});

Deno.test("server_max_window_bits=8: accepted, and this peer gets uncompressed messages (RFC 7692 §7.1.2.1, §6)", () => {
  const p = accepted("permessage-deflate; server_max_window_bits=8");
  assert.equal(p.header, `${BASE}; server_max_window_bits=8`);
  assert.equal(p.serverMaxWindowBits, 8);
  assert.equal(p.compressWindowBits, null);
});

Deno.test("window bits outside 8–15, with leading zeros or missing: offer declined (RFC 7692 §7.1.2)", () => {
  for (
    const v of [
      "server_max_window_bits",
      "server_max_window_bits=7",
      "server_max_window_bits=16",
      "server_max_window_bits=08",
      "server_max_window_bits=1.0",
      "server_max_window_bits=-9",
      "client_max_window_bits=0",
      "client_max_window_bits=16",
      "client_max_window_bits=015",
      'client_max_window_bits="x"',
    ]
  ) {
    assert.equal(negotiateDeflate(`permessage-deflate; ${v}`), null, v);
  }
});

Deno.test("a quoted window size is read as its token (RFC 6455 §9.1, RFC 7692 §7.1.2)", () => {
  assert.equal(accepted('permessage-deflate; server_max_window_bits="10"').serverMaxWindowBits, 10);
  assert.equal(accepted('permessage-deflate; client_max_window_bits="9"').clientMaxWindowBits, 9);
});

Deno.test("no_context_takeover params: accepted bare, declined with a value (RFC 7692 §7.1.1)", () => {
  assert.equal(
    accepted("permessage-deflate; server_no_context_takeover; client_no_context_takeover").header,
    BASE,
  );
  assert.equal(negotiateDeflate("permessage-deflate; server_no_context_takeover=1"), null);
  assert.equal(negotiateDeflate('permessage-deflate; client_no_context_takeover="x"'), null);
});

Deno.test("a parameter given twice declines the offer (RFC 7692 §7)", () => {
  for (
    const p of [
      "server_no_context_takeover",
      "client_no_context_takeover",
      "server_max_window_bits=10",
      "client_max_window_bits",
    ]
  ) {
    assert.equal(negotiateDeflate(`permessage-deflate; ${p}; ${p}`), null, p);
  }
  assert.equal(
    negotiateDeflate("permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
    null,
  );
});

Deno.test("an unknown parameter declines the offer (RFC 7692 §7)", () => {
  assert.equal(negotiateDeflate("permessage-deflate; foo"), null);
  assert.equal(negotiateDeflate("permessage-deflate; mux=1; client_max_window_bits"), null);
});

Deno.test("every parameter at once, in any order (RFC 7692 §7.1)", () => {
  const p = accepted(
    "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12; " +
      "client_no_context_takeover; server_no_context_takeover",
  );
  assert.equal(p.header, `${BASE}; server_max_window_bits=12; client_max_window_bits=10`);
});

Deno.test("several offers: the first acceptable one is chosen (RFC 7692 §5.1)", () => {
  // Autobahn 13.7's shape: offers with different window sizes, preferred first.
  const p = accepted([
    "permessage-deflate; server_max_window_bits=20, permessage-deflate; client_max_window_bits=9",
    "permessage-deflate",
  ]);
  assert.equal(p.header, `${BASE}; client_max_window_bits=9`);
  const q = accepted(
    "permessage-deflate; foo, x-other, permessage-deflate; server_max_window_bits=10, " +
      "permessage-deflate",
  );
  assert.equal(q.serverMaxWindowBits, 10);
});

Deno.test("a server policy outside the range is our bug: it throws", () => {
  assert.throws(
    () => negotiateDeflate("permessage-deflate", { serverMaxWindowBits: 8 }),
    RangeError,
  );
  assert.throws(
    () => negotiateDeflate("permessage-deflate", { clientMaxWindowBits: 16 }),
    RangeError,
  );
});
