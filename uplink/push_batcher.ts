/**
 * @module push_batcher
 * Group commit for queue pushes ({@link GroupCommit}): a busy gateway sends one RPUSH for many
 * messages instead of one each (the per-command cost of the Redis client was most of the uplink's
 * CPU per message). Redis runs the pushes of one connection in the order they were sent. Each
 * caller's promise settles with the push that carried its element, so a PUBACK still follows its
 * own stored job.
 */
import { GroupCommit } from "../lib/group_commit.ts";
import type { ReliableQueue } from "../queue/reliable_queue.ts";

export class PushBatcher {
  readonly #group: GroupCommit<string, void>;

  /** `maxBatch` bounds one push, so a burst does not become one huge command. */
  constructor(queue: Pick<ReliableQueue, "push">, maxBatch = 1000, maxInFlight = 4) {
    this.#group = new GroupCommit<string, void>(
      async (raws) => {
        await queue.push(...raws);
        return raws.map(() => ({ ok: true, value: undefined }));
      },
      maxBatch,
      maxInFlight,
    );
  }

  push(raw: string): Promise<void> {
    return this.#group.add(raw);
  }
}
