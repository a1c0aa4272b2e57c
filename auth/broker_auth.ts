/**
 * @module broker_auth
 * What a broker asks of the gateway about a client: may it connect, and may it publish or
 * subscribe to a topic. The EMQX HTTP hooks (`http/routes/emqx_hooks.ts`) and the embedded aedes
 * broker both ask the same implementation, so the policy is written once.
 */

export interface AuthnResult {
  ok: boolean;
  /** The gateway's own identity: may publish commands to any machine. */
  superuser: boolean;
}

export type MqttAction = "publish" | "subscribe";

export interface BrokerAuth {
  /** `username` is a machine's serial_no (password: its token) or the gateway's own identity. */
  authenticate(username: string, password: string, clientId: string): Promise<AuthnResult>;
  /** Deny by default: true only for what the policy allows. */
  authorize(username: string, action: MqttAction, topic: string): Promise<boolean>;
}
