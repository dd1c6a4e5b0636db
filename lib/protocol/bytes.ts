// Owns joining byte arrays: the one copy that coalesced writes, FIFO batches and split lines make.

/**
 * Copies `parts` into one new array of `total` bytes (their summed length). A single part is
 * returned as it is, not copied.
 */
export function concatBytes(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
