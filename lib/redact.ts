/**
 * @module redact
 * Keeps secrets out of errors, logs and status pages: a URL's password (`scheme://user:pass@host`)
 * anywhere in a text becomes `***`, and a URL whose path or query may itself be the secret (a
 * webhook) is shown by its origin only.
 */

const USERINFO_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)[^\s/?#@]*@/gi;

/** `text` with the password of every `scheme://user:password@…` in it replaced by `***`. */
export function redactUrlPasswords(text: string): string {
  return text.replace(USERINFO_PASSWORD, "$1***@");
}

/** `scheme://host:port` of a URL (no user, password, path or query); "(not a URL)" otherwise. */
export function urlOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "(not a URL)";
  }
}
