/**
 * @module errors
 * The few named errors of the gateway. `http/error_handler.ts` maps them to HTTP statuses in one
 * place; the worker treats {@link ValidationError} as permanent (dead-letter at once).
 */

export class GatewayError extends Error {
  readonly status: number = 500;
  readonly code: string = "internal_error";
}

/** Input that can never succeed however often it is retried. */
export class ValidationError extends GatewayError {
  override readonly status = 422;
  override readonly code = "invalid_request";
  override name = "ValidationError";
}

export class NotFoundError extends GatewayError {
  override readonly status = 404;
  override readonly code = "not_found";
  override name = "NotFoundError";
}

export class ConflictError extends GatewayError {
  override readonly status = 409;
  override readonly code = "conflict";
  override name = "ConflictError";
}

export class UnauthorizedError extends GatewayError {
  override readonly status = 401;
  override readonly code = "unauthorized";
  override name = "UnauthorizedError";
}

export class PayloadTooLargeError extends GatewayError {
  override readonly status = 413;
  override readonly code = "payload_too_large";
  override name = "PayloadTooLargeError";
}

/** A dependency (broker, queue, database) cannot be reached right now: retry later. */
export class UnavailableError extends GatewayError {
  override readonly status = 503;
  override readonly code = "unavailable";
  override name = "UnavailableError";
}

/** The client's request could not be read (it went away, or sent a broken body). */
export class BadRequestError extends GatewayError {
  override readonly status = 400;
  override readonly code = "bad_request";
  override name = "BadRequestError";
}

/** The client did not send its request body within the deadline. */
export class RequestTimeoutError extends GatewayError {
  override readonly status = 408;
  override readonly code = "request_timeout";
  override name = "RequestTimeoutError";
}

/**
 * A service the gateway needs at start (database, queue, broker) cannot be used. `problems` has one
 * line per service, each saying what, where and what to check; `main.ts` prints them and exits 1.
 */
export class StartupError extends Error {
  override name = "StartupError";
  constructor(readonly problems: readonly string[], options?: ErrorOptions) {
    super(problems.join("\n"), options);
  }
}
