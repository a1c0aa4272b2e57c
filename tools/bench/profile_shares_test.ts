import assert from "node:assert/strict";
import { type CpuProfile, profileShares } from "./profile_shares.ts";

const ROOT = "/work/gw";
const frame = (functionName: string, url: string) => ({ functionName, url });

// (root) → handle (app/a.ts) → query (npm mysql2) ; (root) → (idle) ; (root) → (garbage collector)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)", ""), children: [2, 4, 5] },
    { id: 2, callFrame: frame("handle", `file://${ROOT}/app/a.ts`), children: [3] },
    {
      id: 3,
      callFrame: frame("query", `file:///x/node_modules/.deno/mysql2@3.24.6/node_modules/mysql2/c.js`),
    },
    { id: 4, callFrame: frame("(idle)", "") },
    { id: 5, callFrame: frame("(garbage collector)", "") },
  ],
  samples: [2, 3, 3, 3, 4, 4, 4, 4, 5, 5],
};

Deno.test("profile shares: inclusive per file or npm package, and V8's own nodes apart", () => {
  const shares = profileShares(profile, ROOT);
  assert.equal(shares.samples, 10);
  assert.deepEqual(shares.runtime, { "(idle)": 40, "(garbage collector)": 20 });
  assert.deepEqual(shares.files, [
    { file: "app/a.ts", percent: 40 }, // its own sample and the three of the query it called
    { file: "npm:mysql2@3.24.6", percent: 30 },
  ]);
});

Deno.test("profile shares: an empty profile is all zeros", () => {
  assert.deepEqual(profileShares({ nodes: [], samples: [] }, ROOT), { samples: 0, runtime: {}, files: [] });
});
