import test from "ava";
import { formatRatio, median, ratio, summarize } from "./stats.js";

test("summarize() takes the median of odd and even sample counts", (t) => {
  t.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3 });
  t.deepEqual(summarize([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 });
  t.is(median([7]), 7);
});

test("median() of no samples is a RangeError, not NaN", (t) => {
  t.throws(() => median([]), { instanceOf: RangeError });
});

test("ratio() is NaN without a positive reference, and formatRatio() prints it as a dash", (t) => {
  t.is(ratio(3, 2), 1.5);
  t.true(Number.isNaN(ratio(1, 0)));
  t.is(formatRatio(ratio(3, 2)), "1.50×");
  t.is(formatRatio(ratio(1, 0)), "–");
});
