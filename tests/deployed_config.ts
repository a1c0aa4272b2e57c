/**
 * @module deployed_config
 * What `tests/compose_test.ts` and `tests/kubernetes_test.ts` check of the environment a deployment
 * example gives a gateway: every variable is one config.ts reads (a misspelt one would be silently
 * ignored, and the gateway would run on a default), and together they are a valid configuration.
 */
import assert from "node:assert/strict";
import { type Config, CONFIG_VARIABLES, loadConfig } from "../config.ts";

/**
 * Asserts that every name in `env` but those in `helpers` (variables only expanded into others, like
 * a pod's POD_NAME) is one config.ts reads, and returns the configuration they load to. `where`
 * names the gateway in a failure.
 */
export function deployedConfig(env: Record<string, string>, where: string, helpers: string[] = []): Config {
  const unknown = Object.keys(env).filter((name) =>
    !helpers.includes(name) && !CONFIG_VARIABLES.includes(name)
  );
  assert.deepEqual(
    unknown,
    [],
    `${where}: variables config.ts does not read (a typo here is silently ignored)`,
  );
  return loadConfig(Object.fromEntries(Object.entries(env).filter(([name]) => !helpers.includes(name))));
}
