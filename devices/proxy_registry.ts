/**
 * @module proxy_registry
 * The device service's list of proxy services (seed 000's 下位機, each known by its `proxyid`):
 * where each one answers, which path is its health check, how long a check may take and how often
 * it runs. `config.ts` feeds it `DEVICE_PROXIES` (a JSON array) or the contents of
 * `DEVICE_PROXIES_FILE` (the same array in a file); a bad entry is an error naming the entry.
 */
import { z } from "zod";

const path = z.string().min(1).startsWith("/", "must start with /");

const proxySchema = z.object({
  /** The seed's `proxyid`: a number in every MQTT payload and in the topics. */
  proxyid: z.number().int().min(0).max(2 ** 53 - 1),
  /** e.g. `http://10.0.0.5:5555`; the paths below are appended to it. */
  base_url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).transform((v) =>
    v.replace(/\/+$/, "")
  ),
  health_path: path.default("/health"),
  controller_start_path: path.default("/controller/start"),
  /** Budget of one check (connect, headers and body), after which it is a `timeout` event. */
  timeout_ms: z.number().int().min(1).max(600_000).default(5000),
  /** Budget of a controller start; the health check's `timeout_ms` when not set. */
  controller_timeout_ms: z.number().int().min(1).max(600_000).optional(),
  /** Time from the start of one check to the start of the next. */
  interval_ms: z.number().int().min(50).max(86_400_000).default(30_000),
  /** Free text shown by `GET /api/v1/proxies` (the seed's `remark`). */
  name: z.string().max(200).optional(),
}).strict();

/** One proxy service as the device service uses it. */
export type ProxyConfig = z.output<typeof proxySchema>;

const listSchema = z.array(proxySchema).superRefine((proxies, ctx) => {
  const seen = new Set<number>();
  proxies.forEach((p, i) => {
    if (seen.has(p.proxyid)) {
      ctx.addIssue({ code: "custom", path: [i, "proxyid"], message: `proxyid ${p.proxyid} appears twice` });
    }
    seen.add(p.proxyid);
  });
});

/**
 * Parses the registry from its JSON text. Throws an Error whose message says which entry and field
 * is wrong (the caller wraps it in a ConfigError naming the variable).
 */
export function parseProxyRegistry(text: string): ProxyConfig[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = listSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length
      ? issue.path.map((p) => typeof p === "number" ? `[${p}]` : `.${String(p)}`).join("")
      : "(top level)";
    throw new Error(`${where}: ${issue.message}`, { cause: parsed.error });
  }
  return parsed.data;
}
