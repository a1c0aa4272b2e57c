/**
 * @module console_routes
 * The operator console, served by the gateway's own Hono app under `/console` (and `/` redirects
 * there): server-rendered pages, one small script and stylesheet compiled into the program, and a
 * Server-Sent Events stream of the in-process event hub. Its auth is its own (see
 * `console_auth.ts`): a signed cookie, CSRF token plus same-origin check on every POST, and
 * viewers (VIEWER_TOKEN) refused on every POST but sign-out. Wrong tokens at sign-in are limited per
 * client address (`sign_in_limit.ts`).
 */
import { getLogger } from "@logtape/logtape";
import { Hono } from "hono";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { MachineCredentials } from "../../auth/machine_credentials.ts";
import { COMMAND_NAME, SERIAL_NO } from "../../contract/identity.ts";
import { MAX_SLOTS_PER_WRITE, slotStockList } from "../../contract/slot_stock.ts";
import { FLEET_FILTERS, FLEET_SORTS, type FleetFilter, type FleetSort } from "../../db/fleet_views.ts";
import type { Store } from "../../db/store.ts";
import type { DeviceService } from "../../devices/device_service.ts";
import type { CommandIntake } from "../../downlink/command_intake.ts";
import type { EventHub } from "../../lib/event_hub.ts";
import { LogThrottle } from "../../lib/log_throttle.ts";
import type { Metrics } from "../../lib/metrics.ts";
import type { PresenceTracker } from "../../lib/presence.ts";
import type { ReliableQueue } from "../../queue/reliable_queue.ts";
import { clientAddress } from "../client_address.ts";
import { streamHub } from "../hub_stream.ts";
import { AlertsList, AlertsPage } from "./alerts_page.tsx";
import { CONSOLE_CSS } from "./assets/console_css.ts";
import { CONSOLE_JS } from "./assets/console_js.ts";
import { ConsoleAuth, type Session, SESSION_COOKIE } from "./console_auth.ts";
import { DEAD_QUEUES, DeadLettersPage, type DeadQueue } from "./dead_letters_page.tsx";
import { DevicesPage } from "./devices_page.tsx";
import { FleetPage, type FleetPageData, type FleetParams, FleetTable } from "./fleet_page.tsx";
import { type Lang, LANGS, pickLang, translator } from "./i18n.ts";
import type { View } from "./layout.tsx";
import { MachineLive, MachinePage, type MachinePageData, TokenPage } from "./machine_page.tsx";
import { RateSampler } from "./rate_sampler.ts";
import { SignInLimit } from "./sign_in_limit.ts";
import { SignInPage } from "./sign_in_page.tsx";
import { slotRanges } from "./slot_ranges.ts";
import { type SystemData, SystemLive, SystemPage } from "./system_page.tsx";

export interface ConsoleDeps {
  apiToken: string;
  viewerToken?: string;
  store: Store;
  hub: EventHub;
  presence?: PresenceTracker;
  intake?: Pick<CommandIntake, "accept">;
  credentials?: Pick<MachineCredentials, "issue" | "revoke">;
  deadLetters: Partial<Record<DeadQueue, ReliableQueue>>;
  devices?: DeviceService;
  status: () => Promise<Record<string, unknown>>;
  /** The uplink's received-messages total (for the messages-per-second chart). */
  receivedTotal: () => Promise<number>;
  onlineWindowSeconds: number;
  lowStock: number;
  commandTtlSeconds: number;
  /** Open event streams at most (default 64); more get 503. */
  maxStreams?: number;
  /** Wrong tokens per client address at sign-in (default: 5, then one every 10 s). */
  signInLimit?: SignInLimit;
  metrics?: Pick<Metrics, "consoleSignIns">;
  now?: () => Date;
}

export interface ConsoleApp {
  app: Hono;
  /** Open event streams now. */
  readonly streams: number;
  /** Ends every event stream (before the HTTP server drains) and stops the sampler. Idempotent. */
  close(): void;
}

type Env = { Variables: { session: Session; view: View } };

const log = getLogger(["gateway", "console"]);
const PAGE_SIZE = 50;
const LANG_COOKIE = "console_lang";
const ASSET_ETAG = `"${hash(CONSOLE_JS + CONSOLE_CSS)}"`;

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}

/** The request's own origin as the browser sees it (behind a proxy: X-Forwarded-Proto and Host). */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true; // SameSite=Strict and the CSRF token still hold
  const host = c.req.header("x-forwarded-host") ?? c.req.header("host") ?? new URL(c.req.url).host;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

