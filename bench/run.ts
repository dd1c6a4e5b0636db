// The whole-system benchmark (`deno task bench`): runs workloads W1–W4 against push-server and
// its peers (Deno.upgradeWebSocket, ws on Node, uWebSockets.js on Node, Bun), each server pinned
// to one core and the C load generator (bench/loadgen.c) to the other, then prints medians with
// min and max over the repetitions and writes everything as JSON into bench/out/.
//
// W1 also runs on a channel (w1k-ch, w10k-ch), for push-server alone: every client subscribes to
// one channel over push.v1, each FIFO line is a publish command of the same 100 B, and history is
// durable (SQLite in the run's state directory); the table then gives channel/broadcast in the
// same run.
//
//   deno task bench [--quick] [--reps N] [--workloads w1k,w1k-ch,w10k,w10k-ch,w2,w3,w4]
//                   [--peers push,deno,ws,uws,bun] [--out FILE]

import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const OUT = `${ROOT}/bench/out`;
const NODE_MODULES = `${OUT}/node_modules`;
/** Peers' npm packages, pinned; installed into bench/out by the driver. */
const NPM_PACKAGES = [
  "ws@8.18.3",
  "bun@1.4.5",
  "@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0",
];
const SERVER_CORE = "0";
const LOADGEN_CORE = "1";
const START_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_S = 60;

export interface Workload {
  readonly id: string;
  readonly title: string;
  readonly args: (quick: boolean) => string[];
  readonly clients: number;
  /** W1 on this push.v1 channel (push-server only), with durable history. */
  readonly channel?: string;
  /** The broadcast workload this channel workload is compared with. */
  readonly versus?: string;
}

/** The channel every client of a channel workload subscribes to. */
const BENCH_CHANNEL = "w1";

/** `w` as W1 on one push.v1 channel: same lines, same clients, every client subscribed. */
function onChannel(w: Workload): Workload {
  return {
    id: `${w.id}-ch`,
    title: `${w.title}, as publications on one channel (push.v1, durable history)`,
    clients: w.clients,
    args: (quick) => [...w.args(quick), "--channel", BENCH_CHANNEL],
    channel: BENCH_CHANNEL,
    versus: w.id,
  };
}

const W1K: Workload = {
  id: "w1k",
  title: "W1 burst, 1,000 clients, 500 lines of 100 B",
  clients: 1000,
  args: (quick) => [
    ...["--mode", "bcast", "--clients", "1000", "--lines", "500", "--line-bytes", "100"],
    ...["--bursts", quick ? "2" : "5", "--waves", "0"],
  ],
};

const W10K: Workload = {
  id: "w10k",
  title: "W1 burst, 10,000 clients, 50 lines of 100 B; then one-line waves",
  clients: 10000,
  args: (quick) => [
    ...["--mode", "bcast", "--clients", "10000", "--lines", "50", "--line-bytes", "100"],
    ...["--bursts", quick ? "2" : "3", "--waves", quick ? "3" : "5"],
  ],
};

export const WORKLOADS: readonly Workload[] = [
  W1K,
  onChannel(W1K),
  W10K,
  onChannel(W10K),
  {
    id: "w2",
    title: "W2 echo, 100 connections, 8 messages of 64 B in flight each",
    clients: 100,
    args: (quick) => [
      ...["--mode", "echo", "--clients", "100", "--inflight", "8", "--size", "64"],
      ...["--seconds", quick ? "1" : "3"],
    ],
  },
  {
    id: "w3",
    title: "W3 echo of 16 MiB binary messages, one connection",
    clients: 1,
    args: (quick) => [
      ...["--mode", "big", "--clients", "1", "--size", String(16 * 1024 * 1024)],
      ...["--count", quick ? "4" : "16"],
    ],
  },
  {
    id: "w4",
    title: "W4 10,000 idle connections: handshakes/s and server RSS",
    clients: 10000,
    args: () => ["--mode", "idle", "--clients", "10000", "--settle-ms", "1000"],
  },
];

