import assert from "node:assert/strict";
import { newCommandRecord } from "../db/command_record.ts";
import type { NewCommand, Store } from "../db/store.ts";
import { NotFoundError } from "../errors.ts";
import { CommandIntake } from "./command_intake.ts";

function fakeStore(machines: Set<string>) {
  const lookups: string[] = [];
  const store = {
    machineExists: (s: string) => (lookups.push(s), Promise.resolve(machines.has(s))),
    createCommand: (c: NewCommand) => Promise.resolve({ command: newCommandRecord(c), created: true }),
  } as unknown as Store;
  return { store, lookups };
}

Deno.test("command intake: a machine found once is not looked up again; an unknown one is, every time", async () => {
  const { store, lookups } = fakeStore(new Set(["M-001"]));
  const pushed: string[] = [];
  const intake = new CommandIntake({
    store,
    queue: { push: (...raws: string[]) => (pushed.push(...raws), Promise.resolve()) },
    defaultTtlSeconds: 60,
  });
  const request = (serialNo: string) => ({ serialNo, command: "dispense", payload: { slot_no: 1 } });
  await intake.accept(request("M-001"));
  await intake.accept(request("M-001"));
  await assert.rejects(intake.accept(request("M-404")), NotFoundError);
  await assert.rejects(intake.accept(request("M-404")), NotFoundError);
  assert.deepEqual(lookups, ["M-001", "M-404", "M-404"]);
  assert.equal(pushed.length, 2);
  assert.equal(JSON.parse(pushed[0]!).target, "M-001");
});