const wantsJson = (c: Context) => (c.req.header("accept") ?? "").includes("application/json");

export function consoleRoutes(deps: ConsoleDeps): ConsoleApp {
  const auth = new ConsoleAuth({ apiToken: deps.apiToken, viewerToken: deps.viewerToken });
  const now = deps.now ?? (() => new Date());
  const sampler = new RateSampler(deps.receivedTotal);
  const maxStreams = deps.maxStreams ?? 64;
  const stop = new AbortController();
  const streams = { open: 0 };
  const signInLimit = deps.signInLimit ?? new SignInLimit();
  const lockouts = new LogThrottle(10_000);
  const app = new Hono<Env>();

  const langOf = (c: Context): Lang => pickLang(getCookie(c, LANG_COOKIE), c.req.header("accept-language"));
  const secure = (c: Context) =>
    new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";

  app.get("/", (c) => c.redirect("/console", 302));
  app.get("/console/assets/:file", (c) => {
    const file = c.req.param("file");
    const body = file === "console.js" ? CONSOLE_JS : file === "console.css" ? CONSOLE_CSS : null;
    if (body === null) return c.text("Not found", 404);
    if (c.req.header("if-none-match") === ASSET_ETAG) return c.body(null, 304);
    c.header("ETag", ASSET_ETAG);
    c.header("Cache-Control", "no-cache");
    c.header(
      "Content-Type",
      file.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
    );
    return c.body(body);
  });
  app.get("/console/lang/:lang", (c) => {
    const lang = c.req.param("lang");
    if ((LANGS as readonly string[]).includes(lang)) {
      setCookie(c, LANG_COOKIE, lang, { path: "/console", sameSite: "Lax", maxAge: 365 * 86400 });
    }
    const back = c.req.query("back") ?? "/console";
    return c.redirect(back.startsWith("/console") ? back : "/console", 303);
  });
  app.get("/console/sign-in", (c) => {
    const lang = langOf(c);
    return c.html(<SignInPage t={translator(lang)} lang={lang} next={c.req.query("next")} />);
  });
  app.post("/console/sign-in", async (c) => {
    if (!sameOrigin(c)) return c.text("Cross-origin sign-in refused", 403);
    const form = await c.req.parseBody();
    const lang = langOf(c);
    const next = typeof form.next === "string" && form.next.startsWith("/console") ? form.next : "/console";
    const address = clientAddress(c);
    // Asked before the token is looked at: while limited, a right token gets the same answer.
    const wait = signInLimit.retryAfter(address);
    if (wait > 0) {
      deps.metrics?.consoleSignIns.inc({ result: "limited" });
      c.header("Retry-After", String(wait));
      return c.html(<SignInPage t={translator(lang)} lang={lang} retryAfter={wait} next={next} />, 429);
    }
    const role = auth.roleOf(typeof form.token === "string" ? form.token : "");
    if (!role) {
      deps.metrics?.consoleSignIns.inc({ result: "wrong" });
      if (signInLimit.failed(address)) {
        const skipped = lockouts.take();
        if (skipped !== null) {
          log.warn(
            "Console sign-in locked for {address} for {seconds} s after repeated wrong tokens " +
              "({skipped} more lockouts since the last line)",
            { address: address ?? "unknown", seconds: signInLimit.retryAfter(address), skipped },
          );
        }
      }
      return c.html(<SignInPage t={translator(lang)} lang={lang} error next={next} />, 401);
    }
    deps.metrics?.consoleSignIns.inc({ result: "ok" });
    setCookie(c, SESSION_COOKIE, auth.issue(role), {
      path: "/console",
      httpOnly: true,
      sameSite: "Strict",
      secure: secure(c),
      maxAge: Math.floor(auth.ttlMs / 1000),
    });
    return c.redirect(next, 303);
  });

  // Everything below needs a session; POSTs need the CSRF token, the same origin, and an operator.
  app.use("/console/*", async (c, next) => {
    const session = auth.verify(getCookie(c, SESSION_COOKIE));
    if (!session) {
      if (c.req.method === "GET" && !c.req.query("fragment") && !c.req.path.startsWith("/console/events")) {
        const here = c.req.path + (new URL(c.req.url).search);
        return c.redirect(`/console/sign-in?next=${encodeURIComponent(here)}`, 303);
      }
      return c.json({ message: "Sign in first" }, 401);
    }
    if (c.req.method === "POST") {
      const form = (c.req.header("content-type") ?? "").includes("form") ? await c.req.parseBody() : {};
      const token = c.req.header("x-csrf-token") ?? (typeof form._csrf === "string" ? form._csrf : "");
      if (!sameOrigin(c) || token !== session.csrf) {
        return c.json({ message: "Missing or wrong CSRF token, or another origin" }, 403);
      }
      if (session.role !== "operator" && c.req.path !== "/console/sign-out") {
        return c.json({ message: translator(langOf(c))("forbidden") }, 403);
      }
    }
    const lang = langOf(c);
    const url = new URL(c.req.url);
    url.searchParams.delete("fragment");
    c.set("session", session);
    c.set("view", {
      t: translator(lang),
      lang,
      session,
      here: url.pathname + url.search,
      operator: session.role === "operator",
    });
    c.header("Cache-Control", "no-store");
    await next();
  });

  app.post("/console/sign-out", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/console" });
    return c.redirect("/console/sign-in", 303);
  });

  app.get("/console", async (c) => {
    const v = c.get("view");
    const q = c.req.query();
    const sort = (FLEET_SORTS as readonly string[]).includes(q.sort ?? "") ? q.sort as FleetSort : "serial";
    const params: FleetParams = {
      q: (q.q ?? "").trim().slice(0, 64),
      filter: (FLEET_FILTERS as readonly string[]).includes(q.filter ?? "")
        ? q.filter as FleetFilter
        : undefined,
      sort,
      desc: q.dir === "desc",
      page: Math.max(1, Math.min(100_000, Number.parseInt(q.page ?? "1", 10) || 1)),
      pageSize: PAGE_SIZE,
    };
    const at = now();
    const { items, total } = await deps.store.views.fleet({
      search: params.q || undefined,
      filter: params.filter,
      sort: params.sort,
      desc: params.desc,
      limit: PAGE_SIZE,
      offset: (params.page - 1) * PAGE_SIZE,
      onlineSince: new Date(at.getTime() - deps.onlineWindowSeconds * 1000),
      dayStart: new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate())),
      alertSince: new Date(at.getTime() - 24 * 3600_000),
      lowStock: deps.lowStock,
    });
    const d: FleetPageData = {
      params,
      total,
      lowStock: deps.lowStock,
      rows: items.map((m) => ({ ...m, online: online(m.serialNo, m.lastHeardAt) })),
    };
    if (q.fragment === "fleet-table") return c.html(<FleetTable v={v} d={d} />);
    return c.html(<FleetPage v={v} d={d} />);
  });

  const online = (serial: string, lastHeardAt: Date | null) =>
    deps.presence
      ? deps.presence.isOnline(serial, lastHeardAt)
      : lastHeardAt !== null && now().getTime() - lastHeardAt.getTime() <= deps.onlineWindowSeconds * 1000;

  const serialOf = (c: Context) => {
    const serial = c.req.param("serial") ?? "";
    return SERIAL_NO.test(serial) ? serial : null;
  };

  app.get("/console/machines/:serial", async (c) => {
    const v = c.get("view");
    const serial = serialOf(c);
    const machine = serial ? await deps.store.getMachine(serial) : null;
    if (!serial || !machine) {
      return c.html(<FleetPageMissing v={v} />, 404);
    }
    const [sales, logs, commands] = await Promise.all([
      deps.store.views.sales(serial, 10),
      deps.store.views.logs(serial, 20),
      deps.store.listCommands(serial, 20),
    ]);
    const d: MachinePageData = {
      machine,
      online: online(serial, machine.lastHeardAt),
      presence: deps.presence?.get(serial),
      sales,
      logs,
      commands,
      lowStock: deps.lowStock,
      defaultTtlSeconds: deps.commandTtlSeconds,
    };
    if (c.req.query("fragment") === "machine-live") return c.html(<MachineLive v={v} d={d} />);
    return c.html(<MachinePage v={v} d={d} />);
  });

  /** Queues a command; JSON for the page's script, a redirect back without it. */
  const sendCommand = async (
    c: Context<Env>,
    serial: string,
    command: string,
    payload: Record<string, unknown>,
    ttlSeconds?: number,
  ) => {
    const v = c.get("view");
    const back = `/console/machines/${encodeURIComponent(serial)}`;
    if (!deps.intake) return c.json({ message: "Commands need the api role with a queue" }, 503);
    try {
      const { command: record } = await deps.intake.accept({
        serialNo: serial,
        command,
        payload,
        ttlSeconds,
      });
      if (!wantsJson(c)) return c.redirect(back, 303);
      return c.json(
        { message: v.t("queued_ok", { id: record.messageId }), message_id: record.messageId },
        202,
      );
    } catch (error) {
      const status = (error as { name?: string }).name === "NotFoundError" ? 404 : 503;
      return c.json({ message: (error as Error).message }, status);
    }
  };

  app.post("/console/machines/:serial/dispense", async (c) => {
    const serial = serialOf(c);
    const form = await c.req.parseBody();
    const slot = Number(form.slot_no);
    if (!serial || !Number.isInteger(slot) || slot < 0 || slot > 10_000) {
      return c.json({ message: "slot_no must be a whole number" }, 422);
    }
    const transactionId = `RD${now().getTime()}${Math.random().toString(36).slice(2, 8)}`;
    return await sendCommand(c, serial, "dispense", { slot_no: slot, transaction_id: transactionId });
  });

  /** Sets the stock of the slots named (`1-8`, `1,3,5`) to one number: a restock or a count. */
  app.post("/console/machines/:serial/slots", async (c) => {
    const v = c.get("view");
    const serial = serialOf(c);
    const form = await c.req.parseBody();
    const slots = slotRanges.parse(typeof form.slots === "string" ? form.slots : "", MAX_SLOTS_PER_WRITE);
    const stockText = typeof form.stock === "string" ? form.stock.trim() : "";
    const parsed = slots && /^\d{1,10}$/.test(stockText)
      ? slotStockList().safeParse(slots.map((n) => ({ slot_no: n, stock: Number(stockText) })))
      : undefined;
    if (!serial || !parsed?.success) return c.json({ message: v.t("bad_slots") }, 422);
    const after = await deps.store.setSlotStock(
      serial,
      parsed.data.map((s) => ({ slotNo: s.slot_no, stock: s.stock })),
    );
    if (!after) return c.json({ message: v.t("not_found") }, 404);
    if (!wantsJson(c)) return c.redirect(`/console/machines/${encodeURIComponent(serial)}`, 303);
    return c.json({
      message: v.t("stock_set_ok", { n: parsed.data.length }),
      slots: after.map((s) => ({ slot_no: s.slotNo, stock: s.stock })),
    });
  });

  app.post("/console/machines/:serial/commands", async (c) => {
    const v = c.get("view");
    const serial = serialOf(c);
    const form = await c.req.parseBody();
    const command = typeof form.command === "string" ? form.command.trim() : "";
    if (!serial || !COMMAND_NAME.test(command)) {
      return c.json({ message: "command must be 1-64 of A-Z a-z 0-9 _ . : -" }, 422);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(typeof form.payload === "string" && form.payload.trim() ? form.payload : "{}");
    } catch {
      payload = null;
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      return c.json({ message: v.t("bad_json") }, 422);
    }
    const ttl = Number(form.ttl_seconds);
    const ttlSeconds = Number.isInteger(ttl) && ttl >= 1 && ttl <= 30 * 86400 ? ttl : undefined;
    return await sendCommand(c, serial, command, payload as Record<string, unknown>, ttlSeconds);
  });

  app.post("/console/machines/:serial/token", async (c) => {
    const serial = serialOf(c);
    if (!serial || !deps.credentials) return c.json({ message: "No such machine or no credentials" }, 404);
    const issued = await deps.credentials.issue(serial);
    return c.html(<TokenPage v={c.get("view")} serial={serial} token={issued.token} />, 201);
  });

  app.post("/console/machines/:serial/token/revoke", async (c) => {
    const serial = serialOf(c);
    if (!serial || !deps.credentials) return c.json({ message: "No such machine or no credentials" }, 404);
    await deps.credentials.revoke(serial);
    return c.html(<TokenPage v={c.get("view")} serial={serial} />);
  });

  app.get("/console/alerts", async (c) => {
    const v = c.get("view");
    const logs = await deps.store.views.logs(null, 100);
    if (c.req.query("fragment") === "alerts-list") {
      return c.html(<AlertsList v={v} logs={logs} id="alerts-list" />);
    }
    return c.html(<AlertsPage v={v} logs={logs} />);
  });

  app.get("/console/dead-letters", async (c) => {
    const v = c.get("view");
    const queue: DeadQueue = c.req.query("queue") === "outgoing" ? "outgoing" : "incoming";
    const page = Math.max(1, Number.parseInt(c.req.query("page") ?? "1", 10) || 1);
    const counts = { incoming: null, outgoing: null } as Record<DeadQueue, number | null>;
    await Promise.all(DEAD_QUEUES.map(async (name) => {
      counts[name] = await deps.deadLetters[name]?.depth().then((d) => d.dead, () => null) ?? null;
    }));
    const q = deps.deadLetters[queue];
    const letters = q ? await q.deadLetters(PAGE_SIZE, (page - 1) * PAGE_SIZE) : [];
    const flash = c.req.query("done");
    return c.html(
      <DeadLettersPage
        v={v}
        d={{ queue, letters, total: counts[queue] ?? 0, page, pageSize: PAGE_SIZE, counts, flash }}
      />,
    );
  });

  app.post("/console/dead-letters/:queue/:action{replay|discard}", async (c) => {
    const v = c.get("view");
    const name = c.req.param("queue");
    const action = c.req.param("action");
    const q = (DEAD_QUEUES as readonly string[]).includes(name)
      ? deps.deadLetters[name as DeadQueue]
      : undefined;
    if (!q) return c.json({ message: `No queue ${name}` }, 404);
    const form = await c.req.parseBody({ all: true });
    const ids = form.all === "1" ? undefined : [form.id ?? []].flat().filter((x) => typeof x === "string");
    const n = action === "replay" ? await q.replayDeadLetters(ids) : await q.discardDeadLetters(ids);
    const done = v.t(action === "replay" ? "replayed_n" : "discarded_n", { n });
    if (wantsJson(c)) return c.json({ message: done, count: n });
    return c.redirect(`/console/dead-letters?queue=${name}&done=${encodeURIComponent(done)}`, 303);
  });

  app.get("/console/devices", (c) => {
    const flash = c.req.query("done");
    return c.html(<DevicesPage v={c.get("view")} proxies={deps.devices?.proxies() ?? null} flash={flash} />);
  });

  app.post("/console/devices/:proxyid/start", async (c) => {
    if (!deps.devices) return c.json({ message: "The device service is off" }, 404);
    const proxyid = Number(c.req.param("proxyid"));
    try {
      const result = await deps.devices.startController(proxyid);
      const done = `Proxy ${proxyid}: ${result.event.status}`;
      if (wantsJson(c)) return c.json({ message: done, event: result.event });
      return c.redirect(`/console/devices?done=${encodeURIComponent(done)}`, 303);
    } catch (error) {
      const status = (error as { name?: string }).name === "NotFoundError" ? 404 : 503;
      return c.json({ message: (error as Error).message }, status);
    }
  });

  app.get("/console/system", async (c) => {
    const v = c.get("view");
    const at = now();
    const since = new Date(Math.floor(at.getTime() / 3_600_000) * 3_600_000 - 23 * 3_600_000);
    const [status, hours] = await Promise.all([deps.status(), deps.store.views.salesPerHour(since)]);
    const byHour = new Map(hours.map((h) => [h.hour.getTime(), h.count]));
    const salesPerHour = Array.from({ length: 24 }, (_, i) => {
      const hour = new Date(since.getTime() + i * 3_600_000);
      return { hour, count: byHour.get(hour.getTime()) ?? 0 };
    });
    const memory = Deno.memoryUsage();
    const d: SystemData = {
      status,
      memory,
      salesPerHour,
      rates: sampler.rates(),
      uptimeS: Math.round(performance.now() / 1000),
      presenceTracked: deps.presence?.size ?? 0,
      streams: streams.open,
    };
    if (c.req.query("fragment") === "system-live") return c.html(<SystemLive v={v} d={d} />);
    return c.html(<SystemPage v={v} d={d} />);
  });

  app.get("/console/events", (c) => {
    if (streams.open >= maxStreams || stop.signal.aborted) {
      c.header("Retry-After", "5");
      return c.json({ message: "Too many live streams" }, 503);
    }
    return streamHub(c, deps.hub, stop.signal, streams);
  });

  return {
    app: app as unknown as Hono,
    get streams() {
      return streams.open;
    },
    close() {
      stop.abort();
      sampler.close();
    },
  };
}

function FleetPageMissing(props: { v: View }) {
  return (
    <html lang={props.v.lang}>
      <head>
        <meta charset="utf-8" />
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body>
        <main>
          <p id="not-found">{props.v.t("not_found")}</p>
          <a href="/console">← {props.v.t("fleet")}</a>
        </main>
      </body>
    </html>
  );
}
