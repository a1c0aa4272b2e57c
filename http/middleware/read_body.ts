/**
 * @module read_body
 * Reads a request's body before the route runs, with a size cap and a deadline: a body over
 * `maxBytes` is 413 (before a byte is read when `Content-Length` says so), a body still arriving
 * after `timeoutMs` is 408, and a body the client broke off is 400 (the client is gone; nobody
 * reads that answer). The route then reads the body from memory. Without a deadline one slow
 * client (a chunk every few seconds) held its request, and an in-flight slot, for as long as it
 * liked.
 */
import type { MiddlewareHandler } from "hono";
import { BadRequestError, PayloadTooLargeError, RequestTimeoutError } from "../../lib/errors.ts";

export interface ReadBodyOptions {
  maxBytes: number;
  /** From the route's start until the body's last byte. */
  timeoutMs: number;
}

export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

/**
 * The whole body of `raw` (empty when it has none); throws {@link PayloadTooLargeError},
 * {@link RequestTimeoutError} or {@link BadRequestError}, and cancels the body when it gives up.
 */
export async function readBodyBytes(raw: Request, o: ReadBodyOptions): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () =>
    new PayloadTooLargeError(`Request body exceeds ${o.maxBytes} bytes (HTTP_MAX_BODY_BYTES)`);
  if (!raw.body) return new Uint8Array(0);
  const declared = raw.headers.get("content-length");
  if (declared !== null && !raw.headers.has("transfer-encoding") && Number(declared) > o.maxBytes) {
    raw.body.cancel().catch(() => {});
    throw tooLarge();
  }
  const reader = raw.body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, o.timeoutMs);
  const late = () => new RequestTimeoutError(`Request body not received within ${o.timeoutMs} ms`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > o.maxBytes) {
        reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof PayloadTooLargeError) throw error;
    if (timedOut) throw late();
    throw new BadRequestError("The request body could not be read (the client closed it)", { cause: error });
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) throw late();
  if (chunks.length === 1 && chunks[0]!.buffer instanceof ArrayBuffer) {
    return chunks[0] as Uint8Array<ArrayBuffer>;
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

/** Reads the body (see {@link readBodyBytes}) before the route, which then reads it from memory. */
export function readBody(o: ReadBodyOptions): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    if (!raw.body) return next();
    const body = await readBodyBytes(raw, o);
    c.req.raw = new Request(raw, { body });
    await next();
  };
}
