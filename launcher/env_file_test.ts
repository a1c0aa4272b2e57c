import assert from "node:assert/strict";
import { parseEnvFile, readEnvFile } from "./env_file.ts";

Deno.test(".env: comments, export, quotes, inline comments; a missing file is empty", () => {
  assert.deepEqual(
    parseEnvFile(
      '# c\nA=1\nexport B = two \nC="x # y"\nD=\'q\'\nE=v # note\nF=\nG="l1\\nl2"\nnot a line\n',
    ),
    { A: "1", B: "two", C: "x # y", D: "q", E: "v", F: "", G: "l1\nl2" },
  );
  assert.deepEqual(readEnvFile("/nonexistent/.env"), {});
});
