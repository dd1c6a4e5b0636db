// An A/B comparison of push-server between two checkouts, on the machinery of bench/run.ts: the
// same workloads, load generator, core pinning and time bounds, run alternately against checkout A
// and checkout B (A, B, A, B, …) so that a busy machine slows both sides alike. For each workload
// it prints medians with min–max per side and the ratio of medians B/A, for the throughput metric
// and for the server's CPU time per message (less sensitive to other load than throughput), and
// the load average (/proc/loadavg) before and after each A/B pair. Results go to bench/out/ as JSON,
// rewritten after every pair so that an interrupted run keeps what it measured.
//
//   deno run --allow-all bench/ab.ts --ab <dirA>,<dirB> [--reps N] [--workloads w1k,w10k,w2]
//                                   [--budget-min M] [--quick] [--out FILE]
//                                   [--loadgen-extra="--seconds 10"]  (with "=": it starts with a dash)
//                                   [--args-a="…"] [--args-b="…"]  (extra server options per side)
//   e.g. the cost of metrics, one build on both sides:
//   deno run --allow-all bench/ab.ts --ab .,. --args-b="--admin-listen 127.0.0.1:0" --workloads w1k,w2
//   deno run --allow-all bench/ab.ts --report FILE      (the table again, from a saved run)

import { parseArgs } from "node:util";
import {
  buildLoadgen,
  fileLimit,
  fmt,
  median,
  METRICS,
  oneRun,
  OUT,
  type Peer,
  pushPeer,
  type Result,
  summarize,
  type Summary,
  table,
  WORKLOADS,
} from "./run.ts";

const SIDES = ["A", "B"] as const;
type Side = typeof SIDES[number];

/** The first three fields of /proc/loadavg: load over 1, 5 and 15 minutes. */
async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}

/** Server CPU time per delivered message, in ns: cores busy over messages per second. */
function withCpuPerMessage(r: Result): Result {
  const rate = Number(r.msgPerSec), cpu = Number(r.serverCpu);
  return rate > 0 && cpu >= 0 ? { ...r, serverNsPerMsg: cpu * 1e9 / rate } : r;
}

/**
 * The pairs' own ratios B/A (a pair is one A run and the B run right after it, under about the
 * same load): their median, and in how many pairs B did worse.
 */
function paired(
  pairs: { a: Result; b: Result }[],
  m: { key: string; higherIsBetter: boolean },
): string {
  const ratios = pairs.filter((p) => p.a.ok === true && p.b.ok === true)
    .map((p) => Number(p.b[m.key]) / Number(p.a[m.key])).filter(Number.isFinite);
  if (ratios.length === 0) return "–";
  const worse = ratios.filter((r) => m.higherIsBetter ? r < 1 : r > 1).length;
  return `${median(ratios).toFixed(3)}, B worse in ${worse}/${ratios.length}`;
}

/**
 * `peer` with `extra` server options, placed before the handlers file (the last argument), e.g.
 * `--admin-listen 127.0.0.1:0` on one side only to measure what metrics cost.
 */
function withServerArgs(peer: Peer, extra: string[]): Peer {
  if (extra.length === 0) return peer;
  return {
    ...peer,
    name: `${peer.name} ${extra.join(" ")}`,
    command: (fifo, w) => {
      const argv = peer.command(fifo, w);
      if (!Array.isArray(argv)) return argv;
      return [...argv.slice(0, -1), ...extra, ...argv.slice(-1)];
    },
  };
}

/** Splits an option's value into arguments at spaces. */
function words(text: string | undefined): string[] {
  return (text ?? "").split(" ").filter((a) => a !== "");
}

function cell(s: Summary | null, unit: string): string {
  const f = (v: number) => unit === "ns" ? v.toFixed(0) : fmt(v, unit);
  return s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : "–";
}

