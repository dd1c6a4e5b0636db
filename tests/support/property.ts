// Owns how the suite runs fast-check properties (STYLE.md rule 11): each property lists the
// counterexamples fast-check has found as `examples`, re-run first on every run, and a failure
// prints its seed and path together with the command that replays it.

import fc from "fast-check";

/** How one property is run. */
export interface PropertyRun<Ts> {
  /** Random cases after the examples (fast-check's default is 100). */
  readonly numRuns?: number;
  /**
   * Every counterexample fast-check has reported for this property, kept as a seed case: the
   * shrunk value from the failure message, as the tuple of the property's arguments.
   */
  readonly examples: readonly Ts[];
}

/** The env variables that replay one failing run: the seed and path a failure printed. */
const SEED_VAR = "FC_SEED";
const PATH_VAR = "FC_PATH";

/**
 * Runs `property` over `run.examples`, then random cases. On failure, throws fast-check's report
 * (seed, path, shrunk counterexample) plus how to replay it and where to keep it.
 */
export function checkProperty<Ts extends [unknown, ...unknown[]]>(
  property: fc.IProperty<Ts>,
  run: PropertyRun<Ts>,
): void {
  const details = fc.check(property, {
    numRuns: run.numRuns,
    examples: [...run.examples],
    ...replayParameters(),
  });
  if (!details.failed) return;
  throw new Error(
    `${fc.defaultReportMessage(details)}\n` +
      `Replay: ${SEED_VAR}=${details.seed} ${PATH_VAR}=${details.counterexamplePath} ` +
      "deno test --allow-all <this file>\n" +
      "Keep the counterexample in this property's `examples` (STYLE.md rule 11).",
    { cause: details.errorInstance },
  );
}

/** The seed and path from FC_SEED and FC_PATH, when both are set and readable. */
function replayParameters(): { seed?: number; path?: string } {
  const readable = (name: string) =>
    Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
  if (!readable(SEED_VAR) || !readable(PATH_VAR)) return {};
  const seed = Deno.env.get(SEED_VAR);
  const path = Deno.env.get(PATH_VAR);
  if (seed === undefined || path === undefined) return {};
  return { seed: Number(seed), path };
}
