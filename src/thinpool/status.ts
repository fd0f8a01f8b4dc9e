/**
 * The thin-pool status line, one parser for both targets. The kernel's
 * dm-thin prints (after `dmsetup status`'s `<start> <length> thin-pool`):
 * `<transaction> <used meta>/<total meta> <used data>/<total data> <held root> <mode> <discard> <no-space policy> <needs_check> <meta low water>`;
 * kernels before 4.19 stop before the low-water mark, before 4.10 before
 * `needs_check`, and a failed pool prints `Fail` alone. strata-poold prints
 * every field.
 *
 * @module
 */
import { PoolError } from "./errors.js";

/** A parsed thin-pool status line. Block counts are in metadata blocks (4 KiB) and data blocks. */
export interface PoolStatus {
  transactionId: number;
  usedMetadataBlocks: number;
  totalMetadataBlocks: number;
  usedDataBlocks: number;
  totalDataBlocks: number;
  /** The held metadata root (a metadata snapshot), null when none. */
  heldMetadataRoot: number | null;
  mode: "rw" | "ro" | "out_of_data_space";
  discardPassdown: boolean;
  errorIfNoSpace: boolean;
  needsCheck: boolean;
  /** Free metadata blocks below which the kernel raises an event; 0 when not printed. */
  metadataLowWatermark: number;
}

const LINE =
  /^(?:\d+ \d+ thin-pool )?(\d+) (\d+)\/(\d+) (\d+)\/(\d+) (-|\d+) (rw|ro|out_of_data_space)(?: (discard_passdown|no_discard_passdown))?(?: (error_if_no_space|queue_if_no_space))?(?: (needs_check|-))?(?: (\d+))?$/;

/**
 * Parses a status line, with or without `dmsetup status`'s `<start> <length> thin-pool` prefix.
 * @throws PoolError ERR_POOL_TARGET for a failed pool (`Fail`) or a line that is not a thin-pool status
 */
export function parseStatus(line: string): PoolStatus {
  const text = line.trim();
  const m = LINE.exec(text);
  if (!m) {
    if (/^(?:\d+ \d+ thin-pool )?Fail$/.test(text))
      throw new PoolError("ERR_POOL_TARGET", "Cannot read the thin pool status: the pool failed");
    throw new PoolError("ERR_POOL_TARGET", `Cannot parse the thin-pool status "${text}"`);
  }
  return {
    transactionId: Number(m[1]),
    usedMetadataBlocks: Number(m[2]),
    totalMetadataBlocks: Number(m[3]),
    usedDataBlocks: Number(m[4]),
    totalDataBlocks: Number(m[5]),
    heldMetadataRoot: m[6] === "-" ? null : Number(m[6]),
    mode: m[7] as PoolStatus["mode"],
    discardPassdown: m[8] !== "no_discard_passdown",
    errorIfNoSpace: m[9] === "error_if_no_space",
    needsCheck: m[10] === "needs_check",
    metadataLowWatermark: m[11] === undefined ? 0 : Number(m[11]),
  };
}