export interface Peer {
  readonly id: string;
  readonly name: string;
  /**
   * The command (without taskset) for a server reading `fifo` for workload `w`, or a reason it
   * cannot run. Only push-server runs channel workloads.
   */
  readonly command: (fifo: string, w: Workload) => string[] | { skip: string };
  /** How the server says it is ready: its port. */
  readonly ready: RegExp;
}

/** The npm package "bun" carries the binary as bin/bun.exe (linked from @oven/bun-linux-x64). */
const BUN = [`${NODE_MODULES}/bun/bin/bun.exe`, `${NODE_MODULES}/@oven/bun-linux-x64/bin/bun`]
  .find(exists) ?? `${NODE_MODULES}/bun/bin/bun.exe`;
const UWS_DIR = `${NODE_MODULES}/@trufflesuite/uws-js-unofficial/dist`;

/**
 * push-server as checked out in `root` (its main.ts with its examples/echo.ts handlers). For a
 * channel workload it writes history into a state directory beside the FIFO, with the
 * permissions of `deno task start`.
 */
export function pushPeer(root: string, name = "push-server"): Peer {
  return {
    id: "push",
    name,
    ready: /listening on [^:]+:(\d+)/,
    command: (fifo, w) => {
      const state = `${fifo.slice(0, fifo.lastIndexOf("/"))}/state`;
      // As `deno task start` and the systemd units grant: osUptime lets the server tell a
      // reboot from a restart, so it commits with synchronous=NORMAL (no fsync per FIFO read).
      const durable = w.channel ? [`--allow-write=${state}`, "--allow-sys=osUptime"] : [];
      return [
        Deno.execPath(),
        ...["run", "--quiet", "--allow-net", "--allow-read", ...durable, `${root}/main.ts`],
        ...["--port", "0", "--fifo", fifo, "--log-level", "info"],
        ...(w.channel ? ["--state-dir", state] : []),
        `${root}/examples/echo.ts`,
      ];
    },
  };
}

const PEERS: readonly Peer[] = [
  pushPeer(ROOT),
  {
    id: "deno",
    name: "Deno.upgradeWebSocket",
    ready: /LISTENING (\d+)/,
    command: (fifo) => [
      Deno.execPath(),
      ...["run", "--quiet", "--allow-net", "--allow-read", `${ROOT}/bench/peers/deno_upgrade.ts`],
      fifo,
    ],
  },
  {
    id: "ws",
    name: "ws (Node)",
    ready: /LISTENING (\d+)/,
    command: (fifo) => {
      if (!which("node")) return { skip: "node is not installed" };
      return ["node", `${ROOT}/bench/peers/ws_node.mjs`, fifo];
    },
  },
  {
    id: "uws",
    name: "uWebSockets.js (Node)",
    ready: /LISTENING (\d+)/,
    command: (fifo) => {
      if (!which("node")) return { skip: "node is not installed" };
      if (!exists(UWS_DIR)) return { skip: `${UWS_DIR} is missing (npm install failed?)` };
      return ["node", `${ROOT}/bench/peers/uws_node.mjs`, fifo];
    },
  },
  {
    id: "bun",
    name: "Bun",
    ready: /LISTENING (\d+)/,
    command: (fifo) => {
      if (!exists(BUN)) return { skip: `${BUN} is missing (npm install failed?)` };
      return [BUN, `${ROOT}/bench/peers/bun.ts`, fifo];
    },
  },
];

/** Which value of a result a table row shows, and whether more is better. */
export interface Metric {
  readonly workload: string;
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
}

