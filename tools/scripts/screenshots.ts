/**
 * @module screenshots
 * `deno task screenshots`: starts a gateway in embedded mode with a simulated fleet (machines on
 * its broker sending heartbeats, sales and errors and answering commands; slots stocked through the
 * API and a day of sales counted down from it; dead
 * letters; two device-service proxies, one healthy and one down), then saves a PNG of every console
 * page into docs/screenshots/ (or the folder given as the first argument). Needs /usr/bin/chromium.
 */
import { join } from "node:path";
import { SqliteQueue } from "../../queue/sqlite/sqlite_queue.ts";
import { launchChromium, publish, queueDbPath, signIn, startConsoleGateway } from "./console_fixture.ts";

const outDir = Deno.args[0] ?? "docs/screenshots";
await Deno.mkdir(outDir, { recursive: true });

// A proxy that answers its health check, and one nobody listens on.
const proxy = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  () => Response.json({ status: "ok", message: "OK" }),
);
const proxies = JSON.stringify([
  { proxyid: 1, name: "Taipei lobby", base_url: `http://127.0.0.1:${proxy.addr.port}`, interval_ms: 1000 },
  { proxyid: 2, name: "Kaohsiung depot", base_url: "http://127.0.0.1:9", interval_ms: 1000, timeout_ms: 300 },
]);
const g = await startConsoleGateway({ DEVICE_PROXIES: proxies, MACHINE_ONLINE_SECONDS: "120" });
const browser = await launchChromium();
try {
  const store = g.gateway.store!;
  const now = Date.now();
  const serials = Array.from({ length: 18 }, (_, i) => `VM-${String(i + 1).padStart(3, "0")}`);
  // Machines that were heard from earlier, some long ago (offline).
  await store.recordHeartbeats(serials.map((serialNo, i) => ({
    serialNo,
    receivedAt: new Date(now - (i % 4 === 3 ? 3 * 3600_000 : 20_000)),
    temperature: 4 + (i % 5) * 0.7,
    currentPage: 1 + (i % 3),
    payload: {},
  })));
  // Every machine's 6 slots stocked through the API, as an operator or the back office would: the
  // sales below count down from there, never below 0.
  for (const serial of serials) {
    await g.setStock(serial, Array.from({ length: 6 }, (_, i) => ({ slot_no: i + 1, stock: 20 })));
  }
  // A day of sales (stock goes down).
  const sales = [];
  for (let h = 0; h < 24; h++) {
    const n = 2 + Math.round(6 * Math.abs(Math.sin(h / 4)));
    for (let k = 0; k < n; k++) {
      const serialNo = serials[(h * 7 + k) % serials.length]!;
      sales.push({
        transactionId: `DEMO-${h}-${k}`,
        serialNo,
        slotNo: 1 + ((h + k) % 6),
        quantity: 1,
        amount: [25, 30, 35, 45][k % 4]!,
        receivedAt: new Date(now - (23 - h) * 3600_000 - k * 60_000),
        payload: {},
      });
    }
  }
  await store.recordTransactions(sales);
  // A count found two slots nearly empty: the low-stock filter and badges have something to show.
  await g.setStock("VM-001", [{ slot_no: 4, stock: 1 }]);
  await g.setStock("VM-003", [{ slot_no: 2, stock: 2 }]);
  // Live machines on the broker: heartbeats, an error, commands answered.
  const live = [];
  for (const serial of serials.slice(0, 6)) {
    const client = await g.machine(serial, await g.issueToken(serial), { ackCommands: true });
    live.push(client);
    await publish(client, `machine/${serial}/heartbeat`, { temperature: 5.2, current_page: 1 });
  }
  await publish(live[1]!, "machine/VM-002/error", {
    code: "E21",
    level: "error",
    message: "Coin acceptor jammed",
  });
  await publish(live[2]!, "machine/VM-003/error", {
    code: "W07",
    level: "warning",
    message: "Door open > 60 s",
  });
  await publish(live[0]!, "machine/VM-001/error", {
    code: "E03",
    level: "error",
    message: "Slot 4 motor stalled",
  });
  for (const slot of [2, 5]) {
    await fetch(`${g.base}/api/v1/machines/VM-001/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${g.apiToken}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "dispense", payload: { slot_no: slot, transaction_id: `RD-${slot}` } }),
    });
  }
  // Dead letters: jobs that failed, and a message that never was JSON.
  const db = SqliteQueue.openDatabase(queueDbPath(g.dataDir));
  const q = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: "screenshots" });
  await q.deadLetter(
    null,
    "transaction job failed 5 times; last error: database unavailable",
    JSON.stringify({
      type: "transaction",
      serial_no: "VM-004",
      payload: { transaction_id: "T-REPLAY-1", slot_no: 3, quantity: 1, amount: 35 },
      received_at: new Date().toISOString(),
    }),
  );
  await q.deadLetter(null, "Cannot parse heartbeat from VM-009: invalid JSON", "{temperature: hot");
  await q.close();
  db.close();
  // The system page's messages-per-second chart samples every 5 s from its first view: look at it
  // once, then keep the machines talking for a while.
  const warmup = await browser.newPage();
  await signIn(warmup, g.base, g.apiToken);
  await warmup.goto(`${g.base}/console/system`);
  for (let i = 0; i < 60; i++) {
    await Promise.all(
      live.map((client, k) =>
        publish(client, `machine/${serials[k]}/heartbeat`, { temperature: 5 + (i % 7) / 10, current_page: 1 })
      ),
    );
    await new Promise((r) => setTimeout(r, 50 + 40 * Math.abs(Math.sin(i / 9))));
  }
  await new Promise((r) => setTimeout(r, 5500));
  await warmup.close();

  const shoot = async (lang: string, pages: [string, string][]) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: lang });
    const page = await context.newPage();
    await page.goto(`${g.base}/console/sign-in`);
    await page.screenshot({ path: join(outDir, lang === "en-US" ? "sign-in.png" : `sign-in-${lang}.png`) });
    await signIn(page, g.base, g.apiToken);
    for (const [name, path] of pages) {
      await page.goto(`${g.base}${path}`);
      await page.waitForTimeout(700); // live stream connected, system chart sampled
      await page.screenshot({ path: join(outDir, `${name}.png`) });
      console.log(`wrote ${join(outDir, `${name}.png`)}`);
    }
    await context.close();
  };
  await shoot("en-US", [
    ["fleet", "/console?sort=sales&dir=desc"],
    ["machine", "/console/machines/VM-001"],
    ["alerts", "/console/alerts"],
    ["dead-letters", "/console/dead-letters"],
    ["devices", "/console/devices"],
    ["system", "/console/system"],
  ]);
  await shoot("zh-TW", [["fleet-zh-TW", "/console"], ["machine-zh-TW", "/console/machines/VM-002"]]);
} finally {
  await browser.close();
  await g.close();
  await proxy.shutdown();
}
