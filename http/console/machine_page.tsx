/**
 * @module machine_page
 * One machine: presence and last heartbeat, slots and stock, recent sales, the error log, the
 * command history with each command's lifecycle, and (operators only) the remote dispense, any
 * other command, its MQTT token, and setting its slots' stock (shown to operators only: a viewer
 * sees the stock, not a form). The lower half is re-fetched live when something of this
 * machine happens; the actions stay put.
 */
import type { LogRow, SaleRow } from "../../db/fleet_views.ts";
import type { CommandRecord, MachineDetail } from "../../db/store.ts";
import type { PresenceState } from "../../lib/presence.ts";
import { AlertsList } from "./alerts_page.tsx";
import { slotRanges } from "./slot_ranges.ts";
import { Ago, Csrf, Layout, type View } from "./layout.tsx";

export interface MachinePageData {
  machine: MachineDetail;
  online: boolean;
  presence?: PresenceState;
  sales: SaleRow[];
  logs: LogRow[];
  commands: CommandRecord[];
  lowStock: number;
  defaultTtlSeconds: number;
}

const json = (v: unknown) => (v === null || v === undefined ? "" : JSON.stringify(v));

export function MachineLive(props: { v: View; d: MachinePageData }) {
  const { v, d } = props;
  const t = v.t;
  return (
    <div id="machine-live" class="grid">
      <div class="card">
        <h2>{t("slots")}</h2>
        {d.machine.slots.length === 0 ? <p class="muted">{t("none")}</p> : (
          <table>
            <thead>
              <tr>
                <th>{t("slot")}</th>
                <th class="num">{t("stock")}</th>
              </tr>
            </thead>
            <tbody>
              {d.machine.slots.map((s) => (
                <tr>
                  <td>{s.slotNo}</td>
                  <td class="num">
                    {s.stock <= d.lowStock ? <span class="badge low">{s.stock}</span> : s.stock}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <div class="card">
        <h2>{t("recent_sales")}</h2>
        {d.sales.length === 0 ? <p class="muted">{t("none")}</p> : (
          <table>
            <thead>
              <tr>
                <th>{t("time")}</th>
                <th>{t("transaction")}</th>
                <th class="num">{t("slot")}</th>
                <th class="num">{t("quantity")}</th>
                <th class="num">{t("amount")}</th>
              </tr>
            </thead>
            <tbody>
              {d.sales.map((s) => (
                <tr>
                  <td>
                    <Ago at={s.receivedAt} t={t} />
                  </td>
                  <td>{s.transactionId}</td>
                  <td class="num">{s.slotNo}</td>
                  <td class="num">{s.quantity}</td>
                  <td class="num">{s.amount}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <div class="card">
        <h2>{t("error_log")}</h2>
        <AlertsList v={v} logs={d.logs} withSerial={false} />
      </div>
      <div class="card wide">
        <h2>{t("commands")}</h2>
        {d.commands.length === 0 ? <p class="muted">{t("none")}</p> : (
          <table>
            <thead>
              <tr>
                <th>{t("command")}</th>
                <th>{t("status")}</th>
                <th>{t("created")}</th>
                <th>{t("sent")}</th>
                <th>{t("acked")}</th>
                <th>{t("detail")}</th>
              </tr>
            </thead>
            <tbody>
              {d.commands.map((c) => (
                <tr data-message-id={c.messageId}>
                  <td title={c.messageId}>
                    {c.command} <span class="muted">{json(c.payload)}</span>
                  </td>
                  <td>
                    <span class={`badge ${c.status}`} data-status={c.status}>{c.status}</span>
                  </td>
                  <td>
                    <Ago at={c.createdAt} t={t} />
                  </td>
                  <td>
                    <Ago at={c.sentAt} t={t} />
                  </td>
                  <td>
                    <Ago at={c.ackedAt} t={t} />
                  </td>
                  <td class="muted">{json(c.detail)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}

function Actions(props: { v: View; d: MachinePageData }) {
  const { v, d } = props;
  const t = v.t;
  const serial = d.machine.serialNo;
  const base = `/console/machines/${encodeURIComponent(serial)}`;
  const off = !v.operator;
  return (
    <div class="grid">
      <div class="card">
        <h2>{t("remote_dispense")}</h2>
        <form
          method="post"
          action={`${base}/dispense`}
          data-fetch="1"
          data-confirm={t("confirm_dispense", { serial, slot: "{slot}" })}
          id="dispense-form"
        >
          <Csrf v={v} />
          <label>
            {t("slot")} {d.machine.slots.length > 0
              ? (
                <select name="slot_no" disabled={off}>
                  {d.machine.slots.map((s) => (
                    <option key={s.slotNo} value={String(s.slotNo)}>{s.slotNo} ({s.stock})</option>
                  ))}
                </select>
              )
              : <input type="number" name="slot_no" min="1" value="1" style="width:80px" disabled={off} />}
          </label>{" "}
          <button type="submit" disabled={off}>{t("dispense")}</button>
          <span class="result" aria-live="polite"></span>
        </form>
      </div>
      <div class="card">
        <h2>{t("other_command")}</h2>
        <form method="post" action={`${base}/commands`} data-fetch="1" id="command-form">
          <Csrf v={v} />
          <div class="toolbar">
            <input type="text" name="command" placeholder={t("command")} required disabled={off} />
            <label>
              {t("ttl_seconds")}{" "}
              <input
                type="number"
                name="ttl_seconds"
                min="1"
                value={String(d.defaultTtlSeconds)}
                style="width:90px"
                disabled={off}
              />
            </label>
          </div>
          <textarea name="payload" placeholder={t("payload_json")} disabled={off}>{"{}"}</textarea>
          <button type="submit" disabled={off}>{t("send")}</button>
          <span class="result" aria-live="polite"></span>
        </form>
      </div>
      {v.operator
        ? (
          <div class="card">
            <h2>{t("set_stock")}</h2>
            <form method="post" action={`${base}/slots`} data-fetch="1" id="stock-form">
              <Csrf v={v} />
              <div class="toolbar">
                <label>
                  {t("slots")}{" "}
                  <input
                    type="text"
                    name="slots"
                    required
                    placeholder="1-8"
                    value={slotRanges.format(d.machine.slots.map((s) => s.slotNo))}
                    style="width:120px"
                  />
                </label>
                <label>
                  {t("stock")}{" "}
                  <input type="number" name="stock" min="0" required value="20" style="width:80px" />
                </label>
                <button type="submit">{t("set")}</button>
              </div>
              <p class="muted">{t("set_stock_hint")}</p>
              <span class="result" aria-live="polite"></span>
            </form>
          </div>
        )
        : null}
      <div class="card">
        <h2>{t("machine_token")}</h2>
        <form method="post" action={`${base}/token`} class="inline" data-confirm={t("confirm_rotate")}>
          <Csrf v={v} />
          <button type="submit" disabled={off}>{t("issue_token")}</button>
        </form>{" "}
        <form method="post" action={`${base}/token/revoke`} class="inline" data-confirm={t("confirm_revoke")}>
          <Csrf v={v} />
          <button type="submit" class="danger" disabled={off}>{t("revoke_token")}</button>
        </form>
      </div>
    </div>
  );
}

export function MachinePage(props: { v: View; d: MachinePageData }) {
  const { v, d } = props;
  const t = v.t;
  const m = d.machine;
  return (
    <Layout v={v} title={m.serialNo} page="machine" live serial={m.serialNo}>
      <p>
        <a href="/console">← {t("fleet")}</a>
      </p>
      <div class="card" id="machine-head">
        <h1>
          <span class={d.online ? "dot on" : "dot"}></span>
          {m.serialNo} {m.name ? <span class="muted">{m.name}</span> : null}
        </h1>
        <dl class="kv">
          <dt>{t("status")}</dt>
          <dd data-f="status">{d.online ? t("online") : t("offline")}</dd>
          <dt>{t("last_heard")}</dt>
          <dd>
            <Ago at={m.lastHeardAt} t={t} f="last" />
          </dd>
          <dt>{t("temperature")}</dt>
          <dd data-f="temp">{m.temperature === null ? "–" : `${m.temperature.toFixed(1)} °C`}</dd>
          <dt>{t("page")}</dt>
          <dd data-f="page">{m.currentPage ?? "–"}</dd>
          <dt>{t("connected_at")}</dt>
          <dd>
            <Ago at={d.presence?.connectedAt ?? null} t={t} />
          </dd>
          <dt>{t("disconnected_at")}</dt>
          <dd>
            <Ago at={d.presence?.disconnectedAt ?? null} t={t} />
          </dd>
        </dl>
      </div>
      <Actions v={v} d={d} />
      <div style="height:16px"></div>
      <MachineLive v={v} d={d} />
    </Layout>
  );
}

/** The answer to a token issue: the token, shown this once. */
export function TokenPage(props: { v: View; serial: string; token?: string }) {
  const { v } = props;
  return (
    <Layout v={v} title={v.t("machine_token")} page="machine">
      <div class="card">
        <h1>{props.serial} · {v.t("machine_token")}</h1>
        {props.token
          ? (
            <>
              <p>{v.t("token_once")}</p>
              <p class="secret" id="new-token">{props.token}</p>
            </>
          )
          : <p id="token-revoked">{v.t("token_revoked")}</p>}
        <p>
          <a href={`/console/machines/${encodeURIComponent(props.serial)}`}>← {v.t("back")}</a>
        </p>
      </div>
    </Layout>
  );
}
