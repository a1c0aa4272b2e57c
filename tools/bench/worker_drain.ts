/**
 * @module worker_drain
 * How fast the worker lands jobs in SQL, with the broker and uplink out of the way: the queue is
 * filled with contract JSON in a side list, a worker-only gateway is started, the side list is
 * renamed onto the queue at once (RENAME wakes the blocked BLMOVEs), and the drain is timed until
 * the gateway's `gateway_jobs_total` has counted every job.
 * - heartbeats from 2,000 machines (coalescing inside a batch is allowed: last wins; checked by a
 *   per-machine sequence number that must end at the machine's last heartbeat);
 * - transactions from 2,000 machines with 2 % redelivered ids; exactly-once is checked on rows
 *   and stock.
 */
import { encodeBridgePayload, formatReceivedAt } from "../../contract/incoming_job.ts";
import {
  type BenchContext,
  DepthSeries,
  gatewayEnv,
  jobsDone,
  prefixLedger,
  queueName,
  randomId,
  type ScenarioResult,
  waitUntil,
} from "./context.ts";
import { GatewayProcess } from "./gateway_process.ts";
import { ProcWatcher } from "./services.ts";

const MACHINES = 2000;

async function fill(ctx: BenchContext, key: string, jobs: Iterable<string>): Promise<number> {
  let chunk: string[] = [];
  let n = 0;
  for (const job of jobs) {
    chunk.push(job);
    if (chunk.length === 2000) {
      await ctx.redis.rpush(key, ...chunk);
      n += chunk.length;
      chunk = [];
    }
  }
  if (chunk.length) await ctx.redis.rpush(key, ...chunk);
  return n + chunk.length;
}

function* heartbeats(prefix: string, n: number): Generator<string> {
  const base = Date.now() - n * 1000;
  for (let i = 0; i < n; i++) {
    const machine = i % MACHINES;
    const seq = Math.floor(i / MACHINES);
    yield encodeBridgePayload({
      type: "heartbeat",
      serial_no: `${prefix}${machine}`,
      payload: { current_page: 1 + (seq % 5), temperature: 20 + (i % 100) / 10, seq },
      // Strictly increasing per machine, so "last wins" has one right answer.
      received_at: formatReceivedAt(new Date(base + seq * 1000)),
    });
  }
}

function transactions(prefix: string, n: number, duplicateShare: number) {
  const jobs: string[] = [];
  let quantity = 0;
  let unique = 0;
  const received = formatReceivedAt(new Date());
  for (let i = 0; i < n; i++) {
    const machine = i % MACHINES;
    const q = 1 + (i % 3);
    const job = encodeBridgePayload({
      type: "transaction",
      serial_no: `${prefix}${machine}`,
      // Numbered per machine, as machines do: ids repeat across machines (a sale is the pair).
      payload: {
        transaction_id: `T${prefix}${Math.floor(i / MACHINES)}`,
        slot_no: 1 + (i % 8),
        quantity: q,
        amount: 35,
      },
      received_at: received,
    });
    jobs.push(job);
    unique++;
    quantity += q;
    // A redelivery comes a little later, often in another batch.
    if (i % Math.round(1 / duplicateShare) === 0 && i > 0) jobs.push(jobs[Math.max(0, jobs.length - 150)]!);
  }
  return { jobs, unique, quantity };
}

async function drain(
  ctx: BenchContext,
  scenario: string,
  type: string,
  fillSide: (side: string) => Promise<number>,
): Promise<
  {
    rate: number;
    seconds: number;
    total: number;
    dead: number;
    proc: ReturnType<ProcWatcher["stop"]>;
    maxDepth: number;
    ok: boolean;
    series: DepthSeries["points"];
  }
