/**
 * @module fleet_page
 * Every machine, a page at a time (searched, filtered and sorted by the database): online mark,
 * last heard, temperature, current page, today's sales, alerts of the last 24 hours and low-stock
 * slots. Heartbeats patch their row live; a machine not on the page refreshes the table.
 */
import type { FleetFilter, FleetRow, FleetSort } from "../../db/fleet_views.ts";
import { Ago, Layout, type View } from "./layout.tsx";

export interface FleetParams {
  q: string;
  filter?: FleetFilter;
  sort: FleetSort;
  desc: boolean;
  page: number;
  pageSize: number;
}

export interface FleetPageData {
  params: FleetParams;
  rows: (FleetRow & { online: boolean })[];
  total: number;
  lowStock: number;
}

export function fleetLink(p: FleetParams, change: Partial<FleetParams>): string {
  const n = { ...p, ...change };
  const s = new URLSearchParams();
  if (n.q) s.set("q", n.q);
  if (n.filter) s.set("filter", n.filter);
  if (n.sort !== "serial") s.set("sort", n.sort);
  if (n.desc) s.set("dir", "desc");
  if (n.page > 1) s.set("page", String(n.page));
  const qs = s.toString();
  return qs ? `/console?${qs}` : "/console";
}

const money = (n: number) =>
  n.toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 2 });

export function FleetTable(props: { v: View; d: FleetPageData }) {
  const { v, d } = props;
  const p = d.params;
  const head = (key: FleetSort, label: string, num = false) => {
    const on = p.sort === key;
    const desc = on ? !p.desc : key !== "serial";
    return (
      <th class={num ? "num" : undefined}>
        <a href={fleetLink(p, { sort: key, desc, page: 1 })} class={on ? "on" : undefined}>
          {label}
          {on ? (p.desc ? " ▼" : " ▲") : ""}
        </a>
      </th>
    );
  };
  const pages = Math.max(1, Math.ceil(d.total / p.pageSize));
  return (
    <div id="fleet-table">
      <table>
        <thead>
          <tr>
            {head("serial", v.t("serial"))}
            <th>{v.t("name")}</th>
            {head("last_heard", v.t("last_heard"))}
            {head("temperature", v.t("temperature"), true)}
            <th class="num">{v.t("page")}</th>
            {head("sales", v.t("sales_today"), true)}
            {head("alerts", v.t("open_alerts"), true)}
            {head("low_stock", v.t("low_slots"), true)}
          </tr>
        </thead>
        <tbody>
          {d.rows.map((m) => (
            <tr data-serial={m.serialNo}>
              <td>
                <span class={m.online ? "dot on" : "dot"}></span>
                <a href={`/console/machines/${encodeURIComponent(m.serialNo)}`}>{m.serialNo}</a>
              </td>
              <td>{m.name ?? <span class="muted">{m.registered ? "" : "—"}</span>}</td>
              <td>
                <Ago at={m.lastHeardAt} t={v.t} f="last" />
              </td>
              <td class="num" data-f="temp">
                {m.temperature === null ? "–" : `${m.temperature.toFixed(1)} °C`}
              </td>
              <td class="num" data-f="page">{m.currentPage ?? "–"}</td>
              <td class="num">{m.salesCount} / {money(m.salesAmount)}</td>
              <td class="num">
                {m.alerts > 0 ? <span class="badge error">{m.alerts}</span> : <span class="muted">0</span>}
              </td>
              <td class="num">
                {m.lowSlots > 0 ? <span class="badge low">{m.lowSlots}</span> : <span class="muted">0</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.rows.length === 0 ? <p class="muted">{v.t("none")}</p> : null}
      <div class="pager">
        <span class="muted">
          {d.total} {v.t("machines_n")} · {p.page} / {pages}
        </span>
        {p.page > 1 ? <a href={fleetLink(p, { page: p.page - 1 })}>← {v.t("prev")}</a> : null}
        {p.page < pages ? <a href={fleetLink(p, { page: p.page + 1 })}>{v.t("next")} →</a> : null}
      </div>
    </div>
  );
}

export function FleetPage(props: { v: View; d: FleetPageData }) {
  const { v, d } = props;
  const p = d.params;
  const chips: [FleetFilter | undefined, string][] = [
    [undefined, v.t("all")],
    ["online", v.t("online")],
    ["offline", v.t("offline")],
    ["alerting", v.t("alerting")],
    ["low_stock", `${v.t("low_stock")} (≤ ${d.lowStock})`],
  ];
  return (
    <Layout v={v} title={v.t("fleet")} page="fleet" live>
      <h1>{v.t("fleet")}</h1>
      <div class="card">
        <div class="toolbar">
          <form method="get" action="/console" class="inline">
            <input
              type="search"
              name="q"
              value={p.q}
              placeholder={v.t("search")}
              aria-label={v.t("search")}
            />
            {p.filter ? <input type="hidden" name="filter" value={p.filter} /> : null}
            {p.sort !== "serial" ? <input type="hidden" name="sort" value={p.sort} /> : null}
            {p.desc ? <input type="hidden" name="dir" value="desc" /> : null}{" "}
            <button type="submit" class="secondary">{v.t("apply")}</button>
          </form>
          <span class="chips">
            {chips.map(([f, label]) => (
              <a href={fleetLink(p, { filter: f, page: 1 })} class={p.filter === f ? "on" : undefined}>
                {label}
              </a>
            ))}
          </span>
        </div>
        <FleetTable v={v} d={d} />
      </div>
    </Layout>
  );
}
