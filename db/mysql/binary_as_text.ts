/**
 * @module binary_as_text
 * A mysql2 `typeCast` that reads `VARBINARY` / `VARCHAR` values as UTF-8 text. The identity
 * columns are `VARBINARY` (exact comparison, see schema.ts); without this mysql2 hands them back as
 * Buffers. Every pool that reads those columns (the store's, the tests', the bench's) uses it.
 */

/** The part of mysql2's typeCast field this needs. */
interface CastField {
  type: string;
  string(encoding?: string): string | null;
}

export function binaryAsText(field: CastField, next: () => unknown): unknown {
  return field.type === "VAR_STRING" ? field.string("utf8") : next();
}
