/**
 * @module device_connection
 * The part of the gateway's broker connection (`mqtt/mqtt_connection.ts`, `MqttConnection`)
 * that the device service uses, so it never opens a client of its own and tests can hand it a fake.
 */

export interface DeviceConnection {
  /** True while the client is connected to the broker. */
  readonly connected: boolean;
  /** Resolves when the broker has it (PUBACK for QoS 1). */
  publish(topic: string, payload: string, options?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<void>;
  /** Subscribes now if connected, and again after every reconnect that lost the session. */
  subscribe(filters: readonly string[], qos?: 0 | 1 | 2): Promise<void>;
  /** Every incoming message. Returns a function that removes the listener. */
  onMessage(listener: (topic: string, payload: Uint8Array) => void): () => void;
  /** Every (re)connection. Returns a function that removes the listener. */
  onConnect(listener: () => void): () => void;
}
