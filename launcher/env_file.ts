/**
 * @module env_file
 * Reads `.env` when there is one, so the tasks need no `--env-file=.env` (which makes Deno warn "`.env`
 * was not found" on every start without it, once per process). `KEY=value` lines, `#` comments, an
 * optional `export `, values in '…' or "…" (with \n in double quotes) or bare (a ` #` starts a
 * comment). The environment wins over the file, as with `--env-file`. `GATEWAY_ENV_FILE` names another
 * file; empty: none (the tests, so a developer's `.env` never leaks into them).
 */

/** The file's variables; `{}` when it does not exist or may not be read (the launched gateway). */
export function readEnvFile(path = ".env"): Record<string, string> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return {};
  }
  return parseEnvFile(text);
}

export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(raw);
    if (!m) continue;
    let value = m[2]!;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replaceAll("\\n", "\n");
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    env[m[1]!] = value;
  }
  return env;
}

/** The environment as the gateway sees it: `.env`'s variables under the process's own. */
export function environment(): Record<string, string> {
  const own = Deno.env.toObject();
  const path = own.GATEWAY_ENV_FILE ?? ".env";
  return { ...(path ? readEnvFile(path) : {}), ...own };
}
