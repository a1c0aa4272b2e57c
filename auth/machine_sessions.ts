/**
 * @module machine_sessions
 * Ends a machine's open MQTT sessions when its token is revoked or rotated: a broker checks the
 * token only at CONNECT, so without this a revoked machine would keep publishing on the session it
 * already has. Each broker the gateway can reach registers a {@link SessionCloser}: the embedded
 * broker (same process), EMQX through its REST API (`EMQX_API_URL`).
 */
import { getLogger } from "@logtape/logtape";
import { UnavailableError } from "../lib/errors.ts";

const log = getLogger(["gateway", "auth"]);

export interface SessionCloser {
  /** For logs and errors: "embedded broker", "EMQX". */
  readonly name: string;
  /** Disconnects every client of the machine now; resolves to how many were connected. */
  closeSessions(serialNo: string): Promise<number>;
}

export class MachineSessions {
  readonly #closers: SessionCloser[] = [];

  add(closer: SessionCloser): void {
    this.#closers.push(closer);
  }

  /** Whether any broker can be told; without one, open sessions stay until they end. */
  get enabled(): boolean {
    return this.#closers.length > 0;
  }

  /**
   * Asks every broker to disconnect the machine; throws {@link UnavailableError} naming those that
   * failed (after asking all of them), so the caller can say "retry".
   */
  async close(serialNo: string): Promise<number> {
    const results = await Promise.allSettled(this.#closers.map((c) => c.closeSessions(serialNo)));
    let closed = 0;
    const failed: string[] = [];
    results.forEach((r, i) => {
      const name = this.#closers[i]!.name;
      if (r.status === "fulfilled") closed += r.value;
      else {
        failed.push(`${name}: ${(r.reason as Error).message}`);
        log.warn("Cannot close the sessions of {serialNo} on {name}: {error}", {
          serialNo,
          name,
          error: (r.reason as Error).message,
        });
      }
    });
    if (closed > 0) log.info("Closed {closed} MQTT session(s) of {serialNo}", { closed, serialNo });
    if (failed.length) {
      throw new UnavailableError(`Cannot close the open sessions of ${serialNo} (${failed.join("; ")})`);
    }
    return closed;
  }
}
