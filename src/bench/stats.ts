/**
 * The statistics every benchmark reports: the median (with min and max) of
 * a set of samples, and the ratio of two medians. One implementation, used
 * by the `strata bench` harness and by every standalone program.
 *
 * @module
 */

/** Median, min and max of a set of samples. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

/**
 * The median of `samples` (the mean of the middle two for an even count).
 * @throws RangeError for an empty list: a median of nothing is a bug in the caller
 */
export function median(samples: readonly number[]): number {
  return summarize(samples).median;
}

/**
 * Median, min and max of `samples`.
 * @throws RangeError for an empty list
 */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError("Cannot summarize: no samples");
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const med = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median: med, min: s[0]!, max: s[s.length - 1]! };
}

/** `value / reference`, or NaN when the reference is not a positive number (nothing to compare with). */
export function ratio(value: number, reference: number): number {
  return reference > 0 ? value / reference : Number.NaN;
}

/** A ratio as printed in every report: two decimals and "×", or "–" when there is none. */
export function formatRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : "–";
}