/** Prints the A/B table: per metric, each side's median (min–max) and the ratios B/A. */
function report(
  dirs: string[],
  results: Record<string, Record<Side, Result[]>>,
  serverArgs: Record<Side, string[]> = { A: [], B: [] },
): void {
  const rows = [[
    "metric",
    "A median (min–max)",
    "B median (min–max)",
    "B/A of medians",
    "paired B/A (median), pairs where B is worse",
  ]];
  const keys = [
    ...METRICS.filter((m) => results[m.workload]),
    ...Object.keys(results).map((id) => ({
      workload: id,
      key: "serverNsPerMsg",
      label: id,
      unit: "ns",
      higherIsBetter: false,
    })),
  ];
  for (const m of keys) {
    const [a, b] = SIDES.map((s) => summarize(results[m.workload][s], m.key));
    const ratio = a && b ? `${(b.median / a.median).toFixed(3)}` : "–";
    const label = m.key === "serverNsPerMsg"
      ? `${m.workload} server CPU per msg (ns)`
      : `${m.label} (${m.unit})`;
    const byRep = results[m.workload];
    const pairs = byRep.A.map((r, i) => ({ a: r, b: byRep.B[i] })).filter((p) => p.b);
    rows.push([label, cell(a, m.unit), cell(b, m.unit), ratio, paired(pairs, m)]);
  }
  const side = (s: Side, i: number) =>
    `${s} = ${dirs[i]}${serverArgs[s].length ? ` with ${serverArgs[s].join(" ")}` : ""}`;
  console.log(`\n${side("A", 0)}\n${side("B", 1)}`);
  console.log(table(rows));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      ab: { type: "string" },
      reps: { type: "string", default: "5" },
      workloads: { type: "string", default: "w1k,w10k,w2" },
      "budget-min": { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      report: { type: "string" },
      "loadgen-extra": { type: "string", default: "" },
      "args-a": { type: "string", default: "" },
      "args-b": { type: "string", default: "" },
    },
  });
  if (values.report) {
    const saved = JSON.parse(await Deno.readTextFile(values.report));
    report(saved.dirs, saved.results, saved.serverArgs);
    return;
  }
  const dirs = (values.ab ?? "").split(",").map((d) => d.replace(/\/$/, ""));
  if (dirs.length !== 2 || dirs.some((d) => d === "")) {
    console.error("ab: --ab needs two checkouts, as --ab <dirA>,<dirB>");
    Deno.exit(2);
  }
  const serverArgs = { A: words(values["args-a"]), B: words(values["args-b"]) };
  const peers = {
    A: withServerArgs(pushPeer(dirs[0], `A ${dirs[0]}`), serverArgs.A),
    B: withServerArgs(pushPeer(dirs[1], `B ${dirs[1]}`), serverArgs.B),
  };
  const reps = Number(values.reps);
  const budgetMs = values["budget-min"] ? Number(values["budget-min"]) * 60_000 : Infinity;
  // Appended to each workload's load generator arguments; a later option wins there.
  const extra = words(values["loadgen-extra"]);
  const workloads = values.workloads!.split(",").map((id) => {
    const w = WORKLOADS.find((x) => x.id === id);
    if (!w) throw new Error(`unknown workload ${id}; known: ${WORKLOADS.map((x) => x.id)}`);
    return { ...w, args: (quick: boolean) => [...w.args(quick), ...extra] };
  });
  await buildLoadgen();
  const limit = fileLimit();
  const started = Date.now();
  const results: Record<string, Record<Side, Result[]>> = {};
  const loads: { rep: number; workload: string; before: string; after: string }[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = values.out ?? `${OUT}/ab-${stamp}.json`;
  for (const w of workloads) results[w.id] = { A: [], B: [] };

  outer: for (let rep = 0; rep < reps; rep++) {
    for (const w of workloads) {
      if (Date.now() - started > budgetMs) {
        console.log(`time budget of ${values["budget-min"]} min spent: stopping`);
        break outer;
      }
      const before = await loadAverage();
      for (const side of SIDES) {
        let r: Result;
        try {
          r = withCpuPerMessage(await oneRun(peers[side], w, values.quick!, limit));
        } catch (e) {
          r = { ok: false, error: e instanceof Error ? e.message : String(e) };
        }
        results[w.id][side].push(r);
        const shown = METRICS.filter((m) => m.workload === w.id)
          .map((m) => `${m.key}=${fmt(Number(r[m.key]), m.unit)}`).join(" ");
        const status = r.ok === true ? "" : ` FAILED: ${r.error ?? r.firstError ?? ""}`;
        console.log(
          `${w.id} #${rep + 1} ${side}: ${shown} serverNsPerMsg=${
            Number(r.serverNsPerMsg).toFixed(0)
          } cpu=${Number(r.serverCpu).toFixed(2)}${status}`,
        );
      }
      const after = await loadAverage();
      loads.push({ rep: rep + 1, workload: w.id, before, after });
      console.log(`${w.id} #${rep + 1} load average before ${before}, after ${after}`);
      await Deno.writeTextFile(
        file,
        JSON.stringify({
          date: new Date().toISOString(),
          args: Deno.args,
          dirs,
          serverArgs,
          results,
          loads,
        }) +
          "\n",
      );
    }
  }

  report(dirs, results, serverArgs);
  console.log(`results written to ${file}`);
}

if (import.meta.main) await main();
