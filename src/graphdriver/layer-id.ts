/**
 * What a driver accepts as a layer id, the same for every driver: one safe
 * path component of `[A-Za-z0-9_.-]` starting with a letter or digit, with
 * no `..` and no `.tmp-` (the drivers' own temporary names, see
 * `tmp-names.ts`, so that no id can be mistaken for a leftover to sweep).
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

const LAYER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** True when `id` is a valid layer id. */
export function isValidLayerId(id: string): boolean {
  return LAYER_ID_RE.test(id) && !id.includes("..") && !id.includes(".tmp-");
}

/**
 * Refuses an id that is not a valid layer id.
 * @throws InvalidArgumentError ERR_INVALID_ID
 */
export function assertValidLayerId(id: string): void {
  if (!isValidLayerId(id)) {
    throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot use layer id: invalid id "${id}"`);
  }
}
