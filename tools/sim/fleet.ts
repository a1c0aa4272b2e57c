/**
 * @module fleet
 * A fleet of simulated vending machines, each one real MQTT connection (mqtt.js). Machines
 * connect at a bounded rate (a broker or an auth hook flooded with thousands of CONNECTs at once
 * times them out), optionally get their token from the gateway API first, heartbeat, sell, raise
 * errors, and answer every command on `machine/{serial}/command` with a `command/ack`.
 *
 * Two ways to send: {@link Fleet.runSteady} (fixed rates: heartbeat interval per machine,
 * transactions and errors per second fleet-wide) and {@link Fleet.blast} (a fixed number of
 * messages as fast as the broker takes them, with a window of unacknowledged QoS 1 publishes per
 * connection), which the benchmarks use to find throughput limits.
 *
 * Every uplink payload carries `sent_at` (epoch ms, sub-ms precision) so that the benchmarks can
 * measure publish → committed latency from the rows themselves.
 */
import mqtt, { type MqttClient } from "mqtt";
import { sleep } from "../../lib/sleep.ts";

export interface FleetOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  url: string;
  machines: number;
  /** Serials are `${serialPrefix}${n}` with n zero-padded, from `firstIndex`. */
  serialPrefix: string;
  firstIndex?: number;
  /** New connections per second. */
  connectRate: number;
  protocolVersion: 4 | 5;
  /** Pad uplink payloads up to about this many bytes (0: no padding). */
  payloadBytes: number;
  /** Subscribe to `machine/{serial}/command` and answer each command. */
  answerCommands: boolean;
  /** When set, each machine first gets a token here and connects with username=serial, password=token. */
  api?: { url: string; token: string };
  /** Prefix of transaction ids, unique per run so reruns against one database do not collide. */
  runId: string;
  /**
   * Items each of a machine's 8 slots starts with. A machine never sells more than a slot holds: a
   * sale goes to the next slot that has enough, and a machine whose slots are all empty sends a
   * heartbeat instead (counted in `soldOut`). With `api`, each machine also sets its slots to this on
   * the gateway (`PUT /api/v1/machines/{serial}/slots`) before it connects, so the stock the gateway
   * knows is the machine's own and never goes below 0. Unset: unlimited (the benchmarks).
   */
  slotStock?: number;
  keepalive?: number;
  signal: AbortSignal;
}

export interface SteadyRates {
  /** Seconds between two heartbeats of one machine (0: none). */
  heartbeatIntervalS: number;
  /** Transactions per second, fleet-wide (0: none). */
  transactionRate: number;
  /** Error reports per second, fleet-wide (0: none). */
  errorRate: number;
}

export interface BlastOptions {
  /** Messages to publish in total, fleet-wide. */
  messages: number;
  /** Unacknowledged QoS 1 publishes per connection. */
  inflight: number;
  /** Share of transactions among the messages (the rest are heartbeats). */
  transactionShare: number;
  /** Share of transactions sent a second time with the same transaction_id (QoS 1 redelivery). */
  duplicateShare?: number;
}

export type UplinkKind = "heartbeat" | "transaction" | "error";

/** Counters since the fleet started; {@link Fleet.snapshot} copies them. */
export interface FleetStats {
  machines: number;
  connected: number;
  connectFailures: number;
  tokenFailures: number;
  /** Machines whose stock the gateway would not take (`PUT …/slots`); they run all the same. */
  stockFailures: number;
  sent: Record<UplinkKind, number>;
  /** PUBACKs received from the broker (the broker has the message, not the gateway). */
  pubacked: number;
  publishErrors: number;
  commandsReceived: number;
  commandsAnswered: number;
  /** Distinct transaction ids sent and the sum of their quantities (what the database must show). */
  uniqueTransactions: number;
  uniqueQuantity: number;
  duplicatesSent: number;
  /** Sales not made because every slot of the machine was empty (a heartbeat was sent instead). */
  soldOut: number;
}

interface Machine {
  serial: string;
  client?: MqttClient;
  inflight: number;
  txSeq: number;
  /** Items left in slots 1-8 (index 0 = slot 1); unset: unlimited. */
  stock?: number[];
  /** The latest sale, sent again as is by a duplicate (a QoS 1 redelivery). */
  lastSale?: { slot_no: number; quantity: number };
}

