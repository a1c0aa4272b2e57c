/**
 * @module console_browser_test
 * The console in a real browser (Debian's chromium through playwright-core) against a gateway in
 * embedded mode and simulated machines on its broker: sign in; a machine's heartbeat shows up
 * without a reload; a remote dispense reaches `succeeded` when the machine acks; a token issued in
 * the console connects and, once revoked, signs nobody in (broker or console); a dead letter is
 * replayed and lands; the viewer cannot dispense.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import type { Browser } from "playwright-core";
import { SqliteQueue } from "../../queue/sqlite/sqlite_queue.ts";
import {
  type ConsoleGateway,
  launchChromium,
  publish,
  queueDbPath,
  signIn,
  startConsoleGateway,
} from "../../tools/scripts/console_fixture.ts";

Deno.test("console in a browser: sign in, live heartbeat, dispense, tokens, dead letters, viewer", async (t) => {
  let g: ConsoleGateway | undefined;
  let browser: Browser | undefined;
  try {
    g = await startConsoleGateway();
    browser = await launchChromium();
    const gw = g;
    const context = await browser.newContext({ locale: "en-US" });
    const page = await context.newPage();
    page.on("dialog", (dialog) => void dialog.accept());
    const token = await gw.issueToken("BR-1");
    const machine = await gw.machine("BR-1", token, { ackCommands: true });

    await t.step("sign in with the API token", async () => {
      await signIn(page, gw.base, gw.apiToken);
      assert.equal(await page.textContent("h1"), "Fleet");
      assert.match(await page.textContent("header") ?? "", /operator/);
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === "console_session")!;
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
    });

    await t.step("a simulated machine's heartbeat appears without a reload", async () => {
      await page.waitForSelector('tr[data-serial="BR-1"]');
      await page.evaluate(() => (globalThis as unknown as { marker: number }).marker = 1);
      await page.waitForSelector("#live .dot.on");
      await publish(machine, "machine/BR-1/heartbeat", { temperature: 6.5, current_page: 2 });
      await page.waitForFunction(
        `document.querySelector('tr[data-serial="BR-1"] [data-f=temp]')?.textContent === "6.5 °C"`,
      );
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker),
        1,
        "no reload",
      );
      assert.equal(await page.textContent('tr[data-serial="BR-1"] [data-f=page]'), "2");
      assert.ok(await page.$('tr[data-serial="BR-1"] .dot.on'), "online");
    });

    await t.step("remote dispense reaches succeeded when the machine acks", async () => {
      await page.click('a[href="/console/machines/BR-1"]');
      await page.waitForSelector("#dispense-form");
      await page.fill("#dispense-form [name=slot_no]", "3");
      await page.click("#dispense-form button[type=submit]");
      await page.waitForSelector("#dispense-form .result.ok");
      await page.waitForSelector('#machine-live [data-status="succeeded"]', { timeout: 15_000 });
      const row = await page.textContent("#machine-live tr[data-message-id]");
      assert.match(row ?? "", /dispense/);
      assert.match(row ?? "", /"slot_no":3/);
    });

    await t.step("a token issued in the console connects; revoked, it signs nobody in", async () => {
      await page.click("form[action$='/token'] button");
      const fresh = (await page.textContent("#new-token"))!.trim();
      assert.ok(fresh.length >= 16);
      const ok = await mqtt.connectAsync(gw.brokerUrl, {
        clientId: "BR-1:second",
        username: "BR-1",
        password: fresh,
        reconnectPeriod: 0,
      });
      await ok.endAsync();
      await page.goBack();
      await page.waitForSelector("form[action$='/token/revoke']");
      await page.click("form[action$='/token/revoke'] button");
      await page.waitForSelector("#token-revoked");
      await assert.rejects(
        mqtt.connectAsync(gw.brokerUrl, {
          clientId: "BR-1:third",
          username: "BR-1",
          password: fresh,
          reconnectPeriod: 0,
        }),
        /Bad username or password|Not authorized/i,
      );
      const other = await browser!.newPage();
      await other.goto(`${gw.base}/console/sign-in`);
      await other.fill("#token", fresh);
      await other.click("button[type=submit]");
      await other.waitForSelector("[role=alert]");
      assert.match(other.url(), /\/console\/sign-in/);
      await other.close();
    });

    await t.step("a dead letter is replayed and lands", async () => {
      const db = SqliteQueue.openDatabase(queueDbPath(gw.dataDir));
      const q = new SqliteQueue(db, "mqtt_incoming_jobs", { consumerId: "test-dead" });
      const job = JSON.stringify({
        type: "heartbeat",
        serial_no: "BR-DEAD",
        payload: { temperature: 3.25, current_page: 7 },
        received_at: new Date().toISOString(),
      });
      await q.deadLetter(null, "heartbeat job failed 5 times; last error: database unavailable", job);
      await q.close();
      db.close();
      await page.goto(`${gw.base}/console/dead-letters`);
      await page.waitForSelector("tr[data-dead-id]");
      assert.match(await page.textContent("tr[data-dead-id]") ?? "", /database unavailable/);
      await page.click("tr[data-dead-id] form[action$='/replay'] button");
      await page.waitForSelector("#flash");
      assert.match(await page.textContent("#flash") ?? "", /Replayed 1/);
      assert.equal(await page.$("tr[data-dead-id]"), null);
      await page.goto(`${gw.base}/console/machines/BR-DEAD`);
      for (let i = 0; i < 50 && !(await page.$("#machine-head [data-f=temp]")); i++) {
        await new Promise((r) => setTimeout(r, 200));
        await page.reload();
      }
      assert.equal(await page.textContent("#machine-head [data-f=temp]"), "3.3 °C");
      assert.equal(await page.textContent("#machine-head [data-f=page]"), "7");
    });

    await t.step("the viewer cannot dispense", async () => {
      const viewerContext = await browser!.newContext({ locale: "en-US" });
      const viewer = await viewerContext.newPage();
      await signIn(viewer, gw.base, gw.viewerToken);
      assert.match(await viewer.textContent("header") ?? "", /viewer/);
      await viewer.goto(`${gw.base}/console/machines/BR-1`);
      assert.equal(await viewer.isDisabled("#dispense-form button[type=submit]"), true);
      const before = await viewer.$$eval("#machine-live tr[data-message-id]", (rows) => rows.length);
      // What a tampered page would send: the form's own CSRF token, the viewer's cookie.
      const status = await viewer.evaluate(`(async () => {
        const form = document.getElementById("dispense-form");
        const body = new URLSearchParams({ slot_no: "1", _csrf: form.querySelector("[name=_csrf]").value });
        return (await fetch(form.action, { method: "POST", body, headers: { accept: "application/json" } })).status;
      })()`);
      assert.equal(status, 403);
      await viewer.reload();
      assert.equal(await viewer.$$eval("#machine-live tr[data-message-id]", (rows) => rows.length), before);
      await viewerContext.close();
    });
    await context.close();
  } finally {
    await browser?.close();
    await g?.close();
  }
});
