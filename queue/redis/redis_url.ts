/**
 * @module redis_url
 * Reads `REDIS_URL` in its three forms: one server (`redis://` / `rediss://`, as ioredis reads it),
 * a Cluster (`redis+cluster://[user:pass@]h1:p1,h2:p2`, seed nodes) and Sentinel
 * (`redis+sentinel://[user:pass@]h1:p1,h2:p2/MASTER_NAME[/DB]`). A `rediss+` scheme turns on TLS.
 * Errors name what is wrong and never show the password.
 */

export interface RedisEndpoint {
  host: string;
  port: number;
}

/** What `REDIS_URL` points at. `url` for a single server is passed to ioredis unchanged. */
export type RedisTarget =
  | { kind: "single"; url: string }
  | { kind: "cluster"; nodes: RedisEndpoint[]; username?: string; password?: string; tls: boolean }
  | {
    kind: "sentinel";
    sentinels: RedisEndpoint[];
    masterName: string;
    db: number;
    username?: string;
    password?: string;
    tls: boolean;
  };

/** A `REDIS_URL` that cannot be used; the message never contains the URL's password. */
export class RedisUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisUrlError";
  }
}

const SCHEME = /^(rediss?)(\+(cluster|sentinel))?:\/\//;

/** Parses `url` (see the module doc); throws {@link RedisUrlError}. */
export function parseRedisUrl(url: string): RedisTarget {
  const scheme = url.match(SCHEME);
  if (!scheme) {
    throw new RedisUrlError(
      "must start with redis://, rediss://, redis+cluster://, redis+sentinel:// (or rediss+…)",
    );
  }
  const tls = scheme[1] === "rediss";
  const topology = scheme[3] as "cluster" | "sentinel" | undefined;
  const rest = url.slice(scheme[0].length);
  if (!topology) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new RedisUrlError("is not a valid URL");
    }
    if (!parsed.hostname) throw new RedisUrlError("names no host");
    return { kind: "single", url };
  }
  // user:pass@ ends at the last "@" before the path (a password may contain "@" if encoded as %40).
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash + 1);
  const at = authority.lastIndexOf("@");
  const userinfo = at === -1 ? "" : authority.slice(0, at);
  const hostList = at === -1 ? authority : authority.slice(at + 1);
  const { username, password } = credentials(userinfo);
  const nodes = hostList.split(",").map((s) => s.trim()).filter(Boolean).map((text, i) => endpoint(text, i));
  if (nodes.length === 0) {
    throw new RedisUrlError(`names no ${topology === "cluster" ? "seed node" : "sentinel"}`);
  }
  if (topology === "cluster") {
    if (path.replace(/\/+$/, "") !== "" && path.replace(/\/+$/, "") !== "0") {
      throw new RedisUrlError("a Cluster has only database 0: drop the path after the nodes");
    }
    return { kind: "cluster", nodes, username, password, tls };
  }
  const [name, dbText, ...extra] = path.split("/").filter((s, i) => s !== "" || i === 0);
  const masterName = decodeURIComponent(name ?? "");
  if (!masterName) throw new RedisUrlError("names no master: add /MASTER_NAME after the sentinels");
  if (extra.length > 0) throw new RedisUrlError("has a path longer than /MASTER_NAME/DB");
  const db = dbText === undefined || dbText === "" ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) {
    throw new RedisUrlError("has a database number that is not a whole number");
  }
  return { kind: "sentinel", sentinels: nodes, masterName, db, username, password, tls };
}

function credentials(userinfo: string): { username?: string; password?: string } {
  if (!userinfo) return {};
  const colon = userinfo.indexOf(":");
  const rawUser = colon === -1 ? userinfo : userinfo.slice(0, colon);
  const rawPass = colon === -1 ? undefined : userinfo.slice(colon + 1);
  try {
    const username = rawUser ? decodeURIComponent(rawUser) : undefined;
    const password = rawPass ? decodeURIComponent(rawPass) : undefined;
    return { username, password };
  } catch {
    throw new RedisUrlError("has credentials that are not valid percent-encoding");
  }
}

function endpoint(text: string, index: number): RedisEndpoint {
  // [v6]:port or host:port; the port is required so that a typo cannot silently mean 6379.
  const match = text.match(/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) {
    // Not echoed: a URL whose "@" is missing would show its password here.
    throw new RedisUrlError(`has a node (number ${index + 1} in the list) that is not host:port`);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}
