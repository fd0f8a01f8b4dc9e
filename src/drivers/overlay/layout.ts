/**
 * The overlay2 on-disk layout, one place that knows every path:
 *
 * ```
 * <home>/<id>/diff/       the layer's own changes (the overlay upper dir)
 * <home>/<id>/link        26-char short name of this layer
 * <home>/<id>/lower       "l/<short>:l/<short>:…", direct parent first (absent: no lowers)
 * <home>/<id>/work/       overlay work dir (only with lowers)
 * <home>/<id>/merged/     mount point, exists only while mounted
 * <home>/<id>/committed   marker: a child exists, mount read-only
 * <home>/<id>/flattened   the parent id when the chain was too deep and diff/ holds a full copy
 * <home>/l/<short>        symlink to ../<id>/diff
 * ```
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { hasCode, InvalidArgumentError } from "../../errors.js";
import { assertValidLayerId } from "../../graphdriver/layer-id.js";

/** Length of the short link names; (26 + "l/" + ":") × 128 fits a page with room to spare. */
export const LINK_ID_LENGTH = 26;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** A random 26-character base32 name for `l/`. */
export function generateLinkId(): string {
  const bytes = randomBytes(LINK_ID_LENGTH);
  let s = "";
  for (const b of bytes) s += BASE32[b & 31];
  return s;
}

/** Reads a small text file, or `null` when it does not exist. */
export async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if (hasCode(err, "ENOENT", "ENOTDIR")) return null;
    throw err;
  }
}

/** Paths of the overlay driver's home. */
export class Layout {
  readonly home: string;
  readonly linkDir: string;

  constructor(home: string) {
    this.home = home;
    this.linkDir = join(home, "l");
  }

  dir(id: string): string {
    assertValidLayerId(id);
    return join(this.home, id);
  }
  diff(id: string): string {
    return join(this.dir(id), "diff");
  }
  work(id: string): string {
    return join(this.dir(id), "work");
  }
  merged(id: string): string {
    return join(this.dir(id), "merged");
  }
  /** `l/<short>`, relative to home, as it appears in `lower` files and mount data. */
  static linkRel(short: string): string {
    return `l/${short}`;
  }

  /** The layer's short link name. */
  async link(id: string): Promise<string> {
    const s = (await readFile(join(this.dir(id), "link"), "utf8")).trim();
    if (s.length !== LINK_ID_LENGTH || !/^[A-Z2-7]+$/.test(s)) {
      throw new InvalidArgumentError(
        "ERR_LAYER_CORRUPT",
        `Cannot read layer: bad link file "${join(this.dir(id), "link")}"`,
      );
    }
    return s;
  }

  /** The layer's lowers as `l/<short>` entries, direct parent first; [] for none. */
  async lowers(id: string): Promise<string[]> {
    const s = await readOptional(join(this.dir(id), "lower"));
    return s === null || s.trim() === "" ? [] : s.trim().split(":");
  }

  /** The parent id a flattened layer was copied from, or null. */
  async flattenedFrom(id: string): Promise<string | null> {
    const s = await readOptional(join(this.dir(id), "flattened"));
    return s === null ? null : s.trim();
  }

  /** Whether a child was created on this layer (it then mounts read-only). */
  async committed(id: string): Promise<boolean> {
    return (await readOptional(join(this.dir(id), "committed"))) !== null;
  }

  /** Absolute diff dir of a `l/<short>` entry, resolving the symlink text. */
  async lowerDiffDir(rel: string): Promise<string> {
    return join(this.linkDir, await readlink(join(this.home, rel)));
  }
}
