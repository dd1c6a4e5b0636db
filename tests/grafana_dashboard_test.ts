// Checks examples/grafana-dashboard.json against what the admin listener's /metrics serves:
// every metric a panel or variable queries exists, so no panel stays empty for a typo.

import assert from "node:assert/strict";
import { startAdminServer } from "../lib/admin/admin_server.ts";
import { createLogger } from "../lib/api/log.ts";
import { createMetrics } from "../lib/metrics/metrics.ts";
import { PushStats } from "../lib/metrics/stats.ts";
import { metricFamilies } from "./support/metrics_text.ts";

const DASHBOARD = new URL("../examples/grafana-dashboard.json", import.meta.url);
const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** Every query string in the dashboard: panel targets and templating variables. */
function queries(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const item of node) queries(item, out);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if ((key === "expr" || key === "definition") && typeof value === "string") out.push(value);
      else queries(value, out);
    }
  }
  return out;
}

/** Metric names in a PromQL expression (our own families and the process ones). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:push|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]);
}

Deno.test("every metric the Grafana dashboard queries appears in /metrics", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  const exprs = queries(dashboard);
  assert.ok(exprs.length >= 20, `queries found: ${exprs.length}`);
  const metrics = createMetrics(new PushStats(), {
    sources: { connectionsOpen: () => 0, bytesQueued: () => 0 },
  });
  const admin = startAdminServer({
    listen: "127.0.0.1:0",
    metrics,
    readiness: () => [],
    log: createLogger({ level: "error", write: () => {} }),
  });
  if ("error" in admin) throw new Error(admin.error);
  try {
    const text = await (await fetch(`http://127.0.0.1:${admin.addr.port}/metrics`)).text();
    const families = metricFamilies(text);
    const missing = new Set<string>();
    let checked = 0;
    for (const expr of exprs) {
      for (const name of metricNames(expr)) {
        checked++;
        const family = families.has(name) ? name : name.replace(HISTOGRAM_SERIES, "");
        if (!families.has(family)) missing.add(name);
      }
    }
    assert.ok(checked >= exprs.length, "every query names a metric");
    assert.deepEqual([...missing], []);
  } finally {
    await admin.close();
  }
});

Deno.test("the dashboard check notices a metric that /metrics lacks (it can fail)", () => {
  assert.deepEqual(metricNames("sum(rate(push_no_such_total[5m])) / process_open_fds"), [
    "push_no_such_total",
    "process_open_fds",
  ]);
});

Deno.test("the dashboard imports with a Prometheus data source input and unique panel ids", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  assert.equal(dashboard.__inputs[0].pluginId, "prometheus");
  const ids = dashboard.panels.map((p: { id: number }) => p.id);
  assert.equal(new Set(ids).size, ids.length);
});
