/**
 * @module fleet_views
 * The operator console's reads of the fleet, as plain SQL that MySQL/MariaDB and SQLite both run
 * the same way: a page of machines with today's sales, recent alerts and low-stock slots (searched,
 * filtered and sorted in the database, so 10,000 machines page as fast as 10), a machine's recent
 * sales, the error feed, sales per hour, and when machines were last heard. Each store hands it a
 * runner and its way of binding a time (MySQL: a `Date` for `DATETIME(3)`; SQLite: epoch
 * milliseconds); only the hour bucket differs.
 */

/** Runs one statement with `?` placeholders and returns its rows. */
export type SqlRunner = (text: string, params: unknown[]) => Promise<Record<string, unknown>[]>;

export const FLEET_FILTERS = ["online", "offline", "alerting", "low_stock"] as const;
export type FleetFilter = (typeof FLEET_FILTERS)[number];
export const FLEET_SORTS = ["serial", "last_heard", "temperature", "sales", "alerts", "low_stock"] as const;
export type FleetSort = (typeof FLEET_SORTS)[number];

export interface FleetQuery {
  /** Part of the serial number or name (case-insensitive). */
  search?: string;
  filter?: FleetFilter;
  sort: FleetSort;
  desc: boolean;
  limit: number;
  offset: number;
  /** Heard since then: online (by heartbeat age). */
  onlineSince: Date;
  /** Sales since then count as today's. */
  dayStart: Date;
  /** Errors since then are open alerts. */
  alertSince: Date;
  /** A slot with stock at or below this is low. */
  lowStock: number;
}

export interface FleetRow {
  serialNo: string;
  name: string | null;
  registered: boolean;
  lastHeardAt: Date | null;
  temperature: number | null;
  currentPage: number | null;
  salesCount: number;
  salesAmount: number;
  alerts: number;
  lowSlots: number;
}

export interface SaleRow {
  transactionId: string;
  serialNo: string;
  slotNo: number;
  quantity: number;
  amount: number;
  receivedAt: Date;
}

export interface LogRow {
  id: number;
  serialNo: string;
  code: string;
  level: string;
  message: string;
  receivedAt: Date;
}

const ORDER: Record<FleetSort, string> = {
  serial: "LOWER(SERIAL_TEXT)",
  last_heard: "last_heard_at",
  temperature: "temperature",
  sales: "sales_amount",
  alerts: "alerts",
  low_stock: "low_slots",
};

export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  if (typeof value === "number" || typeof value === "bigint") return new Date(Number(value));
  const text = String(value);
  return new Date(
    /^\d+$/.test(text) ? Number(text) : text.includes("T") ? text : `${text.replace(" ", "T")}Z`,
  );
}

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
const numOrNull = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function toRow(r: Record<string, unknown>): FleetRow {
  return {
    serialNo: String(r.serial_no),
    name: r.name === null || r.name === undefined ? null : String(r.name),
    registered: Boolean(Number(r.registered)),
    lastHeardAt: toDate(r.last_heard_at),
    temperature: numOrNull(r.temperature),
    currentPage: numOrNull(r.current_page),
    salesCount: num(r.sales_count),
    salesAmount: num(r.sales_amount),
    alerts: num(r.alerts),
    lowSlots: num(r.low_slots),
  };
}

export class FleetViews {
  readonly #run: SqlRunner;
  readonly #time: (d: Date) => unknown;
  readonly #hourOf: string;
  /** serial_no as text (MySQL keeps it VARBINARY, where LOWER and LIKE would compare bytes). */
  readonly #serialText: string;

  constructor(dialect: "mysql" | "sqlite", run: SqlRunner) {
    this.#run = run;
    this.#time = dialect === "mysql" ? (d) => d : (d) => d.getTime();
    // Hours since the epoch, without the session's time zone getting in the way.
    this.#serialText = dialect === "mysql" ? "CONVERT(serial_no USING utf8mb4)" : "serial_no";
    this.#hourOf = dialect === "mysql"
      ? "TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', received_at)"
      : "(received_at / 3600000)";
  }

