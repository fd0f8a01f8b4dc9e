/**
 * Names of the pool and its thin devices (Docker's scheme): a prefix from
 * the driver home's device and inode, so that every root has its own names
 * and never collides with another strata root or with Docker's pool.
 *
 * @module
 */
import { stat } from "node:fs/promises";
import { fileOf } from "./metadata.js";

/** Docker's device prefix from the home's dev:inode, old 12/20-bit major/minor encoding. */
export async function devicePrefix(home: string): Promise<string> {
  const st = await stat(home);
  const dev = st.dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `strata-${major}:${minor}-${st.ino}`;
}

/** Thin device name: `<prefix>-<hash>`, `<prefix>-base` for the base device (hash ""). */
export type DeviceNamer = (hash: string) => string;

/** The {@link DeviceNamer} of a prefix. */
export function deviceNamer(prefix: string): DeviceNamer {
  return (hash) => `${prefix}-${fileOf(hash)}`;
}
