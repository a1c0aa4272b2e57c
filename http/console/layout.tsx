/**
 * @module layout
 * The frame of every console page: the navigation, who is signed in, the language switch, the
 * live-updates mark, the CSRF token for scripts, and the one stylesheet and script.
 */
import type { Child } from "hono/jsx";
import type { Session } from "./console_auth.ts";
import type { Lang, Translate } from "./i18n.ts";

/** What every page knows about the request. */
export interface View {
  t: Translate;
  lang: Lang;
  session: Session;
  /** The path and query of this page (for the language links). */
  here: string;
  operator: boolean;
}

const NAV = [
  ["fleet", "/console"],
  ["alerts", "/console/alerts"],
  ["dead_letters", "/console/dead-letters"],
  ["devices", "/console/devices"],
  ["system", "/console/system"],
] as const;

export function Layout(
  props: { v: View; title: string; page: string; live?: boolean; serial?: string; children?: Child },
) {
  const { v } = props;
  const back = encodeURIComponent(v.here);
  return (
    <html lang={v.lang}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content={v.session.csrf} />
        <title>{props.title} · {v.t("title")}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body data-page={props.page} data-live={props.live ? "1" : undefined} data-serial={props.serial}>
        <header class="top">
          <span class="brand">{v.t("title")}</span>
          <nav>
            {NAV.map(([key, href]) => (
              <a href={href} class={props.page === key ? "on" : undefined}>{v.t(key)}</a>
            ))}
          </nav>
          <div class="right">
            {props.live
              ? (
                <span id="live" class="live">
                  <span class="dot"></span>
                  <span>{v.t("live")}</span>
                </span>
              )
              : null}
            <span>{v.operator ? v.t("operator_badge") : v.t("viewer_badge")}</span>
            <span>
              <a href={`/console/lang/en?back=${back}`} lang="en">EN</a> ·{" "}
              <a href={`/console/lang/zh-TW?back=${back}`} lang="zh-TW">繁中</a>
            </span>
            <form method="post" action="/console/sign-out">
              <input type="hidden" name="_csrf" value={v.session.csrf} />
              <button type="submit">{v.t("sign_out")}</button>
            </form>
          </div>
        </header>
        <main>
          {v.operator ? null : <div class="note">{v.t("read_only")}</div>}
          {props.children}
        </main>
        <script src="/console/assets/console.js" defer></script>
      </body>
    </html>
  );
}

/** The CSRF field every console form carries. */
export function Csrf(props: { v: View }) {
  return <input type="hidden" name="_csrf" value={props.v.session.csrf} />;
}

/** A relative time the script keeps current (rendered as an absolute UTC time without it). */
export function Ago(props: { at: Date | null; t: Translate; f?: string }) {
  const iso = props.at?.toISOString() ?? "";
  return (
    <span data-at={iso} data-f={props.f}>
      {props.at ? iso.replace("T", " ").slice(0, 19) : props.t("never")}
    </span>
  );
}