  async fleet(q: FleetQuery): Promise<{ items: FleetRow[]; total: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.search) {
      const like = `%${q.search.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;
      where.push(
        `(LOWER(${this.#serialText}) LIKE ? ESCAPE '!' OR LOWER(COALESCE(name, '')) LIKE ? ESCAPE '!')`,
      );
      params.push(like, like);
    }
    if (q.filter === "online") {
      where.push("last_heard_at >= ?");
      params.push(this.#time(q.onlineSince));
    } else if (q.filter === "offline") {
      where.push("(last_heard_at IS NULL OR last_heard_at < ?)");
      params.push(this.#time(q.onlineSince));
    }
    // Case-insensitive on both (MySQL's collation is, SQLite's BINARY is not), then exact for ties.
    const dir = q.desc ? "DESC" : "ASC";
    const order = `${ORDER[q.sort]} ${dir}, LOWER(SERIAL_TEXT) ${dir}, serial_no ${dir}`.replaceAll(
      "SERIAL_TEXT",
      this.#serialText,
    );
    const byAggregate = q.sort === "sales" || q.sort === "alerts" || q.sort === "low_stock" ||
      q.filter === "alerting" || q.filter === "low_stock";
    if (!byAggregate) {
      // The usual page: the machines first, then the figures of those 50 only (by their indexes).
      const whereSql = where.length ? `WHERE ${where.join(" AND ")}` : "";
      const [rows, counted] = await Promise.all([
        this.#run(
          `SELECT serial_no, name, registered, last_heard_at, temperature, current_page FROM machines
           ${whereSql} ORDER BY ${order} LIMIT ? OFFSET ?`,
          [...params, q.limit, q.offset],
        ),
        this.#run(`SELECT COUNT(*) AS total FROM machines ${whereSql}`, params),
      ]);
      const figures = await this.#figures(rows.map((r) => String(r.serial_no)), q);
      return {
        total: num(counted[0]?.total),
        items: rows.map((r) => toRow({ ...r, ...figures.get(String(r.serial_no)) })),
      };
    }
    // Sorted or filtered by a figure: every machine's figures, then the page.
    const inner = `SELECT m.serial_no, m.name, m.registered, m.last_heard_at, m.temperature, m.current_page,
        COALESCE(s.n, 0) AS sales_count, COALESCE(s.amount, 0) AS sales_amount,
        COALESCE(a.n, 0) AS alerts, COALESCE(l.n, 0) AS low_slots
      FROM machines m
      LEFT JOIN (SELECT serial_no, COUNT(*) AS n, SUM(amount) AS amount FROM transactions
                 WHERE received_at >= ? GROUP BY serial_no) s ON s.serial_no = m.serial_no
      LEFT JOIN (SELECT serial_no, COUNT(*) AS n FROM machine_logs
                 WHERE received_at >= ? GROUP BY serial_no) a ON a.serial_no = m.serial_no
      LEFT JOIN (SELECT serial_no, COUNT(*) AS n FROM machine_slots
                 WHERE stock <= ? GROUP BY serial_no) l ON l.serial_no = m.serial_no`;
    if (q.filter === "alerting") where.push("alerts > 0");
    else if (q.filter === "low_stock") where.push("low_slots > 0");
    const all = [this.#time(q.dayStart), this.#time(q.alertSince), q.lowStock, ...params];
    const body = `FROM (${inner}) f${where.length ? ` WHERE ${where.join(" AND ")}` : ""}`;
    const [rows, counted] = await Promise.all([
      this.#run(`SELECT * ${body} ORDER BY ${order} LIMIT ? OFFSET ?`, [...all, q.limit, q.offset]),
      this.#run(`SELECT COUNT(*) AS total ${body}`, all),
    ]);
    return { total: num(counted[0]?.total), items: rows.map(toRow) };
  }

  /** Today's sales, recent alerts and low slots of these machines. */
  async #figures(serials: string[], q: FleetQuery): Promise<Map<string, Record<string, unknown>>> {
    const out = new Map<string, Record<string, unknown>>();
    if (serials.length === 0) return out;
    const list = serials.map(() => "?").join(", ");
    const [sales, alerts, low] = await Promise.all([
      this.#run(
        `SELECT serial_no, COUNT(*) AS n, SUM(amount) AS amount FROM transactions
         WHERE serial_no IN (${list}) AND received_at >= ? GROUP BY serial_no`,
        [...serials, this.#time(q.dayStart)],
      ),
      this.#run(
        `SELECT serial_no, COUNT(*) AS n FROM machine_logs
         WHERE serial_no IN (${list}) AND received_at >= ? GROUP BY serial_no`,
        [...serials, this.#time(q.alertSince)],
      ),
      this.#run(
        `SELECT serial_no, COUNT(*) AS n FROM machine_slots WHERE serial_no IN (${list}) AND stock <= ?
         GROUP BY serial_no`,
        [...serials, q.lowStock],
      ),
    ]);
    const of = (serial: unknown) => {
      let r = out.get(String(serial));
      if (!r) out.set(String(serial), r = {});
      return r;
    };
    for (const r of sales) Object.assign(of(r.serial_no), { sales_count: r.n, sales_amount: r.amount });
    for (const r of alerts) of(r.serial_no).alerts = r.n;
    for (const r of low) of(r.serial_no).low_slots = r.n;
    return out;
  }

  /**
   * When each of these machines was last heard (`last_heard_at`; machines without a row are left
   * out): what the presence sweep asks before it calls a machine silent (`lib/presence.ts`).
   */
  async lastHeard(serials: readonly string[]): Promise<Map<string, Date | null>> {
    const out = new Map<string, Date | null>();
    for (let i = 0; i < serials.length; i += 500) {
      const chunk = serials.slice(i, i + 500);
      const rows = await this.#run(
        `SELECT serial_no, last_heard_at FROM machines WHERE serial_no IN (${
          chunk.map(() => "?").join(", ")
        })`,
        chunk,
      );
      for (const r of rows) out.set(String(r.serial_no), toDate(r.last_heard_at));
    }
    return out;
  }

