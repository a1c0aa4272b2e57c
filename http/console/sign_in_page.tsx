/**
 * @module sign_in_page
 * The sign-in form: one field, the API token or the viewer token; the wrong-token and
 * too-many-attempts messages.
 */
import type { Lang, Translate } from "./i18n.ts";

export function SignInPage(
  props: { t: Translate; lang: Lang; error?: boolean; next?: string; retryAfter?: number },
) {
  const { t } = props;
  return (
    <html lang={props.lang}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{t("sign_in")} · {t("title")}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body data-page="sign-in">
        <div class="card signin">
          <h1>{t("title")}</h1>
          <form method="post" action="/console/sign-in">
            <input type="hidden" name="next" value={props.next ?? "/console"} />
            <label for="token">{t("token")}</label>
            <input
              id="token"
              name="token"
              type="password"
              autocomplete="current-password"
              required
              autofocus
            />
            <p class="muted">{t("token_hint")}</p>
            {props.error ? <p class="bad" role="alert">{t("wrong_token")}</p> : null}
            {props.retryAfter
              ? (
                <p class="bad" role="alert" id="too-many">
                  {t("too_many_attempts", { s: props.retryAfter })}
                </p>
              )
              : null}
            <button type="submit">{t("sign_in")}</button>
          </form>
          <p class="muted">
            <a href="/console/lang/en?back=/console/sign-in">EN</a> ·{" "}
            <a href="/console/lang/zh-TW?back=/console/sign-in">繁中</a>
          </p>
        </div>
      </body>
    </html>
  );
}