export const SLOTS = 8;

const PAD_KEY_OVERHEAD = 10; // `,"pad":""`

/** Epoch milliseconds with sub-millisecond precision, comparable across processes on one host. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Percentile of an unsorted sample (nearest rank); NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export class Fleet {
  readonly options: FleetOptions;
  readonly machines: Machine[];
  readonly stats: FleetStats;
  /** Command receipt latency (ms) for commands whose payload carries `sent_at`. */
  readonly commandLatencies: number[] = [];
  /** Publish → broker PUBACK (ms), sampled. */
  readonly pubackLatencies: number[] = [];
  #pad = "";
  #closed = false;

  constructor(options: FleetOptions) {
    this.options = options;
    const first = options.firstIndex ?? 1;
    const width = String(first + options.machines - 1).length;
    this.machines = Array.from({ length: options.machines }, (_, i) => ({
      serial: `${options.serialPrefix}${String(first + i).padStart(width, "0")}`,
      inflight: 0,
      txSeq: 0,
      stock: options.slotStock === undefined ? undefined : Array(SLOTS).fill(options.slotStock),
    }));
    this.stats = {
      machines: options.machines,
      connected: 0,
      connectFailures: 0,
      tokenFailures: 0,
      stockFailures: 0,
      sent: { heartbeat: 0, transaction: 0, error: 0 },
      pubacked: 0,
      publishErrors: 0,
      commandsReceived: 0,
      commandsAnswered: 0,
      uniqueTransactions: 0,
      uniqueQuantity: 0,
      duplicatesSent: 0,
      soldOut: 0,
    };
    const base = JSON.stringify({ current_page: 1, temperature: 25.5, sent_at: epochMs() }).length;
    const padLength = options.payloadBytes - base - PAD_KEY_OVERHEAD;
    if (padLength > 0) this.#pad = "x".repeat(padLength);
  }

  snapshot(): FleetStats {
    return structuredClone(this.stats);
  }

  /** Connects every machine at `connectRate` per second; resolves once all have tried. */
  async connect(): Promise<void> {
    const { options } = this;
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < this.machines.length; i++) {
      if (options.signal.aborted) break;
      // Pace against the clock, not per connection, so a slow tick is made up for.
      const due = start + (i / options.connectRate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait, options.signal);
      pending.push(this.#connectOne(this.machines[i]!));
      if (pending.length >= 256) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  }

  async #connectOne(m: Machine): Promise<void> {
    const o = this.options;
    let password: string | undefined;
    if (o.api) {
      try {
        password = await this.#fetchToken(m.serial);
      } catch (error) {
        this.stats.tokenFailures++;
        if (this.stats.tokenFailures <= 3) {
          console.error(`Cannot get a token for ${m.serial}: ${(error as Error).message}`);
        }
        return;
      }
      if (o.slotStock !== undefined) {
        try {
          await this.#setStock(m.serial, o.slotStock);
        } catch (error) {
          this.stats.stockFailures++;
          if (this.stats.stockFailures <= 3) {
            console.error(`Cannot set the stock of ${m.serial}: ${(error as Error).message}`);
          }
        }
      }
    }
    const client = mqtt.connect(o.url, {
      // The broker policy (auth/machine_auth.ts) wants the serial, or the serial and a colon, first.
      clientId: `${m.serial}:sim-${o.runId}`,
      username: o.api ? m.serial : undefined,
      password,
      protocolVersion: o.protocolVersion,
      clean: true,
      keepalive: o.keepalive ?? 60,
      reconnectPeriod: 2000,
      connectTimeout: 60_000,
    });
    m.client = client;
    let wasConnected = false;
    client.on("connect", () => {
      if (!wasConnected) this.stats.connected++;
      wasConnected = true;
    });
    client.on("close", () => {
      if (wasConnected) this.stats.connected--;
      wasConnected = false;
    });
    client.on("error", () => {
      this.stats.connectFailures++;
    });
    if (o.answerCommands) {
      client.on("message", (topic, payload) => this.#onCommand(m, topic, payload));
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        client.off("connect", done);
        client.off("error", done);
        resolve();
      };
      client.on("connect", done);
      client.on("error", done);
      o.signal.addEventListener("abort", done, { once: true });
    });
    if (o.answerCommands && client.connected) {
      // mqtt.js resubscribes by itself after a reconnect (resubscribe: true).
      client.subscribe(`machine/${m.serial}/command`, { qos: 1 }, (error) => {
        if (error) this.stats.publishErrors++;
      });
    }
  }

  async #fetchToken(serial: string): Promise<string> {
    const { url, token } = this.options.api!;
    const res = await fetch(`${url.replace(/\/$/, "")}/api/v1/machines/${encodeURIComponent(serial)}/token`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(30_000),
    });
    const body = await res.text();
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`HTTP ${res.status}: ${body.slice(0, 200)}`);
    }
    const parsed = JSON.parse(body) as { api_token?: string; token?: string };
    const value = parsed.api_token ?? parsed.token;
    if (!value) throw new Error(`no api_token in ${body.slice(0, 200)}`);
    return value;
  }

  /** Tells the gateway the machine's slots hold `stock` each (the token made the machine known). */
  async #setStock(serial: string, stock: number): Promise<void> {
    const { url, token } = this.options.api!;
    const res = await fetch(`${url.replace(/\/$/, "")}/api/v1/machines/${encodeURIComponent(serial)}/slots`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ slots: Array.from({ length: SLOTS }, (_, i) => ({ slot_no: i + 1, stock })) }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body.slice(0, 200)}`);
  }

  #onCommand(m: Machine, topic: string, payload: Uint8Array): void {
    if (!topic.endsWith("/command")) return;
    const receivedAt = epochMs();
    this.stats.commandsReceived++;
    let command: { message_id?: unknown; payload?: { sent_at?: unknown } };
    try {
      command = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return;
    }
    const sentAt = command.payload?.sent_at;
    if (typeof sentAt === "number") this.commandLatencies.push(receivedAt - sentAt);
    if (typeof command.message_id !== "string") return;
    const ack = JSON.stringify({ message_id: command.message_id, status: "ok" });
    m.client?.publish(`machine/${m.serial}/command/ack`, ack, { qos: 1 }, (error) => {
      if (error) this.stats.publishErrors++;
      else this.stats.commandsAnswered++;
    });
  }

  /** The slot and quantity of the next sale: from a slot that holds enough, or null (sold out). */
  #nextSale(m: Machine, seq: number): { slot_no: number; quantity: number } | null {
    const wanted = 1 + (seq % 3);
    if (!m.stock) return { slot_no: 1 + (seq % SLOTS), quantity: wanted };
    for (let i = 0; i < SLOTS; i++) {
      const slot = (seq + i) % SLOTS;
      const left = m.stock[slot]!;
      if (left <= 0) continue;
      const quantity = Math.min(wanted, left);
      m.stock[slot] = left - quantity;
      return { slot_no: slot + 1, quantity };
    }
    return null;
  }

  #payload(requested: UplinkKind, m: Machine, duplicate: boolean): [UplinkKind, string] {
    const sentAt = epochMs();
    let kind = requested;
    let body: Record<string, unknown> | undefined;
    if (kind === "transaction") {
      // A duplicate re-sends this machine's latest sale with the same id, as a QoS 1 redelivery would.
      const redeliver = duplicate && m.txSeq > 0 && m.lastSale !== undefined;
      const sale = redeliver ? m.lastSale! : this.#nextSale(m, m.txSeq + 1);
      if (sale === null) {
        this.stats.soldOut++;
        kind = "heartbeat";
      } else {
        const seq = redeliver ? m.txSeq : ++m.txSeq;
        m.lastSale = sale;
        if (redeliver) {
          this.stats.duplicatesSent++;
        } else {
          this.stats.uniqueTransactions++;
          this.stats.uniqueQuantity += sale.quantity;
        }
        body = {
          // Numbered per machine, as real machines do: every machine sends T<run>-1, T<run>-2, …, so
          // the exactly-once checks hold only if a sale is (serial_no, transaction_id).
          transaction_id: `T${this.options.runId}-${seq}`,
          slot_no: sale.slot_no,
          quantity: sale.quantity,
          amount: 35,
        };
      }
    }
    if (kind === "heartbeat") {
      body = { current_page: 1 + (m.txSeq % 5), temperature: 20 + Math.round(Math.random() * 100) / 10 };
    } else if (kind === "error") {
      body = { code: "E101", message: "Simulated fault: coin acceptor jammed", level: "error" };
    }
    body!.sent_at = sentAt;
    if (this.#pad) body!.pad = this.#pad;
    return [kind, JSON.stringify(body)];
  }

  /** Publishes one message; `onAck` runs on the broker's PUBACK. Returns false if not connected. */
  publish(m: Machine, kind: UplinkKind, onAck?: () => void, duplicate = false): boolean {
    const client = m.client;
    if (!client?.connected) return false;
    const [sent, payload] = this.#payload(kind, m, duplicate);
    this.stats.sent[sent]++;
    m.inflight++;
    const t0 = (this.stats.pubacked & 63) === 0 ? performance.now() : 0;
    client.publish(`machine/${m.serial}/${sent}`, payload, { qos: 1 }, (error) => {
      m.inflight--;
      if (error) {
        this.stats.publishErrors++;
      } else {
        this.stats.pubacked++;
        if (t0) this.pubackLatencies.push(performance.now() - t0);
      }
      onAck?.();
    });
    return true;
  }

  /** Publishes at fixed rates until `durationS` passes (0: until aborted). */
  async runSteady(rates: SteadyRates, durationS: number): Promise<void> {
    const { signal } = this.options;
    const start = performance.now();
    const hbRate = rates.heartbeatIntervalS > 0 ? this.machines.length / rates.heartbeatIntervalS : 0;
    let hbDone = 0, txDone = 0, errDone = 0, hbCursor = 0;
    // Each machine's first heartbeat at a random offset, so they do not all fire on the same tick.
    const order = this.machines.map((m) => m).sort(() => Math.random() - 0.5);
    while (!signal.aborted) {
      const elapsed = (performance.now() - start) / 1000;
      if (durationS > 0 && elapsed >= durationS) break;
      for (; hbDone < Math.floor(hbRate * elapsed); hbDone++) {
        const m = order[hbCursor++ % order.length]!;
        this.publish(m, "heartbeat");
      }
      for (; txDone < Math.floor(rates.transactionRate * elapsed); txDone++) {
        this.publish(this.#random(), "transaction");
      }
      for (; errDone < Math.floor(rates.errorRate * elapsed); errDone++) {
        this.publish(this.#random(), "error");
      }
      await sleep(5, signal);
    }
  }

  #random(): Machine {
    return this.machines[Math.floor(Math.random() * this.machines.length)]!;
  }

  /** Publishes `messages` as fast as the broker acknowledges them; resolves when all are acked. */
  blast(o: BlastOptions): Promise<void> {
    const { signal } = this.options;
    let remaining = o.messages;
    let outstanding = 0;
    const duplicateShare = o.duplicateShare ?? 0;
    return new Promise<void>((resolve) => {
      const finish = () => {
        if (remaining <= 0 && outstanding === 0) resolve();
      };
      signal.addEventListener("abort", () => resolve(), { once: true });
      const pump = (m: Machine) => {
        while (remaining > 0 && m.inflight < o.inflight && !signal.aborted) {
          const r = Math.random();
          const kind: UplinkKind = r < o.transactionShare ? "transaction" : "heartbeat";
          const duplicate = kind === "transaction" && m.txSeq > 0 && Math.random() < duplicateShare;
          outstanding++;
          const sent = this.publish(m, kind, () => {
            outstanding--;
            pump(m);
            finish();
          }, duplicate);
          if (!sent) {
            outstanding--;
            // Not connected now: let the others take its share.
            return;
          }
          remaining--;
        }
      };
      for (const m of this.machines) pump(m);
      finish();
    });
  }

  /** Ends every connection (in batches, so thousands of closes do not stall the loop). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const clients = this.machines.map((m) => m.client).filter((c): c is MqttClient => !!c);
    for (let i = 0; i < clients.length; i += 500) {
      await Promise.all(
        clients.slice(i, i + 500).map((c) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => c.end(true, () => resolve()), 2000);
            c.end(false, () => {
              clearTimeout(timer);
              resolve();
            });
          })
        ),
      );
    }
  }
}
