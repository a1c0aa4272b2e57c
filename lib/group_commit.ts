/**
 * @module group_commit
 * Group commit: an item goes out at once while fewer than `maxInFlight` batches are in flight;
 * beyond that, items wait and leave together in the next single call of `run`. An idle caller pays
 * no added latency; a busy one pays one round trip for many items instead of one each, and a slow
 * round trip does not cap the rate at one batch per round trip. Each caller's promise settles with
 * the batch that carried its item, with that item's own result.
 */

/** One item's result: `run` may fail some items of a batch and not others. */
export type ItemResult<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<I, O> {
  #waiting: Pending<I, O>[] = [];
  #inFlight = 0;

  /**
   * `run` gets the batch in the order items were added and returns one result per item, in that
   * order; if it throws, every item of the batch fails with that error. `maxBatch` bounds one
   * batch, so a burst does not become one huge statement.
   */
  constructor(
    readonly run: (items: I[]) => Promise<ItemResult<O>[]>,
    readonly maxBatch = 1000,
    readonly maxInFlight = 4,
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (this.#inFlight < this.maxInFlight) this.#flush();
    });
  }

  #flush(): void {
    const batch = this.#waiting.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.#inFlight++;
    // `run` is called synchronously: a batch's work starts in the order batches were formed.
    let running: Promise<ItemResult<O>[]>;
    try {
      running = this.run(batch.map((p) => p.item));
    } catch (error) {
      running = Promise.reject(error);
    }
    running.then(
      (results) => {
        batch.forEach((p, i) => {
          const r = results[i];
          if (r === undefined) {
            p.reject(new Error(`Group commit: no result for item ${i} of ${batch.length}`));
          } else if (r.ok) p.resolve(r.value);
          else p.reject(r.error);
        });
      },
      (error) => {
        for (const p of batch) p.reject(error);
      },
    ).finally(() => {
      this.#inFlight--;
      this.#flush();
    });
  }
}
