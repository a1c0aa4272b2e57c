/**
 * @module fake_connection
 * An in-memory {@link DeviceConnection} for unit tests: it records what is published and
 * subscribed, and the test drops and restores the "connection" and delivers messages itself.
 */
import type { DeviceConnection } from "../../devices/device_connection.ts";

export class FakeConnection implements DeviceConnection {
  connected: boolean;
  readonly published: { topic: string; payload: string; qos?: number }[] = [];
  readonly subscriptions: string[] = [];
  readonly #onConnect = new Set<() => void>();
  readonly #onMessage = new Set<(topic: string, payload: Uint8Array) => void>();
  /** Replace to make publishing fail or hang; the default succeeds at once. */
  publishResult: (topic: string) => Promise<void> = () => Promise.resolve();

  constructor(connected = true) {
    this.connected = connected;
  }

  publish(topic: string, payload: string, options?: { qos?: 0 | 1 | 2 }): Promise<void> {
    this.published.push({ topic, payload, qos: options?.qos });
    return this.publishResult(topic);
  }

  subscribe(filters: readonly string[]): Promise<void> {
    this.subscriptions.push(...filters);
    return Promise.resolve();
  }

  onMessage(listener: (topic: string, payload: Uint8Array) => void): () => void {
    this.#onMessage.add(listener);
    return () => void this.#onMessage.delete(listener);
  }

  onConnect(listener: () => void): () => void {
    this.#onConnect.add(listener);
    return () => void this.#onConnect.delete(listener);
  }

  get listenerCount(): number {
    return this.#onConnect.size + this.#onMessage.size;
  }

  drop(): void {
    this.connected = false;
  }

  restore(): void {
    this.connected = true;
    for (const listener of this.#onConnect) listener();
  }

  deliver(topic: string, payload: string): void {
    const bytes = new TextEncoder().encode(payload);
    for (const listener of this.#onMessage) listener(topic, bytes);
  }

  /** The published payloads on `topic`, parsed. */
  payloads(topic: string): Record<string, unknown>[] {
    return this.published.filter((p) => p.topic === topic).map((p) => JSON.parse(p.payload));
  }
}
