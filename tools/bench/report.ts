/**
 * @module report
 * Turns scenario results into the printed table (Markdown, so it pastes into docs/benchmarks.md as is),
 * the goals with whether each holds, and the JSON written under `tools/bench/results/`.
 */
import type { Ceilings } from "./ceilings.ts";
import type { ScenarioResult } from "./context.ts";

export interface Goal {
  goal: string;
  measured: number | null;
  unit: string;
  target: string;
  holds: boolean | null;
  note?: string;
}

function find(results: ScenarioResult[], name: string, metric: string): number | null {
  const r = results.find((x) => x.name === name && !x.skipped);
  const f = r?.figures.find((x) => x.metric.trim() === metric);
  return f && Number.isFinite(f.value) ? f.value : null;
}

export function lowestCeiling(c: Ceilings | null): { name: string; value: number } | null {
  if (!c) return null;
  const entries = Object.entries(c).filter(([, v]) => Number.isFinite(v)) as [string, number][];
  if (entries.length === 0) return null;
  const [name, value] = entries.reduce((a, b) => (b[1] < a[1] ? b : a));
  return { name, value };
}

export function evaluateGoals(
  results: ScenarioResult[],
  ceilings: Ceilings | null,
  sizes: { rate: number; downlinkRate: number },
): Goal[] {
  const goals: Goal[] = [];
  const acked = find(results, "uplink-queue", "messages acked into the queue");
  const share = acked !== null && ceilings ? acked / ceilings.broker : null;
  goals.push({
    goal: "uplink acked into the queue ≥ 80 % of the broker ceiling",
    measured: share === null ? null : share * 100,
    unit: "% of ceiling",
    target: "≥ 80 %",
    holds: share === null ? null : share >= 0.8,
    note: acked !== null && ceilings
      ? `${Math.round(acked)} of ${Math.round(ceilings.broker)} msg/s`
      : undefined,
  });
  const hb = find(results, "worker-drain", "heartbeats landed in SQL");
  const lastWins = find(results, "worker-drain", "last heartbeat won on every machine (1 = holds)");
  goals.push({
    goal: "heartbeats landed in SQL ≥ 20,000/s (last wins)",
    measured: hb,
    unit: "msg/s",
    target: "≥ 20000",
    holds: hb === null ? null : hb >= 20_000 && lastWins === 1,
  });
  const tx = find(results, "worker-drain", "transactions landed in SQL");
  const once = find(results, "worker-drain", "exactly once (1 = holds)");
  const onceE2e = find(results, "uplink-e2e", "transactions exactly once (1 = holds)");
  goals.push({
    goal: "transactions ≥ 10,000/s, exactly-once effect",
    measured: tx,
    unit: "msg/s",
    target: "≥ 10000, exactly once",
    holds: tx === null ? null : tx >= 10_000 && once === 1 && onceE2e !== 0,
    note: `exactly once: drain ${once === null ? "n/a" : once === 1 ? "yes" : "NO"}, end to end ${
      onceE2e === null ? "n/a" : onceE2e === 1 ? "yes" : "NO"
    }`,
  });
  const p99 = find(results, "uplink-rate", "publish → committed p99");
  const achieved = find(results, "uplink-rate", "achieved publish rate");
  goals.push({
    goal: `p99 publish → committed < 250 ms at ${sizes.rate} msg/s`,
    measured: p99,
    unit: "ms",
    target: "< 250",
    holds: p99 === null ? null : p99 < 250 && (achieved ?? 0) >= sizes.rate * 0.95,
    note: achieved === null ? undefined : `at ${Math.round(achieved)} msg/s achieved`,
  });
  const dl = find(results, "downlink", "HTTP → receipt on the machine p99");
  const floorP99 = find(results, "ceilings", "downlink floor p99");
  const skipped = results.find((r) => r.name === "downlink")?.skipped;
  goals.push({
    goal: `downlink p99 < 20 ms at ${sizes.downlinkRate}/s`,
    measured: dl,
    unit: "ms",
    target: "< 20",
    holds: dl === null ? null : dl < 20,
    note: skipped
      ? `skipped: ${skipped}`
      : floorP99 === null
      ? undefined
      : `floor with nothing between: p99 ${floorP99.toFixed(1)} ms`,
  });
  const rss = results.flatMap((r) => r.figures.filter((f) => f.metric.trim().endsWith("gateway RSS peak")))
    .map((f) => f.value).filter(Number.isFinite);
  const peak = rss.length ? Math.max(...rss) : null;
  goals.push({
    goal: "gateway RSS < 200 MB throughout",
    measured: peak,
    unit: "MB",
    target: "< 200",
    holds: peak === null ? null : peak < 200,
  });
  return goals;
}

function fmt(value: number, unit: string): string {
  if (!Number.isFinite(value)) return "n/a";
  if (unit === "bool") return value === 1 ? "yes" : "NO";
  if (unit === "ms") return value < 10 ? value.toFixed(2) : value.toFixed(1);
  if (unit === "s" || unit === "%" || unit === "MB") return value.toFixed(1);
  return Math.round(value).toLocaleString("en-US");
}

/** The results as Markdown tables: one row per figure, then the goals. */
export function renderTable(
  results: ScenarioResult[],
  ceilings: Ceilings | null,
  goals: Goal[],
): string {
  const low = lowestCeiling(ceilings);
  const lines: string[] = [];
  lines.push(
    `| scenario / figure | value | unit | ÷ lowest ceiling${
      low ? ` (${low.name}, ${fmt(low.value, "/s")}/s)` : ""
    } |`,
  );
  lines.push("|---|--:|---|--:|");
  for (const r of results) {
    lines.push(`| **${r.title}** | | | |`);
    if (r.skipped) {
      lines.push(`| skipped: ${r.skipped} | | | |`);
      continue;
    }
    for (const f of r.figures) {
      const ratio = f.rate && low && Number.isFinite(f.value) ? `${(f.value / low.value).toFixed(2)}×` : "";
      const unit = f.unit === "bool" ? "" : f.unit;
      lines.push(
        `| ${f.metric.replace(/^ +/, "&nbsp;&nbsp;")} | ${fmt(f.value, f.unit)} | ${unit} | ${ratio} |`,
      );
    }
  }
  lines.push("");
  lines.push("| goal | measured | target | holds |");
  lines.push("|---|--:|---|---|");
  for (const g of goals) {
    const measured = g.measured === null
      ? "n/a"
      : `${fmt(g.measured, g.unit === "msg/s" ? "/s" : g.unit === "% of ceiling" ? "%" : g.unit)} ${g.unit}`;
    const holds = g.holds === null ? "not measured" : g.holds ? "yes" : "**no**";
    lines.push(`| ${g.goal} | ${measured} | ${g.target} | ${holds}${g.note ? ` (${g.note})` : ""} |`);
  }
  const notes = results.flatMap((r) => r.notes.map((n) => `- ${r.name}: ${n}`));
  if (notes.length) lines.push("", ...notes);
  return lines.join("\n");
}