> {
  const queue = queueName(ctx, scenario);
  const side = `${queue}_side`;
  const total = await fillSide(side);
  const gateway = await GatewayProcess.start(gatewayEnv(ctx, scenario, "worker"));
  try {
    const depth = new DepthSeries(ctx, queue, gateway);
    const watch = new ProcWatcher(gateway.pid);
    const start = performance.now();
    await ctx.redis.rename(side, queue);
    let progress = { done: 0, dead: 0, retried: 0 };
    const ok = await waitUntil(
      async () => {
        progress = jobsDone(await gateway.scrape(), type);
        return progress.done + progress.dead >= total;
      },
      600_000,
      ctx.signal,
      50,
    );
    const seconds = (performance.now() - start) / 1000;
    const proc = watch.stop();
    const series = depth.stop();
    return {
      rate: progress.done / seconds,
      seconds,
      total,
      dead: progress.dead,
      proc,
      maxDepth: series.maxDepth,
      ok,
      series: series.points,
    };
  } finally {
    await gateway.stop();
  }
}

export async function runWorkerDrain(ctx: BenchContext): Promise<ScenarioResult> {
  const hbPrefix = `H${randomId(4)}-`;
  const nHb = ctx.sizes.drainHeartbeats;
  const hb = await drain(ctx, "dhb", "heartbeat", (side) => fill(ctx, side, heartbeats(hbPrefix, nHb)));
  const [hbRows] = await ctx.db.query(
    "SELECT serial_no AS s, JSON_EXTRACT(last_heartbeat, '$.seq') AS seq FROM machines WHERE serial_no LIKE ?",
    [`${hbPrefix}%`],
  ) as unknown as [{ s: string; seq: number | string }[]];
  const machines = Math.min(MACHINES, nHb);
  // Machine m sent jobs m, m + MACHINES, …: its last one has seq floor((n - 1 - m) / MACHINES).
  const lastWins = hbRows.length === machines && hbRows.every((r) => {
    const m = Number(r.s.slice(hbPrefix.length));
    return Number(r.seq) === Math.floor((nHb - 1 - m) / MACHINES);
  });

  const txPrefix = `X${randomId(4)}-`;
  const txSet = transactions(txPrefix, ctx.sizes.drainTransactions, 0.02);
  const tx = await drain(ctx, "dtx", "transaction", (side) => fill(ctx, side, txSet.jobs));
  const ledger = await prefixLedger(ctx, txPrefix);
  const once = ledger.rows === txSet.unique && ledger.sold === txSet.quantity;

  return {
    name: "worker-drain",
    title: "2d. Worker only: queue → SQL (pre-filled queue, 2,000 machines)",
    figures: [
      { metric: "heartbeats landed in SQL", value: hb.rate, unit: "msg/s", rate: true },
      { metric: "  last heartbeat won on every machine (1 = holds)", value: lastWins ? 1 : 0, unit: "bool" },
      { metric: "  gateway RSS peak", value: hb.proc.peakRssMb, unit: "MB" },
      { metric: "  gateway CPU mean", value: hb.proc.meanCpuPercent, unit: "%" },
      { metric: "transactions landed in SQL", value: tx.rate, unit: "msg/s", rate: true },
      { metric: "  exactly once (1 = holds)", value: once ? 1 : 0, unit: "bool" },
      { metric: "  gateway RSS peak", value: tx.proc.peakRssMb, unit: "MB" },
      { metric: "  gateway CPU mean", value: tx.proc.meanCpuPercent, unit: "%" },
    ],
    notes: [
      `${hb.total} heartbeats in ${hb.seconds.toFixed(2)} s` + (hb.ok ? "" : " (timed out)") +
      (hb.dead ? `, ${hb.dead} dead-lettered` : ""),
      `${tx.total} transaction jobs (${txSet.unique} distinct, rest redelivered) in ${
        tx.seconds.toFixed(2)
      } s` +
      (tx.ok ? "" : " (timed out)") + (tx.dead ? `, ${tx.dead} dead-lettered` : "") +
      `; rows ${ledger.rows}/${txSet.unique}, units ${ledger.sold}/${txSet.quantity}`,
    ],
    data: { heartbeats: { ...hb, lastWins }, transactions: { ...tx, once } },
  };
}
