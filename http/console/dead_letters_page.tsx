/**
 * @module dead_letters_page
 * Both queues' dead letters (incoming jobs that failed their attempts or their schema, commands the
 * downlink could not read) with reason and attempts; replay or discard one, or all.
 */
import type { DeadLetter } from "../../queue/reliable_queue.ts";
import { Csrf, Layout, type View } from "./layout.tsx";

export const DEAD_QUEUES = ["incoming", "outgoing"] as const;
export type DeadQueue = (typeof DEAD_QUEUES)[number];

export interface DeadLettersData {
  queue: DeadQueue;
  letters: DeadLetter[];
  total: number;
  page: number;
  pageSize: number;
  counts: Record<DeadQueue, number | null>;
  flash?: string;
}

export function DeadLettersPage(props: { v: View; d: DeadLettersData }) {
  const { v, d } = props;
  const t = v.t;
  const action = `/console/dead-letters/${d.queue}`;
  const off = !v.operator;
  const pages = Math.max(1, Math.ceil(d.total / d.pageSize));
  return (
    <Layout v={v} title={t("dead_letters")} page="dead_letters">
      <h1>{t("dead_letters")}</h1>
      {d.flash ? <div class="note" id="flash">{d.flash}</div> : null}
      <div class="toolbar chips">
        {DEAD_QUEUES.map((q) => (
          <a href={`/console/dead-letters?queue=${q}`} class={d.queue === q ? "on" : undefined}>
            {t(q)} ({d.counts[q] ?? "–"})
          </a>
        ))}
      </div>
      <div class="card">
        <div class="toolbar">
          <form method="post" action={`${action}/replay`} class="inline">
            <Csrf v={v} />
            <input type="hidden" name="all" value="1" />
            <button type="submit" disabled={off || d.total === 0}>{t("replay_all")}</button>
          </form>
          <form
            method="post"
            action={`${action}/discard`}
            class="inline"
            data-confirm={t("confirm_discard_all")}
          >
            <Csrf v={v} />
            <input type="hidden" name="all" value="1" />
            <button type="submit" class="danger" disabled={off || d.total === 0}>{t("discard_all")}</button>
          </form>
        </div>
        {d.letters.length === 0 ? <p class="muted">{t("none")}</p> : (
          <table>
            <thead>
              <tr>
                <th>{t("failed_at")}</th>
                <th>{t("reason")}</th>
                <th class="num">{t("attempts")}</th>
                <th>{t("job")}</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {d.letters.map((l) => (
                <tr data-dead-id={l.id}>
                  <td>{l.failed_at.replace("T", " ").slice(0, 19)}</td>
                  <td>{l.reason}</td>
                  <td class="num">{l.attempts}</td>
                  <td>
                    <pre class="job">{l.job.length > 600 ? `${l.job.slice(0, 600)}…` : l.job}</pre>
                  </td>
                  <td style="white-space:nowrap">
                    <form method="post" action={`${action}/replay`} class="inline">
                      <Csrf v={v} />
                      <input type="hidden" name="id" value={l.id} />
                      <button type="submit" class="secondary" disabled={off}>{t("replay")}</button>
                    </form>{" "}
                    <form method="post" action={`${action}/discard`} class="inline">
                      <Csrf v={v} />
                      <input type="hidden" name="id" value={l.id} />
                      <button type="submit" class="secondary" disabled={off}>{t("discard")}</button>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <div class="pager">
          <span class="muted">{d.total} · {d.page} / {pages}</span>
          {d.page > 1
            ? <a href={`/console/dead-letters?queue=${d.queue}&page=${d.page - 1}`}>← {t("prev")}</a>
            : null}
          {d.page < pages
            ? <a href={`/console/dead-letters?queue=${d.queue}&page=${d.page + 1}`}>{t("next")} →</a>
            : null}
        </div>
      </div>
    </Layout>
  );
}
