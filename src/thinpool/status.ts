/**
 * The thin-pool status line, as the kernel's dm-thin prints it:
 * `<transaction> <used meta>/<total meta> <used data>/<total data> <held root> <mode> <discard> <no-space policy> <needs_check> <meta low water>`.
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
  heldMetadataRoot: number | null;
  mode: "rw" | "ro" | "out_of_data_space" | "fail";
  discardPassdown: boolean;
  errorIfNoSpace: boolean;
  needsCheck: boolean;
  metadataLowWatermark: number;
}

/** Parses a status line; throws ERR_POOL_DAEMON when it is malformed. */
export function parseStatus(line: string): PoolStatus {
  const m =
    /^(\d+) (\d+)\/(\d+) (\d+)\/(\d+) (-|\d+) (rw|ro|out_of_data_space|fail) (discard_passdown|no_discard_passdown) (error_if_no_space|queue_if_no_space) (needs_check|-) (\d+)$/.exec(
      line.trim(),
    );
  if (!m) throw new PoolError("ERR_POOL_DAEMON", `Cannot parse the pool status line "${line}"`);
  return {
    transactionId: Number(m[1]),
    usedMetadataBlocks: Number(m[2]),
    totalMetadataBlocks: Number(m[3]),
    usedDataBlocks: Number(m[4]),
    totalDataBlocks: Number(m[5]),
    heldMetadataRoot: m[6] === "-" ? null : Number(m[6]),
    mode: m[7] as PoolStatus["mode"],
    discardPassdown: m[8] === "discard_passdown",
    errorIfNoSpace: m[9] === "error_if_no_space",
    needsCheck: m[10] === "needs_check",
    metadataLowWatermark: Number(m[11]),
  };
}
