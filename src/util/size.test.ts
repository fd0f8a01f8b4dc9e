/** The one size formatter and parser: go-units HumanSize and RAMInBytes. */
import test from "ava";
import { humanSize, parseSize } from "./size.js";

test("humanSize() prints go-units HumanSize: decimal units, 4 significant digits", (t) => {
  t.is(humanSize(0), "0B");
  t.is(humanSize(999), "999B");
  t.is(humanSize(1000), "1kB");
  t.is(humanSize(65536), "65.54kB");
  t.is(humanSize(128_200_000), "128.2MB");
  t.is(humanSize(100 * 1024 ** 3), "107.4GB");
  t.is(humanSize(2 * 1024 ** 3), "2.147GB");
});

test("humanSize() with precision 3 is what docker images prints", (t) => {
  t.is(humanSize(77_812_345, 3), "77.8MB");
  t.is(humanSize(1_240_000, 3), "1.24MB");
  t.is(humanSize(4_261_000, 3), "4.26MB");
});

test("parseSize() reads RAMInBytes forms in binary units", (t) => {
  t.is(parseSize("512M"), 512 * 1024 ** 2);
  t.is(parseSize("2g"), 2 * 1024 ** 3);
  t.is(parseSize("10GiB"), 10 * 1024 ** 3);
  t.is(parseSize("64kb"), 65536);
  t.is(parseSize("1.5k"), 1536);
  t.is(parseSize("4096"), 4096);
  t.is(parseSize("1 p"), 1024 ** 5);
});

test("parseSize() rejects what is not a size with ERR_INVALID_OPTION naming the option", (t) => {
  for (const bad of ["ten", "", "1x", "-1", "1.2.3G", "1e3"]) {
    const err = t.throws(() => parseSize(bad, "overlay.size"), { code: "ERR_INVALID_OPTION" });
    t.regex(err.message, /^Cannot parse overlay\.size: /);
  }
  t.throws(() => parseSize("99999999999P"), { code: "ERR_INVALID_OPTION", message: /out of range/ });
});
