/**
 * Byte sizes as Docker reads and prints them (go-units): one formatter,
 * {@link humanSize} (decimal units: `docker images` prints "77.8MB" for
 * 77,800,000 bytes), and one parser, {@link parseSize} (binary units:
 * `--storage-opt size=10G` is 10 GiB, as `RAMInBytes` reads it).
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

const DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/**
 * go-units `HumanSizeWithPrecision`: decimal units, `precision` significant
 * digits, no space. `docker images` uses precision 3, everything else 4.
 * @param bytes a size in bytes
 * @param precision significant digits @default 4
 * @returns e.g. "65.54kB", "107.4GB", "0B"
 * @example
 * humanSize(77_812_345); // "77.81MB"
 * humanSize(77_812_345, 3); // "77.8MB"
 */
export function humanSize(bytes: number, precision = 4): string {
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < DECIMAL_UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(precision))}${DECIMAL_UNITS[i]}`;
}

const BINARY_POWERS = "kmgtp";

/**
 * go-units `RAMInBytes`: a number with an optional binary unit (`k`, `m`,
 * `g`, `t`, `p`, optionally followed by `b` or `ib`, any case).
 * @param value what the user wrote, e.g. "10G", "512m", "64KiB", "4096"
 * @param what what the size is for, named in the error (an option key)
 * @returns whole bytes
 * @throws ERR_INVALID_OPTION (InvalidArgumentError) when `value` is not a size or is out of range
 * @example
 * parseSize("10G", "overlay.size"); // 10737418240
 */
export function parseSize(value: string, what = "size"): number {
  const m = /^\s*(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot parse ${what}: not a size "${value}"`);
  const pow = m[2] ? BINARY_POWERS.indexOf(m[2].toLowerCase()) + 1 : 0;
  const n = Math.floor(Number(m[1]) * 1024 ** pow);
  if (!Number.isSafeInteger(n))
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot parse ${what}: size out of range "${value}"`);
  return n;
}