export const METRICS: readonly Metric[] = [
  {
    workload: "w1k",
    key: "msgPerSec",
    label: "W1 burst 1k clients",
    unit: "msg/s",
    higherIsBetter: true,
  },
  {
    workload: "w1k-ch",
    key: "msgPerSec",
    label: "W1 channel 1k clients",
    unit: "msg/s",
    higherIsBetter: true,
  },
  {
    workload: "w10k",
    key: "msgPerSec",
    label: "W1 burst 10k clients",
    unit: "msg/s",
    higherIsBetter: true,
  },
  {
    workload: "w10k-ch",
    key: "msgPerSec",
    label: "W1 channel 10k clients",
    unit: "msg/s",
    higherIsBetter: true,
  },
  {
    workload: "w10k",
    key: "waveP50Ms",
    label: "W1 wave 10k, p50",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    workload: "w10k-ch",
    key: "waveP50Ms",
    label: "W1 channel wave 10k, p50",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    workload: "w10k",
    key: "waveAllMs",
    label: "W1 wave 10k, last client",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    workload: "w2",
    key: "msgPerSec",
    label: "W2 echo 100×8×64 B",
    unit: "msg/s",
    higherIsBetter: true,
  },
  { workload: "w3", key: "MBps", label: "W3 echo 16 MiB", unit: "MB/s", higherIsBetter: true },
  {
    workload: "w4",
    key: "kbPerConn",
    label: "W4 RSS per idle conn",
    unit: "KB",
    higherIsBetter: false,
  },
  {
    workload: "w4",
    key: "handshakesPerSec",
    label: "W4 handshakes",
    unit: "/s",
    higherIsBetter: true,
  },
];

export type Result = Record<string, number | string | boolean>;

/** Whether `cmd` is on PATH. */
export function which(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  return { ok: r.success, out: text };
}

/** Compiles bench/loadgen.c into bench/out/loadgen when the binary is missing or older. */
export async function buildLoadgen(): Promise<void> {
  await Deno.mkdir(OUT, { recursive: true });
  const bin = `${OUT}/loadgen`;
  const src = `${ROOT}/bench/loadgen.c`;
  if (!exists(bin) || Deno.statSync(src).mtime! > Deno.statSync(bin).mtime!) {
    const r = await run("gcc", ["-O2", "-Wall", "-o", bin, src]);
    if (!r.ok) throw new Error(`gcc failed:\n${r.out}`);
  }
}

async function prepare(): Promise<void> {
  await buildLoadgen();
  const missing = NPM_PACKAGES.filter((spec) => {
    const name = spec.slice(0, spec.lastIndexOf("@"));
    return !exists(`${NODE_MODULES}/${name}/package.json`);
  });
  if (missing.length > 0 && which("npm")) {
    if (!exists(`${OUT}/package.json`)) {
      await Deno.writeTextFile(`${OUT}/package.json`, '{"name":"bench-peers","private":true}\n');
    }
    console.log(`installing ${missing.join(" ")} into bench/out`);
    const r = await run("npm", [
      ...["install", "--prefix", OUT, "--no-audit", "--no-fund", "--save-exact"],
      ...missing,
    ]);
    if (!r.ok) console.log(`npm install failed; peers needing it are skipped:\n${r.out}`);
  }
}

/** Hard limit on open files, which each server and the load generator raise to. */
export function fileLimit(): number {
  const r = new Deno.Command("sh", { args: ["-c", "ulimit -Hn"], stdout: "piped" }).outputSync();
  const text = new TextDecoder().decode(r.stdout).trim();
  return text === "unlimited" ? 1 << 20 : Number(text);
}

/** argv run with `ulimit -n` raised and, where taskset exists, pinned to `core`. */
function pinned(core: string, argv: string[], limit: number): string[] {
  const pin = which("taskset") ? `exec taskset -c ${core} "$@"` : `exec "$@"`;
  return ["bash", "-c", `ulimit -n ${limit}; ${pin}`, "bash", ...argv];
}

/** A server process that printed the port it listens on. */
export interface Server {
  readonly child: Deno.ChildProcess;
  readonly port: number;
  output(): string;
}

function startServer(argv: string[], ready: RegExp, limit: number): Promise<Server> {
  const [cmd, ...args] = pinned(SERVER_CORE, argv, limit);
  return spawnServer(cmd, args, { ready, env: { BENCH_NODE_MODULES: NODE_MODULES } });
}

