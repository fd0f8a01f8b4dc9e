/**
 * Driver options (`--storage-opt overlay.<key>=<value>`), parsed once into
 * a frozen config.
 *
 * | option | meaning |
 * |---|---|
 * | `overlay.max_lowers` | lowers a layer may have before a new layer is flattened (1…499; default: what the kernel allows) |
 * | `overlay.naive_diff` | `true`: never read the upper dir alone for diff/diffSize |
 * | `overlay.size` | default size limit of read-write layers (needs xfs with prjquota) |
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";

/** The kernel's lower-directory limit (OVL_MAX_STACK), found by experiment: 500 mounts, 501 is EINVAL. */
export const KERNEL_MAX_LOWERS = 500;
/**
 * Lowers that fit one page of mount(2) data with `l/<short>` relative paths
 * and a long id (Docker's maxDepth), for kernels without `lowerdir+`.
 */
export const PAGE_MAX_LOWERS = 128;

/** The overlay driver's options, parsed. */
export interface OverlayConfig {
  /** Explicit max lowers, or undefined for the kernel's limit. */
  readonly maxLowers: number | undefined;
  readonly forceNaiveDiff: boolean;
  /** Default quota for read-write layers, bytes; 0 = none. */
  readonly defaultSize: number;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
};

/**
 * Parses a size such as `10G`, `512M`, `4096` (binary units, as Docker's RAMInBytes).
 * @throws ERR_INVALID_OPTION
 */
export function parseSize(value: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b?)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot parse ${what}: not a size "${value}"`);
  }
  return Math.floor(Number(m[1]) * unit);
}

/**
 * Parses the `overlay.*` driver options; other drivers' keys are ignored.
 * @throws ERR_INVALID_OPTION for an unknown key or a bad value
 */
export function parseConfig(options: Record<string, string>): OverlayConfig {
  let maxLowers: number | undefined;
  let forceNaiveDiff = false;
  let defaultSize = 0;
  for (const [key, value] of Object.entries(options)) {
    if (!key.startsWith("overlay.")) continue;
    switch (key) {
      case "overlay.max_lowers": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > KERNEL_MAX_LOWERS - 1) {
          throw new InvalidArgumentError(
            "ERR_INVALID_OPTION",
            `Cannot start overlay: overlay.max_lowers must be an integer 1…${KERNEL_MAX_LOWERS - 1} "${value}"`,
          );
        }
        maxLowers = n;
        break;
      }
      case "overlay.naive_diff":
        if (value !== "true" && value !== "false") {
          throw new InvalidArgumentError(
            "ERR_INVALID_OPTION",
            `Cannot start overlay: overlay.naive_diff must be true or false "${value}"`,
          );
        }
        forceNaiveDiff = value === "true";
        break;
      case "overlay.size":
        defaultSize = parseSize(value, "overlay.size");
        break;
      default:
        throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot start overlay: unknown option "${key}"`);
    }
  }
  return Object.freeze({ maxLowers, forceNaiveDiff, defaultSize });
}
