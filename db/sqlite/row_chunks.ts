/**
 * @module row_chunks
 * Splits the rows of a batch write into statements whose row counts come from a short fixed list
 * (256, 64, 16, 4, 1), largest first. Each distinct row count is its own SQL text, and SQLite
 * keeps every prepared statement's program in native memory (about 0.5-1 KB per row of a
 * multi-row INSERT, outside V8's heap and unseen by its GC): with a chunk per batch size, the
 * embedded store's statement cache held hundreds of 100-400 KB statements (50+ MB of RSS under
 * load) and re-prepared them all the time. With these sizes a statement kind has at most five
 * texts, and a batch of n rows needs at most 12 + n / 256 statements.
 */

/** The row counts a batch statement may have, largest first. */
export const ROW_CHUNK_SIZES: readonly number[] = [256, 64, 16, 4, 1];

/** `items` in order, cut into consecutive parts whose lengths are all in `sizes` (which must hold 1). */
export function rowChunks<T>(items: readonly T[], sizes: readonly number[] = ROW_CHUNK_SIZES): T[][] {
  const out: T[][] = [];
  let i = 0;
  for (const size of sizes) {
    while (items.length - i >= size) {
      out.push(items.slice(i, i + size));
      i += size;
    }
  }
  if (i < items.length) throw new RangeError("rowChunks: the sizes must include 1");
  return out;
}