/**
 * Spawns `cmd args` and resolves once its output matches `ready` (whose first group is the
 * port), keeping the last of its output; kills it and throws if it exits or takes too long.
 */
export async function spawnServer(
  cmd: string,
  args: string[],
  { ready, env }: { ready: RegExp; env?: Record<string, string> },
): Promise<Server> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  let log = "";
  let found: (port: number) => void;
  const portFound = new Promise<number>((resolve) => found = resolve);
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      log = (log + decoder.decode(chunk, { stream: true })).slice(-8000);
      const m = log.match(ready);
      if (m) found(Number(m[1]));
    }
  };
  drain(child.stdout);
  drain(child.stderr);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), START_TIMEOUT_MS);
  });
  const port = await Promise.race([portFound, timeout, child.status.then(() => "exit" as const)]);
  clearTimeout(timer);
  if (typeof port !== "number") {
    killServer(child);
    await child.status;
    throw new Error(`server did not start (${port}): ${log.trim().slice(-600)}`);
  }
  return { child, port, output: () => log };
}

export function killServer(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
}

async function runLoadgen(args: string[], limit: number): Promise<Result> {
  const [cmd, ...rest] = pinned(LOADGEN_CORE, [`${OUT}/loadgen`, ...args], limit);
  const child = new Deno.Command(cmd, { args: rest, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* done */ }
  }, (RUN_TIMEOUT_S + 30) * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout).trim();
  const last = text.split("\n").pop() ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return {
      ok: false,
      error: `no JSON from loadgen: ${text} ${new TextDecoder().decode(out.stderr)}`,
    };
  }
}

