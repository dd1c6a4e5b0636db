// Micro-benchmarks of the codec's hot functions (`deno bench bench/codec_bench.ts`): parsing
// masked client frames of 5 B, 125 B, 64 KiB and 1 MiB through the Codec, UTF-8 validation,
// unmasking, and encoding a server frame.

import { Codec } from "../lib/protocol/codec.ts";
import { applyMask, encodeFrame, encodeFrameHeader, Opcode } from "../lib/protocol/frame.ts";
import { isValidUtf8 } from "../lib/protocol/utf8.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

function textPayload(size: number): Uint8Array {
  const out = new Uint8Array(size);
  const sample = new TextEncoder().encode("push-server fan-out, ünïcödé ✓ ");
  for (let i = 0; i < size; i++) out[i] = sample[i % sample.length];
  // Do not end inside a multi-byte sequence.
  for (let i = size - 1; i >= 0 && out[i] >= 0x80; i--) out[i] = 0x20;
  return out;
}

/** A masked client frame (RFC 6455 §5.3) carrying `payload`. */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const header = encodeFrameHeader(opcode, payload.length, { mask: MASK });
  const frame = new Uint8Array(header.length + payload.length);
  frame.set(header);
  frame.set(payload, header.length);
  applyMask(frame.subarray(header.length), MASK);
  return frame;
}

const SIZES: [string, number][] = [["5 B", 5], ["125 B", 125], ["64 KiB", 65536], [
  "1 MiB",
  1 << 20,
]];

const PARSE_KINDS: [string, number, string][] = [
  ["binary frame", Opcode.BINARY, "parse"],
  ["text frame", Opcode.TEXT, "parse text"],
];

for (const [kind, opcode, group] of PARSE_KINDS) {
  for (const [label, size] of SIZES) {
    const frame = clientFrame(opcode, textPayload(size));
    const work = new Uint8Array(frame.length);
    const codec = new Codec({ maxMessageSize: 2 << 20 });
    Deno.bench({
      name: `parse ${kind} ${label}${opcode === Opcode.TEXT ? " (UTF-8 check and decode)" : ""}`,
      group,
      n: size >= 65536 ? 200 : undefined,
      fn() {
        // receive() unmasks in place, so each run gets a fresh copy of the masked frame.
        work.set(frame);
        codec.receive(work);
        if (codec.takeEvents().length !== 1) throw new Error("expected one message");
      },
    });
  }
}

for (const [label, size] of SIZES) {
  const payload = textPayload(size);
  Deno.bench({
    name: `isValidUtf8 ${label}`,
    group: "utf8",
    n: size >= 65536 ? 200 : undefined,
    fn() {
      if (!isValidUtf8(payload)) throw new Error("valid input rejected");
    },
  });
}

for (const [label, size] of SIZES) {
  const payload = textPayload(size);
  Deno.bench({
    name: `applyMask ${label}`,
    group: "mask",
    n: size >= 65536 ? 200 : undefined,
    fn() {
      applyMask(payload, MASK);
    },
  });
}

for (const [label, size] of SIZES.slice(0, 2)) {
  const payload = textPayload(size);
  Deno.bench({
    name: `encodeFrame ${label}`,
    group: "encode",
    fn() {
      encodeFrame(Opcode.TEXT, payload);
    },
  });
}
