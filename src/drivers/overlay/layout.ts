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
 * Everything is read through the home's {@link StoreDir}: no symlink is
 * followed except the `l/` links, whose text is checked to be exactly
 * `../<id>/diff` of a real layer before the kernel is given them; `lower`
 * entries must be `l/<short>`. Anything else is a tampered store
 * (ERR_STORE_SYMLINK, ERR_LAYER_CORRUPT).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { hasCode, InvalidArgumentError, StrataError } from "../../errors.js";
import { assertValidLayerId } from "../../graphdriver/layer-id.js";
import type { StoreDir } from "../../util/store-dir.js";

/** Length of the short link names; (26 + "l/" + ":") × 128 fits a page with room to spare. */
export const LINK_ID_LENGTH = 26;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const LINK_RE = /^[A-Z2-7]{26}$/;
const LOWER_RE = /^l\/[A-Z2-7]{26}$/;
const LINK_TARGET_RE = /^\.\.\/([A-Za-z0-9][A-Za-z0-9_.-]*)\/diff$/;

/** A random 26-character base32 name for `l/`. */
export function generateLinkId(): string {
  const bytes = randomBytes(LINK_ID_LENGTH);
  let s = "";
  for (const b of bytes) s += BASE32[b & 31];
  return s;
}

function corrupt(what: string, path: string): InvalidArgumentError {
  return new InvalidArgumentError("ERR_LAYER_CORRUPT", `Cannot read layer: ${what} "${path}"`);
}

/** Paths of the overlay driver's home, and its small files read safely. */
export class Layout {
  readonly home: string;
  readonly linkDir: string;
  readonly #files: () => Promise<StoreDir>;

  /**
   * @param files the home, opened by fd (it rejects with ENOENT while the
   *   home does not exist: then no layer does)
   */
  constructor(home: string, files: () => Promise<StoreDir>) {
    this.home = home;
    this.linkDir = join(home, "l");
    this.#files = files;
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

  /** A small file of layer `id`, or null when it does not exist. */
  async #read(id: string, name: string): Promise<string | null> {
    assertValidLayerId(id);
    try {
      return await (await this.#files()).readOptional(`${id}/${name}`);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /** The layer's short link name. */
  async link(id: string): Promise<string> {
    const s = (await this.#read(id, "link"))?.trim();
    if (s === undefined) {
      throw Object.assign(new Error(`no link file "${join(this.dir(id), "link")}"`), { code: "ENOENT" });
    }
    if (!LINK_RE.test(s)) throw corrupt("bad link file", join(this.dir(id), "link"));
    return s;
  }

  /** The layer's lowers as `l/<short>` entries, direct parent first; [] for none. */
  async lowers(id: string): Promise<string[]> {
    const s = (await this.#read(id, "lower"))?.trim();
    if (!s) return [];
    const lowers = s.split(":");
    if (!lowers.every((l) => LOWER_RE.test(l))) throw corrupt("bad lower file", join(this.dir(id), "lower"));
    return lowers;
  }

  /** The parent id a flattened layer was copied from, or null. */
  async flattenedFrom(id: string): Promise<string | null> {
    const s = await this.#read(id, "flattened");
    if (s === null) return null;
    const from = s.trim();
    if (from) assertValidLayerId(from);
    return from;
  }

  /** Whether a child was created on this layer (it then mounts read-only). */
  async committed(id: string): Promise<boolean> {
    assertValidLayerId(id);
    return (await (await this.#files()).lstat(`${id}/committed`).catch(() => null)) !== null;
  }

  /**
   * The layer id an `l/<short>` entry stands for, after checking that the
   * link says exactly `../<id>/diff` and that directory is a real one.
   * @throws ERR_STORE_SYMLINK for a link that points anywhere else
   */
  async lowerLayer(rel: string): Promise<string> {
    const files = await this.#files();
    const target = await files.readlink(rel);
    const m = LINK_TARGET_RE.exec(target);
    const id = m?.[1];
    if (!id || id.includes("..") || !(await files.lstat(`${id}/diff`))?.isDirectory) {
      throw new StrataError(
        "ERR_STORE_SYMLINK",
        `Cannot use layer: a link of the store points outside its layers (${target}) "${join(this.home, rel)}"`,
      );
    }
    return id;
  }

  /** Absolute diff dir of a `l/<short>` entry, checked as {@link lowerLayer} does. */
  async lowerDiffDir(rel: string): Promise<string> {
    return this.diff(await this.lowerLayer(rel));
  }
}
