// Owns the event-loop lag sampler: a timer that records how late it fires into
// PushStats.eventLoopLag (push_event_loop_lag_seconds).

import type { PlainHistogram } from "./stats.ts";

/** How often the sampler asks to run; its lateness is the lag. */
export const LAG_SAMPLE_INTERVAL_MS = 500;
const MS_PER_SECOND = 1000;

/** Starts sampling into `histogram`; returns the function that stops it. */
export function startEventLoopMonitor(
  histogram: PlainHistogram,
  { intervalMs = LAG_SAMPLE_INTERVAL_MS }: { intervalMs?: number } = {},
): () => void {
  let expected = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    histogram.observe(Math.max(0, now - expected) / MS_PER_SECOND);
    expected = now + intervalMs;
  }, intervalMs);
  // The sampler alone never keeps the process alive.
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
