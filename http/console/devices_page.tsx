/**
 * @module devices_page
 * The device service's proxies: status, response time, recent checks, and the controller-start
 * action (operators only).
 */
import type { DeviceService } from "../../devices/device_service.ts";
import { Csrf, Layout, type View } from "./layout.tsx";

type Proxy = ReturnType<DeviceService["proxies"]>[number];

/** The seed's response_time is in seconds. */
const ms = (seconds: number) => `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;

export function DevicesPage(props: { v: View; proxies: Proxy[] | null; flash?: string }) {
  const { v } = props;
  const t = v.t;
  return (
    <Layout v={v} title={t("devices")} page="devices">
      <h1>{t("devices")}</h1>
      {props.flash ? <div class="note" id="flash">{props.flash}</div> : null}
      {props.proxies === null ? <div class="card muted">{t("no_devices")}</div> : (
        <div class="grid">
          {props.proxies.map((p) => {
            const recent =
              (p.history as { recent?: { status: string; at: string; response_time?: number }[] })
                .recent ?? [];
            const avg = (p.history as { avg_response_time?: number | null }).avg_response_time;
            return (
              <div class="card" data-proxy={String(p.proxyid)}>
                <h2>
                  <span class={p.last?.status === "healthy" ? "dot on" : "dot"}></span>
                  {t("proxy")} {p.proxyid} {p.name ? <span class="muted">{p.name}</span> : null}
                </h2>
                <dl class="kv">
                  <dt>{t("status")}</dt>
                  <dd>{p.last?.status ?? "unknown"}</dd>
                  <dt>{t("checked_at")}</dt>
                  <dd>{p.last_checked_at?.replace("T", " ").slice(0, 19) ?? t("never")}</dd>
                  <dt>{t("response_time")}</dt>
                  <dd>
                    {typeof p.last?.response_time === "number" ? ms(p.last.response_time) : "–"}
                    {typeof avg === "number" ? ` (avg ${ms(avg)})` : ""}
                  </dd>
                  <dt>{t("failures")}</dt>
                  <dd>{p.history.consecutive_failures}</dd>
                  <dt>{t("history")}</dt>
                  <dd>
                    {recent.slice(-20).map((r) => (
                      <span
                        title={`${r.at} ${r.status} ${
                          r.response_time === undefined ? "" : ms(r.response_time)
                        }`}
                        class={r.status === "healthy" ? "dot on" : "dot"}
                      >
                      </span>
                    ))}
                  </dd>
                </dl>
                <form method="post" action={`/console/devices/${p.proxyid}/start`} style="margin-top:10px">
                  <Csrf v={v} />
                  <button type="submit" disabled={!v.operator}>{t("controller_start")}</button>
                </form>
              </div>
            );
          })}
        </div>
      )}
    </Layout>
  );
}