  /** A machine's (or, with null, the fleet's) newest sales. */
  async sales(serialNo: string | null, limit: number): Promise<SaleRow[]> {
    const rows = await this.#run(
      `SELECT transaction_id, serial_no, slot_no, quantity, amount, received_at FROM transactions
       ${serialNo === null ? "" : "WHERE serial_no = ?"} ORDER BY received_at DESC, id DESC LIMIT ?`,
      serialNo === null ? [limit] : [serialNo, limit],
    );
    return rows.map((r) => ({
      transactionId: String(r.transaction_id),
      serialNo: String(r.serial_no),
      slotNo: num(r.slot_no),
      quantity: num(r.quantity),
      amount: num(r.amount),
      receivedAt: toDate(r.received_at)!,
    }));
  }

  /** A machine's (or, with null, the fleet's) newest errors: the alerts feed. */
  async logs(serialNo: string | null, limit: number): Promise<LogRow[]> {
    const rows = await this.#run(
      `SELECT id, serial_no, code, level, message, received_at FROM machine_logs
       ${serialNo === null ? "" : "WHERE serial_no = ?"} ORDER BY received_at DESC, id DESC LIMIT ?`,
      serialNo === null ? [limit] : [serialNo, limit],
    );
    return rows.map((r) => ({
      id: num(r.id),
      serialNo: String(r.serial_no),
      code: String(r.code),
      level: String(r.level),
      message: String(r.message),
      receivedAt: toDate(r.received_at)!,
    }));
  }

  /** Sales per hour since `since` (hours without sales are left out), oldest first. */
  async salesPerHour(since: Date): Promise<{ hour: Date; count: number; amount: number }[]> {
    const rows = await this.#run(
      `SELECT ${this.#hourOf} AS h, COUNT(*) AS n, SUM(amount) AS amount FROM transactions
       WHERE received_at >= ? GROUP BY ${this.#hourOf} ORDER BY h`,
      [this.#time(since)],
    );
    return rows.map((r) => ({
      hour: new Date(Math.floor(num(r.h)) * 3_600_000),
      count: num(r.n),
      amount: num(r.amount),
    }));
  }
}
