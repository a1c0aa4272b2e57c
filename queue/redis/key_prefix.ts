/**
 * @module key_prefix
 * The prefix of the gateway's own keys beside a list `Q`: `{Q}`, a Redis Cluster hash tag, so that
 * `{Q}:processing:…`, `{Q}:delayed` … hash to the same slot as `Q` itself (a key's slot is the
 * hash of what is between its first `{` and the next `}`) and one script may touch them all. On a
 * single Redis the braces are just characters. A name that carries a hash tag already (`a{b}`)
 * is its own prefix: `a{b}:delayed` hashes like it.
 */

/** `{name}`, or `name` when it has a hash tag of its own (or braces that would break one). */
export function keyPrefix(name: string): string {
  return name.includes("{") || name.includes("}") ? name : `{${name}}`;
}
