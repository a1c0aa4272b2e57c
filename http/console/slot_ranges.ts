/**
 * @module slot_ranges
 * The set-stock form's slot field: numbers and ranges such as `1-8` or `1,3,5-7` (commas or spaces),
 * and back (a machine's slots 1…8 and 10 are shown as `1-8,10`). Parsing stops past `limit` numbers,
 * so `1-999999999` costs nothing; the caller's schema then refuses the list as too long.
 */

export const slotRanges = {
  /** The slot numbers written, in order (repeats kept); null when the text is not numbers and ranges. */
  parse(text: string, limit = 1000): number[] | null {
    const parts = text.split(/[\s,]+/).filter((p) => p !== "");
    if (parts.length === 0) return null;
    const slots: number[] = [];
    for (const part of parts) {
      const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(part);
      if (!m) return null;
      const from = Number(m[1]);
      const to = m[2] === undefined ? from : Number(m[2]);
      if (to < from) return null;
      for (let n = from; n <= to && slots.length <= limit; n++) slots.push(n);
      if (slots.length > limit) break;
    }
    return slots;
  },

  /** Sorted slot numbers as ranges: `[1, 2, 3, 5]` → `1-3,5`. */
  format(slots: readonly number[]): string {
    const out: string[] = [];
    const sorted = [...new Set(slots)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; i++) {
      const start = sorted[i]!;
      while (i + 1 < sorted.length && sorted[i + 1] === sorted[i]! + 1) i++;
      out.push(sorted[i] === start ? String(start) : `${start}-${sorted[i]}`);
    }
    return out.join(",");
  },
};
