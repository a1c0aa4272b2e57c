/**
 * @module machine_auth
 * The {@link BrokerAuth} of the gateway, used by the EMQX HTTP hooks and the embedded broker:
 *
 * - the gateway's own identity (its `MQTT_USERNAME` with `MQTT_PASSWORD`, both non-empty) is a
 *   superuser: it alone may publish to any `machine/+/command`;
 * - a machine connects with username = its serial_no and password = its current token, and a
 *   client id that is its serial_no or starts with `{serial_no}:` (so no machine can take over
 *   another client's session, the gateway's included);
 * - a local service (`MQTT_SERVICE_USERNAME` / `MQTT_SERVICE_PASSWORD`) connects with any client id
 *   and uses only the service topics;
 * - topics follow `machine_acl.ts`; everything else is denied.
 */
import { SERIAL_NO } from "../contract/identity.ts";
import { constantTimeEqual } from "../lib/constant_time_equal.ts";
import type { AuthnResult, BrokerAuth, MqttAction } from "./broker_auth.ts";
import { isTopicAllowed } from "./machine_acl.ts";
import type { MachineCredentials } from "./machine_credentials.ts";

export interface MachineAuthOptions {
  credentials: Pick<MachineCredentials, "verify">;
  /** The gateway's own identity; an empty username or password disables it. */
  gateway: { username: string; password: string };
  /** A local service's identity (`MQTT_SERVICE_USERNAME`), if any. */
  service?: { username: string; password: string };
}

const DENY: AuthnResult = { ok: false, superuser: false };

export class MachineAuth implements BrokerAuth {
  readonly #o: MachineAuthOptions;

  constructor(options: MachineAuthOptions) {
    this.#o = options;
  }

  #isGateway(username: string): boolean {
    return this.#o.gateway.username !== "" && username === this.#o.gateway.username;
  }

  #isService(username: string): boolean {
    return this.#o.service !== undefined && username === this.#o.service.username;
  }

  async authenticate(username: string, password: string, clientId: string): Promise<AuthnResult> {
    if (this.#isService(username)) {
      return { ok: constantTimeEqual(password ?? "", this.#o.service!.password), superuser: false };
    }
    if (this.#isGateway(username)) {
      const expected = this.#o.gateway.password;
      const ok = expected !== "" && constantTimeEqual(password ?? "", expected);
      return { ok, superuser: ok };
    }
    if (!SERIAL_NO.test(username ?? "")) return DENY;
    if (clientId !== username && !clientId?.startsWith(`${username}:`)) return DENY;
    const ok = await this.#o.credentials.verify(username, password ?? "");
    return { ok, superuser: false };
  }

  authorize(username: string, action: MqttAction, topic: string): Promise<boolean> {
    return Promise.resolve(
      isTopicAllowed(
        { username, gateway: this.#isGateway(username), service: this.#isService(username) },
        action,
        topic,
      ),
    );
  }
}
