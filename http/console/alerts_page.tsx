/**
 * @module alerts_page
 * The error feed across the fleet, newest first; new errors appear live.
 */
import type { LogRow } from "../../db/fleet_views.ts";
import { Ago, Layout, type View } from "./layout.tsx";

/**
 * A table of error-log rows, newest first. The alerts page shows the fleet's (with the serial, and
 * `id` for its live refresh); a machine's page shows its own (`withSerial` false, no id).
 */
export function AlertsList(props: { v: View; logs: LogRow[]; withSerial?: boolean; id?: string }) {
  const { v, logs, withSerial = true, id } = props;
  return (
    <div id={id}>
      {logs.length === 0 ? <p class="muted">{v.t("none")}</p> : (
        <table>
          <thead>
            <tr>
              <th>{v.t("time")}</th>
              {withSerial && <th>{v.t("serial")}</th>}
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
                {withSerial && (
                  <td>
                    <a href={`/console/machines/${encodeURIComponent(l.serialNo)}`}>{l.serialNo}</a>
                  </td>
                )}
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
        <AlertsList v={props.v} logs={props.logs} id="alerts-list" />
      </div>
    </Layout>
  );
}
