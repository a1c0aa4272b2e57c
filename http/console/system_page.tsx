/**
 * @module system_page
 * The running gateway: broker connection, roles and backends, queue depths, counters, memory,
 * whether live events cover the fleet (the Redis relay) or this process, and two charts (sales per
 * hour over 24 hours; messages per second over the last ten minutes). The live part is re-fetched
 * every five seconds.
 */
import { BarChart, LineChart } from "./charts.tsx";
import { Layout, type View } from "./layout.tsx";

export interface SystemData {
  status: Record<string, unknown>;
  memory: { rss: number; heapUsed: number; heapTotal: number };
  salesPerHour: { hour: Date; count: number }[];
  rates: number[];
  uptimeS: number;
  presenceTracked: number;
  streams: number;
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

export function SystemLive(props: { v: View; d: SystemData }) {
  const { v, d } = props;
  const t = v.t;
  const s = d.status as {
    connected?: boolean;
    broker?: string | null;
    state?: string;
    roles?: string[];
    backends?: Record<string, string | null>;
    counters?: Record<string, unknown>;
    queues?: Record<string, Record<string, number> | { error: string }>;
    embedded_broker?: { clients?: number } | null;
    event_relay?: { processes: number } | null;
  };
  const counters = s.counters ?? {};
  return (
    <div id="system-live">
      <div class="stats">
        <div class="stat">
          <span class="muted">{t("broker")}</span>
          <b class={s.connected ? "ok" : "bad"}>{s.connected ? t("connected") : t("disconnected")}</b>
          <span class="muted">{s.backends?.broker ?? "–"} {s.broker ?? ""}</span>
        </div>
        <div class="stat">
          <span class="muted">{t("memory")}</span>
          <b>{mb(d.memory.rss)}</b>
          <span class="muted">heap {mb(d.memory.heapUsed)} / {mb(d.memory.heapTotal)}</span>
        </div>
        <div class="stat">
          <span class="muted">{t("uptime")}</span>
          <b>{Math.floor(d.uptimeS / 3600)} h {Math.floor((d.uptimeS % 3600) / 60)} min</b>
          <span class="muted">{t("roles")}: {(s.roles ?? []).join(", ")}</span>
        </div>
        <div class="stat">
          <span class="muted">{t("worker")}</span>
          <b>{String(counters.received ?? 0)}</b>
          <span class="muted">
            queued {String(counters.queued ?? 0)} · rejected {String(counters.rejected ?? 0)} · dead{" "}
            {String(counters.dead_lettered ?? 0)}
          </span>
        </div>
      </div>
      <div class="grid">
        <div class="card">
          <h2>{t("sales_per_hour")}</h2>
          <BarChart
            values={d.salesPerHour.map((h) => ({
              label: `${String(h.hour.getUTCHours()).padStart(2, "0")}h`,
              value: h.count,
            }))}
          />
        </div>
        <div class="card">
          <h2>{t("msgs_per_s")}</h2>
          <LineChart values={d.rates} label={d.rates.length ? `${d.rates.at(-1)!.toFixed(1)}/s` : "…"} />
        </div>
        <div class="card wide">
          <h2>{t("queues")}</h2>
          <table>
            <thead>
              <tr>
                <th>{t("queue")}</th>
                <th class="num">{t("ready")}</th>
                <th class="num">{t("processing")}</th>
                <th class="num">{t("delayed")}</th>
                <th class="num">{t("dead")}</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(s.queues ?? {}).map(([name, q]) => (
                <tr>
                  <td>{name}</td>
                  {"error" in q ? <td colspan={4} class="bad">{String(q.error)}</td> : (
                    <>
                      <td class="num">{q.ready}</td>
                      <td class="num">{q.processing}</td>
                      <td class="num">{q.delayed}</td>
                      <td class="num">{q.dead}</td>
                    </>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted">
            {t("presence")}: {d.presenceTracked} · SSE: {d.streams}
            {s.embedded_broker ? ` · MQTT clients: ${s.embedded_broker.clients ?? 0}` : ""}
            {" · "}
            {t("live_events")}:{" "}
            {s.event_relay ? t("events_fleet", { n: s.event_relay.processes }) : t("events_local")}
          </p>
        </div>
        <div class="card">
          <h2>{t("counters")}</h2>
          <pre class="job">{JSON.stringify({ backends: s.backends, state: s.state, counters }, null, 1)}</pre>
        </div>
      </div>
    </div>
  );
}

export function SystemPage(props: { v: View; d: SystemData }) {
  return (
    <Layout v={props.v} title={props.v.t("system")} page="system">
      <h1>{props.v.t("system")}</h1>
      <SystemLive v={props.v} d={props.d} />
    </Layout>
  );
}
