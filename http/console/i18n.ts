/**
 * @module i18n
 * The console's two languages: English and 繁體中文 (the seeds' language). The browser's
 * `Accept-Language` picks one (any `zh` → 繁體中文); the language links set the `console_lang` cookie,
 * which then wins. A key missing in one language falls back to English.
 */

export const LANGS = ["en", "zh-TW"] as const;
export type Lang = (typeof LANGS)[number];

const M = {
  title: ["Star Cloud console", "Star Cloud 控制台"],
  fleet: ["Fleet", "機台總覽"],
  alerts: ["Alerts", "警報"],
  dead_letters: ["Dead letters", "無法處理的訊息"],
  devices: ["Device service", "裝置服務"],
  system: ["System", "系統"],
  sign_in: ["Sign in", "登入"],
  sign_out: ["Sign out", "登出"],
  token: ["Token", "權杖"],
  token_hint: [
    "The gateway's API_TOKEN (operator) or VIEWER_TOKEN (read only).",
    "閘道的 API_TOKEN（操作員）或 VIEWER_TOKEN（唯讀）。",
  ],
  wrong_token: ["Wrong token.", "權杖錯誤。"],
  too_many_attempts: [
    "Too many wrong tokens from your address: try again in {s} s.",
    "來自您位址的錯誤權杖次數過多，請於 {s} 秒後再試。",
  ],
  viewer_badge: ["viewer (read only)", "檢視者（唯讀）"],
  operator_badge: ["operator", "操作員"],
  read_only: ["Read only: sign in with the API token to act.", "唯讀：請以 API 權杖登入後操作。"],
  search: ["Search serial or name", "搜尋序號或名稱"],
  all: ["All", "全部"],
  online: ["online", "上線"],
  offline: ["offline", "離線"],
  alerting: ["alerting", "有警報"],
  low_stock: ["low stock", "庫存不足"],
  serial: ["Serial", "序號"],
  name: ["Name", "名稱"],
  status: ["Status", "狀態"],
  last_heard: ["Last heard", "最後回報"],
  temperature: ["Temp.", "溫度"],
  page: ["Page", "頁面"],
  sales_today: ["Sales today", "今日銷售"],
  open_alerts: ["Alerts 24 h", "24 小時警報"],
  low_slots: ["Low slots", "低庫存貨道"],
  never: ["never", "從未"],
  machines_n: ["machines", "台機台"],
  prev: ["Previous", "上一頁"],
  next: ["Next", "下一頁"],
  apply: ["Apply", "套用"],
  slots: ["Slots", "貨道"],
  slot: ["Slot", "貨道"],
  stock: ["Stock", "庫存"],
  recent_sales: ["Recent sales", "最近銷售"],
  error_log: ["Error log", "錯誤紀錄"],
  commands: ["Command history", "指令紀錄"],
  set_stock: ["Set stock", "設定庫存"],
  set_stock_hint: [
    "Absolute stock for the slots named (e.g. 1-8 or 1,3,5; at most 100); sales count down from it.",
    "為指定貨道設定庫存（例如 1-8 或 1,3,5；最多 100 個），之後的銷售由此扣減。",
  ],
  set: ["Set", "設定"],
  stock_set_ok: ["Stock set: {n} slots.", "已設定 {n} 個貨道的庫存。"],
  bad_slots: [
    "Slots: numbers or ranges such as 1-8 or 1,3,5 (at most 100, each once); stock: a whole number from 0.",
    "貨道：數字或範圍，例如 1-8 或 1,3,5（最多 100 個，不可重複）；庫存：0 以上的整數。",
  ],
  remote_dispense: ["Remote dispense", "遠端出貨"],
  dispense: ["Dispense", "出貨"],
  confirm_dispense: ["Dispense from slot {slot} of {serial}?", "確定從 {serial} 的第 {slot} 貨道出貨？"],
  other_command: ["Any command", "其他指令"],
  command: ["Command", "指令"],
  payload_json: ["Payload (JSON)", "內容（JSON）"],
  ttl_seconds: ["TTL (s)", "有效秒數"],
  send: ["Send", "送出"],
  machine_token: ["MQTT token", "MQTT 權杖"],
  issue_token: ["Issue / rotate token", "發行／更換權杖"],
  revoke_token: ["Revoke token", "撤銷權杖"],
  confirm_revoke: [
    "Revoke this machine's token? It can no longer connect.",
    "撤銷此機台的權杖？之後將無法連線。",
  ],
  confirm_rotate: ["Issue a new token? The old one stops working at once.", "發行新權杖？舊權杖會立即失效。"],
  token_once: ["The new token, shown only now:", "新權杖（僅顯示這一次）："],
  token_revoked: ["Token revoked.", "權杖已撤銷。"],
  back: ["Back", "返回"],
  time: ["Time", "時間"],
  code: ["Code", "代碼"],
  level: ["Level", "等級"],
  message: ["Message", "訊息"],
  quantity: ["Qty", "數量"],
  amount: ["Amount", "金額"],
  transaction: ["Transaction", "交易"],
  created: ["Created", "建立"],
  sent: ["Sent", "送出"],
  acked: ["Acked", "回覆"],
  detail: ["Detail", "詳細"],
  none: ["None.", "沒有資料。"],
  not_found: ["No such machine.", "找不到此機台。"],
  queue: ["Queue", "佇列"],
  incoming: ["incoming (uplink jobs)", "上行（工作）"],
  outgoing: ["outgoing (commands)", "下行（指令）"],
  reason: ["Reason", "原因"],
  attempts: ["Attempts", "嘗試次數"],
  failed_at: ["Failed at", "失敗時間"],
  job: ["Job", "內容"],
  replay: ["Replay", "重新處理"],
  discard: ["Discard", "丟棄"],
  replay_all: ["Replay all", "全部重新處理"],
  discard_all: ["Discard all", "全部丟棄"],
  confirm_discard_all: ["Discard every dead letter of this queue?", "丟棄此佇列所有無法處理的訊息？"],
  replayed_n: ["Replayed {n}.", "已重新處理 {n} 筆。"],
  discarded_n: ["Discarded {n}.", "已丟棄 {n} 筆。"],
  proxy: ["Proxy", "代理"],
  response_time: ["Response time", "回應時間"],
  history: ["History", "歷史"],
  checked_at: ["Checked", "檢查時間"],
  failures: ["Failures in a row", "連續失敗"],
  controller_start: ["Start controller", "啟動控制器"],
  no_devices: [
    "The device service is off (set DEVICE_PROXIES or DEVICE_PROXIES_FILE, role devices).",
    "裝置服務未啟用（請設定 DEVICE_PROXIES 或 DEVICE_PROXIES_FILE 與 devices 角色）。",
  ],
  broker: ["Broker", "訊息代理"],
  connected: ["connected", "已連線"],
  disconnected: ["disconnected", "未連線"],
  queues: ["Queues", "佇列"],
  ready: ["ready", "等待"],
  processing: ["processing", "處理中"],
  delayed: ["delayed", "延後"],
  dead: ["dead", "失敗"],
  roles: ["Roles", "角色"],
  memory: ["Memory", "記憶體"],
  sales_per_hour: ["Sales per hour (24 h)", "每小時銷售（24 小時）"],
  msgs_per_s: ["Messages per second (10 min)", "每秒訊息數（10 分鐘）"],
  counters: ["Counters", "計數"],
  live: ["live", "即時"],
  reconnecting: ["reconnecting…", "重新連線中…"],
  forbidden: ["Viewers cannot change anything.", "檢視者不能變更任何設定。"],
  bad_json: ["The payload is not a JSON object.", "內容不是 JSON 物件。"],
  language: ["Language", "語言"],
  presence: ["Presence", "連線狀態"],
  connected_at: ["Connected", "連線時間"],
  disconnected_at: ["Disconnected", "斷線時間"],
  queued_ok: ["Queued: {id}", "已排入：{id}"],
  uptime: ["Uptime", "運行時間"],
  worker: ["Worker / downlink", "工作程序／下行"],
  live_events: ["Live events", "即時事件"],
  events_fleet: ["whole fleet over Redis, {n} process(es) heard", "經 Redis 涵蓋全部機群，已收到 {n} 個程序"],
  events_local: ["this process only", "僅此程序"],
} as const satisfies Record<string, readonly [string, string]>;

export type MessageKey = keyof typeof M;
export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function translator(lang: Lang): Translate {
  const i = lang === "zh-TW" ? 1 : 0;
  return (key, vars) => {
    let text: string = M[key][i] ?? M[key][0];
    if (vars) { for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v)); }
    return text;
  };
}

/** The cookie's choice, else the first language of `Accept-Language` we have. */
export function pickLang(cookie: string | undefined, acceptLanguage: string | undefined): Lang {
  if (cookie === "en" || cookie === "zh-TW") return cookie;
  const wanted = (acceptLanguage ?? "").split(",").map((part) => {
    const [tag = "", q] = part.trim().split(";q=");
    return { tag: tag.toLowerCase(), q: q === undefined ? 1 : Number(q) };
  }).filter((w) => w.tag && w.q > 0).sort((a, b) => b.q - a.q);
  for (const { tag } of wanted) {
    if (tag.startsWith("zh")) return "zh-TW";
    if (tag.startsWith("en")) return "en";
  }
  return "en";
}

/** Every message in both languages (for the test that none is missing). */
export const MESSAGES: Readonly<Record<string, readonly [string, string]>> = M;