export async function oneRun(
  peer: Peer,
  w: Workload,
  quick: boolean,
  limit: number,
): Promise<Result> {
  const dir = await Deno.makeTempDir({ dir: OUT, prefix: "run-" });
  const fifo = `${dir}/push.fifo`;
  try {
    const mk = await run("mkfifo", [fifo]);
    if (!mk.ok) throw new Error(`mkfifo failed: ${mk.out}`);
    const argv = peer.command(fifo, w);
    if (!Array.isArray(argv)) throw new SkipPeer(argv.skip);
    const server = await startServer(argv, peer.ready, limit);
    try {
      return await runLoadgen([
        ...w.args(quick),
        ...["--port", String(server.port), "--fifo", fifo],
        ...["--server-pid", String(server.child.pid), "--timeout", String(RUN_TIMEOUT_S)],
      ], limit);
    } finally {
      killServer(server.child);
      await server.child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export class SkipPeer extends Error {}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "–";
  if (unit === "ms" || unit === "KB") return v.toFixed(v < 10 ? 2 : 1);
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(0);
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(results: Result[], key: string): Summary | null {
  const values = results.filter((r) => r.ok === true).map((r) => Number(r[key]));
  if (values.length === 0) return null;
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    n: values.length,
  };
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const sep = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join("\n");
}

/**
 * Rows comparing each channel workload with its broadcast twin: the ratio of the median rates,
 * and of the median server CPU per delivered message (broadcast / channel: 1 means a channel
 * message costs the server what a broadcast line does); in brackets, the median of the ratios of
 * the pairs run side by side.
 */
export function channelVersusBroadcast(
  workloads: readonly Workload[],
  byWorkload: Record<string, Result[]>,
): string[][] {
  const rows = [[
    "workload",
    "msg/s channel / broadcast (paired)",
    "server CPU per msg broadcast / channel (paired)",
  ]];
  for (const w of workloads) {
    const versus = w.versus;
    if (versus === undefined) continue;
    const channel = byWorkload[w.id] ?? [];
    const broadcast = byWorkload[versus] ?? [];
    const cell = (key: string, flip: boolean) => {
      const of = (id: string) => summarize(byWorkload[id] ?? [], key)?.median ?? NaN;
      const ratio = (c: number, b: number) => flip ? b / c : c / b;
      const pairs = channel.flatMap((c, i) => {
        const b = broadcast[i];
        return c.ok === true && b?.ok === true ? [ratio(Number(c[key]), Number(b[key]))] : [];
      });
      const overall = ratio(of(w.id), of(versus));
      const paired = pairs.length > 0 ? ` (${median(pairs).toFixed(2)})` : "";
      return Number.isFinite(overall) ? `${overall.toFixed(2)}${paired}` : "–";
    };
    rows.push([
      `${w.id} / ${versus}`,
      cell("msgPerSec", false),
      cell("serverCpuNsPerMsg", true),
    ]);
  }
  return rows;
}

async function machineInfo(): Promise<Record<string, string>> {
  const version = async (cmd: string, args: string[]) => {
    try {
      return (await run(cmd, args)).out.trim().split("\n")[0];
    } catch {
      return "not installed";
    }
  };
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "";
  return {
    cpu,
    cores: String(navigator.hardwareConcurrency),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    node: await version("node", ["--version"]),
    bun: exists(BUN) ? await version(BUN, ["--version"]) : "not installed",
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      reps: { type: "string" },
      workloads: { type: "string", default: WORKLOADS.map((w) => w.id).join(",") },
      peers: { type: "string", default: PEERS.map((p) => p.id).join(",") },
      out: { type: "string" },
    },
  });
  const quick = values.quick!;
  const reps = Number(values.reps ?? (quick ? 1 : 5));
  const workloads = values.workloads!.split(",").map((id) => {
    const w = WORKLOADS.find((x) => x.id === id);
    if (!w) throw new Error(`unknown workload ${id}; known: ${WORKLOADS.map((x) => x.id)}`);
    return w;
  });
  const peers = values.peers!.split(",").map((id) => {
    const p = PEERS.find((x) => x.id === id);
    if (!p) throw new Error(`unknown peer ${id}; known: ${PEERS.map((x) => x.id)}`);
    return p;
  });

  await prepare();
  const limit = fileLimit();
  const needed = Math.max(...workloads.map((w) => w.clients)) + 100;
  if (limit < needed) {
    console.log(`ulimit -n hard limit is ${limit}: ${needed} descriptors per process don't fit`);
  }
  console.log(`ulimit -n raised to ${limit} for each server and the load generator`);
  if (!which("taskset")) console.log("taskset is missing: processes are not pinned");
  else console.log(`servers pinned to core ${SERVER_CORE}, load generator to core ${LOADGEN_CORE}`);

  const results: Record<string, Record<string, Result[]>> = {};
  const skipped: Record<string, string> = {};
  /** One repetition of `w` on `peer`, logged and kept; false once the peer is skipped. */
  const runOnce = async (peer: Peer, w: Workload, rep: number): Promise<boolean> => {
    let r: Result;
    try {
      r = await oneRun(peer, w, quick, limit);
    } catch (e) {
      if (e instanceof SkipPeer || rep === 0) {
        skipped[peer.id] = e instanceof Error ? e.message : String(e);
        console.log(`${peer.name}: skipped: ${skipped[peer.id]}`);
        return false;
      }
      r = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    results[peer.id][w.id].push(r);
    const brief = METRICS.filter((m) => m.workload === w.id)
      .map((m) => `${m.key}=${fmt(Number(r[m.key]), m.unit)}`).join(" ");
    const cpu = r.serverCpu === undefined
      ? ""
      : ` cpu server=${Number(r.serverCpu).toFixed(2)} loadgen=${Number(r.loadgenCpu).toFixed(2)}`;
    const status = r.ok === true ? "" : ` FAILED: ${r.error ?? r.firstError ?? ""}` +
      ` (received ${r.received ?? "?"} of ${r.expected ?? "?"})`;
    console.log(`${peer.name} ${w.id} #${rep + 1}: ${brief}${cpu}${status}`);
    return true;
  };

  for (const peer of peers) {
    results[peer.id] = Object.fromEntries(workloads.map((w) => [w.id, []]));
    // push.v1 channels are push-server's own. A channel workload runs paired with its broadcast
    // twin when both are asked for (broadcast, channel, broadcast, …), so that the machine's
    // drift over a run slows both alike and the ratio compares neighbours.
    const twins = (w: Workload) =>
      peer.id === "push" ? workloads.filter((x) => x.versus === w.id) : [];
    for (const w of workloads) {
      if (w.channel && (peer.id !== "push" || workloads.some((x) => x.id === w.versus))) continue;
      for (let rep = 0; rep < reps && !skipped[peer.id]; rep++) {
        for (const x of [w, ...twins(w)]) if (!await runOnce(peer, x, rep)) break;
      }
    }
  }

  const active = peers.filter((p) => !skipped[p.id]);
  const push = active.find((p) => p.id === "push");
  const header = ["metric", ...active.map((p) => p.name)];
  const others = push ? active.filter((p) => p !== push) : [];
  header.push(...others.map((p) => `push/${p.id}`));
  const rows = [header];
  const summary: Record<string, Record<string, Summary | null>> = {};
  for (const m of METRICS) {
    if (!workloads.some((w) => w.id === m.workload)) continue;
    const row = [`${m.label} (${m.unit}${m.higherIsBetter ? "" : ", lower is better"})`];
    const medians: Record<string, number> = {};
    for (const p of active) {
      const s = summarize(results[p.id][m.workload] ?? [], m.key);
      (summary[p.id] ??= {})[`${m.workload}.${m.key}`] = s;
      medians[p.id] = s ? s.median : NaN;
      row.push(s ? `${fmt(s.median, m.unit)} (${fmt(s.min, m.unit)}–${fmt(s.max, m.unit)})` : "–");
    }
    for (const p of others) {
      const ratio = medians.push / medians[p.id];
      row.push(Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : "–");
    }
    rows.push(row);
  }
  const cpuRows = [[
    "CPU, cores busy (median)",
    ...active.map((p) => `${p.name} server / loadgen`),
  ]];
  for (const w of workloads) {
    cpuRows.push([
      w.id,
      ...active.map((p) => {
        const s = summarize(results[p.id][w.id] ?? [], "serverCpu");
        const l = summarize(results[p.id][w.id] ?? [], "loadgenCpu");
        return s && l ? `${s.median.toFixed(2)} / ${l.median.toFixed(2)}` : "–";
      }),
    ]);
  }
  const channelRows = push ? channelVersusBroadcast(workloads, results[push.id]) : [];
  const failures = Object.values(results).flatMap((byW) => Object.values(byW).flat())
    .filter((r) => r.ok !== true).length;
  console.log(
    `\nMedians (min–max) of ${reps} repetition(s); ratio = push-server median / peer median`,
  );
  console.log(table(rows));
  console.log("\n" + table(cpuRows));
  if (channelRows.length > 1) {
    console.log("\npush-server, W1 on one channel versus plain broadcast, same run:");
    console.log(table(channelRows));
  }
  for (const [id, reason] of Object.entries(skipped)) console.log(`skipped ${id}: ${reason}`);
  console.log(
    failures ? `${failures} run(s) FAILED (lost messages or errors)` : "no run lost a message",
  );

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = values.out ?? `${OUT}/results-${stamp}.json`;
  const doc = {
    date: new Date().toISOString(),
    command: `deno task bench ${Deno.args.join(" ")}`.trim(),
    machine: await machineInfo(),
    reps,
    quick,
    workloads: workloads.map((w) => ({ id: w.id, title: w.title, loadgenArgs: w.args(quick) })),
    peers: Object.fromEntries(peers.map((p) => [p.id, p.name])),
    skipped,
    summary,
    channelVersusBroadcast: channelRows,
    results,
  };
  await Deno.writeTextFile(file, JSON.stringify(doc, null, 2) + "\n");
  await Deno.writeTextFile(`${OUT}/latest.json`, JSON.stringify(doc, null, 2) + "\n");
  console.log(`results written to ${file}`);
}

if (import.meta.main) await main();
