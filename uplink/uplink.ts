/**
 * @module uplink
 * Machine → queue. Subscribes QoS 1 to `machine/+/{heartbeat,error,transaction,command/ack}`
 * (through `$share/<group>/` when the broker supports shared subscriptions), wraps each message
 * as the contract's job JSON and pushes it onto the incoming queue. The PUBACK is sent only once
 * the push is stored, so a crash in between loses nothing: the broker delivers it again.
 *
 * Bad input never stops the flow: an unknown topic or a bad serial is counted and acknowledged
 * (there is nothing to retry); malformed JSON, oversize payloads and payloads that cannot be
 * re-encoded or stored (nested deeper than {@link MAX_PAYLOAD_DEPTH} levels) go to the dead letters.
 */
import { getLogger } from "@logtape/logtape";
import { encodeBridgePayload, formatReceivedAt } from "../contract/incoming_job.ts";
import { MAX_PAYLOAD_DEPTH, nestedDeeperThan } from "../contract/json_depth.ts";
import { type ParsedTopic, parseUplinkTopic, uplinkFilters } from "../contract/topics.ts";
import { sleep } from "../lib/sleep.ts";
import type { Metrics } from "../lib/metrics.ts";
import { backoffDelay } from "../lib/backoff_delay.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";
import type { MqttConnection } from "../mqtt/mqtt_connection.ts";
import { PushBatcher } from "./push_batcher.ts";

const log = getLogger(["gateway", "uplink"]);

const DEAD_LETTER_SAMPLE = 4096;

export interface UplinkOptions {
  connection: MqttConnection;
  queue: ReliableQueue;
  /** Groups concurrent pushes into one; share one between the uplink connections of a process. */
  batcher?: PushBatcher;
  maxPayloadBytes: number;
  /** `$share` group, or "" for plain subscriptions. */
  shareGroup: string;
  metrics?: Metrics;
  signal: AbortSignal;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Logs each rejection reason at most once per interval, with how many were not logged. */
class RejectionLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>();
  constructor(readonly intervalMs = 10_000) {}
  warn(reason: string, message: string, props: Record<string, unknown>): void {
    const now = Date.now();
    const seen = this.#last.get(reason);
    if (seen && now - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    this.#last.set(reason, { at: now, suppressed: 0 });
    log.warn(`${message}{suppressedNote}`, {
      ...props,
      suppressedNote: seen?.suppressed ? ` (${seen.suppressed} more like it not logged)` : "",
    });
  }
}

/** Wires the uplink into `connection` and subscribes. Returns once subscribed (or aborted). */
export async function startUplink(o: UplinkOptions): Promise<void> {
  const decoder = new TextDecoder();
  const batcher = o.batcher ?? new PushBatcher(o.queue);
  const rejections = new RejectionLog();
  // received_at has whole seconds: formatted once a second, not once a message.
  let second = NaN;
  let receivedAt = "";
  const receivedNow = (): string => {
    const ms = o.now ? o.now().getTime() : Date.now();
    if (Math.floor(ms / 1000) !== second) {
      second = Math.floor(ms / 1000);
      receivedAt = formatReceivedAt(new Date(ms));
    }
    return receivedAt;
  };

  /** `type` is the job type when the topic named one, else "unknown". */
  const reject = (reason: string, message: string, props: Record<string, unknown>, type = "unknown") => {
    o.metrics?.rejected.inc({ reason, type });
    rejections.warn(reason, message, props);
  };

  /** Retries until stored or shut down; false means "shutting down, do not ack". */
  const store = async (what: () => Promise<void>): Promise<boolean> => {
    for (let attempt = 1; !o.signal.aborted; attempt++) {
      try {
        await what();
        return true;
      } catch (error) {
        log.error("Cannot store an uplink message in {queue} (attempt {attempt}): {error}", {
          queue: o.queue.name,
          attempt,
          error,
        });
        await sleep(backoffDelay(attempt, 100, 5000), o.signal);
      }
    }
    return false;
  };

  /** Resolves once stored (true) or on shutdown (false: do not ack). */
  const handle = async (topic: string, bytes: Uint8Array, parsed: ParsedTopic): Promise<boolean> => {
    if ("reason" in parsed) {
      reject(parsed.reason, "Rejected a message on {topic}: {reason}", { topic, reason: parsed.reason });
      return true;
    }
    const { serialNo, type } = parsed;
    o.metrics?.received.inc({ type });
    const deadLetter = (reason: string, text: string) => {
      reject(reason, "{message}", { message: text }, type);
      o.metrics?.deadLettered.inc({ queue: o.queue.name });
      const sample = decoder.decode(bytes.subarray(0, DEAD_LETTER_SAMPLE));
      const raw = JSON.stringify({ topic, serial_no: serialNo, type, bytes: bytes.length, payload: sample });
      return store(() => o.queue.deadLetter(null, text, raw));
    };
    if (bytes.length > o.maxPayloadBytes) {
      return await deadLetter(
        "too_large",
        `Cannot accept ${type} from ${serialNo}: payload of ${bytes.length} bytes exceeds ${o.maxPayloadBytes}`,
      );
    }
    let payload: unknown;
    try {
      payload = JSON.parse(decoder.decode(bytes));
    } catch (error) {
      return await deadLetter(
        "invalid_json",
        `Cannot parse ${type} from ${serialNo}: ${(error as Error).message}`,
      );
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      return await deadLetter(
        "invalid_json",
        `Cannot parse ${type} from ${serialNo}: payload is not a JSON object`,
      );
    }
    if (nestedDeeperThan(payload, MAX_PAYLOAD_DEPTH)) {
      return await deadLetter(
        "unprocessable",
        `Cannot accept ${type} from ${serialNo}: payload nested deeper than ${MAX_PAYLOAD_DEPTH} levels`,
      );
    }
    let job: string;
    try {
      job = encodeBridgePayload({
        type,
        serial_no: serialNo,
        payload: payload as Record<string, unknown>,
        received_at: receivedNow(),
      });
    } catch (error) {
      // JSON.parse takes nesting that JSON.stringify, deeper in the stack, cannot: a few dozen kB
      // of brackets. Throwing here would leave the message without a PUBACK, and mqtt.js handles
      // a connection's packets one at a time: the whole uplink would stall behind it.
      return await deadLetter(
        "unprocessable",
        `Cannot encode ${type} from ${serialNo}: ${(error as Error).message}`,
      );
    }
    if (!await store(() => batcher.push(job))) return false;
    o.metrics?.queued.inc({ type });
    return true;
  };

  const isUplink = (topic: string) => topic.startsWith("machine/") && !topic.endsWith("/command");
  o.connection.handleAcks(isUplink, (topic, payload, _packet, done) => {
    const parsed = parseUplinkTopic(topic);
    handle(topic, payload, parsed).then((stored) => {
      if (!stored) return; // shutting down: no PUBACK, the broker keeps the message for the session
      done();
      o.metrics?.acked.inc({ type: "type" in parsed ? parsed.type : "rejected" });
    }, (error) => log.error("Uplink handler failed on {topic}: {error}", { topic, error }));
  });
  // QoS 0 messages have no PUBACK to hold back; they are handled the same way.
  o.connection.onMessage((topic, payload, packet) => {
    if (packet.qos === 0 && isUplink(topic)) void handle(topic, payload, parseUplinkTopic(topic));
  });
  await o.connection.subscribe(uplinkFilters(o.shareGroup), 1);
}
