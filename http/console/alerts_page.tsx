/**
 * @module alerts_page
 * The error feed across the fleet, newest first; new errors appear live.
 */
import type { LogRow } from "../../db/fleet_views.ts";
import { Ago, Layout, type View } from "./layout.tsx";

export function AlertsList(props: { v: View; logs: LogRow[] }) {
  const { v, logs } = props;
  return (
    <div id="alerts-list">
      {logs.length === 0 ? <p class="muted">{v.t("none")}</p> : (
        <table>
          <thead>
            <tr>
              <th>{v.t("time")}</th>
              <th>{v.t("serial")}</th>
              <th>{v.t("level")}</th>
              <th>{v.t("code")}</th>
              <th>{v.t("message")}</th>
            </tr>
          </thead>
          <tbody>
            {logs.map((l) => (
              <tr data-log-id={String(l.id)}>
                <td>
                  <Ago at={l.receivedAt} t={v.t} />
                </td>
                <td>
                  <a href={`/console/machines/${encodeURIComponent(l.serialNo)}`}>{l.serialNo}</a>
                </td>
                <td>
                  <span class={`badge ${l.level}`}>{l.level}</span>
                </td>
                <td>{l.code}</td>
                <td>{l.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function AlertsPage(props: { v: View; logs: LogRow[] }) {
  return (
    <Layout v={props.v} title={props.v.t("alerts")} page="alerts" live>
      <h1>{props.v.t("alerts")}</h1>
      <div class="card">
        <AlertsList v={props.v} logs={props.logs} />
      </div>
    </Layout>
  );
}
