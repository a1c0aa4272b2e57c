import assert from "node:assert/strict";
import { END, START, withLastRun } from "./docs_section.ts";

Deno.test("withLastRun replaces only what stands between the markers", () => {
  const doc = `# B\n\nbefore\n\n${START} (generated) -->\n\nold table\n\n${END}\n\nafter\n`;
  const out = withLastRun(doc, "| new | table |");
  assert.equal(out, `# B\n\nbefore\n\n${START} (generated) -->\n\n| new | table |\n\n${END}\n\nafter\n`);
  assert.equal(withLastRun(out, "| new | table |"), out);
});

Deno.test("withLastRun refuses a document without its markers", () => {
  assert.throws(() => withLastRun("# nothing here\n", "x"), /markers/);
});
