// Tests which close codes may appear on the wire (lib/protocol/close_codes.ts, RFC 6455 §7.4).

import assert from "node:assert/strict";
import { CloseCode, isValidCloseCode } from "../lib/protocol/close_codes.ts";

Deno.test("every named code except 1005 and 1006 may be sent (RFC 6455 §7.4.1)", () => {
  for (const [name, code] of Object.entries(CloseCode)) {
    const sendable = code !== CloseCode.NO_STATUS_RECEIVED && code !== CloseCode.ABNORMAL_CLOSURE;
    assert.equal(isValidCloseCode(code), sendable, name);
  }
});

Deno.test("the IANA names carry the RFC 6455 §7.4.1 numbers", () => {
  assert.equal(CloseCode.NORMAL_CLOSURE, 1000);
  assert.equal(CloseCode.GOING_AWAY, 1001);
  assert.equal(CloseCode.PROTOCOL_ERROR, 1002);
  assert.equal(CloseCode.UNSUPPORTED_DATA, 1003);
  assert.equal(CloseCode.NO_STATUS_RECEIVED, 1005);
  assert.equal(CloseCode.ABNORMAL_CLOSURE, 1006);
  assert.equal(CloseCode.INVALID_PAYLOAD_DATA, 1007);
  assert.equal(CloseCode.POLICY_VIOLATION, 1008);
  assert.equal(CloseCode.MESSAGE_TOO_BIG, 1009);
  assert.equal(CloseCode.MANDATORY_EXTENSION, 1010);
  assert.equal(CloseCode.INTERNAL_ERROR, 1011);
  assert.equal(CloseCode.SERVICE_RESTART, 1012);
  assert.equal(CloseCode.TRY_AGAIN_LATER, 1013);
  assert.equal(CloseCode.BAD_GATEWAY, 1014);
});

Deno.test("codes 0-999 are not used (RFC 6455 §7.4.2)", () => {
  for (let code = 0; code <= 999; code++) assert.equal(isValidCloseCode(code), false, `${code}`);
});

Deno.test("reserved 1004, 1005, 1006 and 1015 may not be sent (RFC 6455 §7.4.1)", () => {
  for (const code of [1004, 1005, 1006, 1015]) {
    assert.equal(isValidCloseCode(code), false, `${code}`);
  }
});

Deno.test("unassigned 1016-2999 are reserved and may not be sent (RFC 6455 §7.4.2)", () => {
  for (let code = 1016; code <= 2999; code++) {
    assert.equal(isValidCloseCode(code), false, `${code}`);
  }
});

Deno.test("3000-4999 are open to libraries and applications (RFC 6455 §7.4.2)", () => {
  for (let code = 3000; code <= 4999; code++) assert.equal(isValidCloseCode(code), true, `${code}`);
});

Deno.test("5000 and above, and non-integers, are not close codes (RFC 6455 §7.4)", () => {
  for (const code of [5000, 65535, 65536, -1, 1000.5, NaN]) {
    assert.equal(isValidCloseCode(code), false, `${code}`);
  }
});
