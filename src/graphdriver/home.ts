/**
 * A driver's home directory under the store root, opened once by fd (a
 * {@link StoreDir}: nothing in it is reached through a symlink) and made
 * only by the first operation that writes: a read-only use of a driver
 * (`strata --driver vfs images` on an overlay store) leaves the root as it
 * found it, so it can never make the store's driver ambiguous.
 *
 * @module
 */
import { access } from "node:fs/promises";
import { hasCode } from "../errors.js";
import { StoreDir } from "../util/store-dir.js";

/** One driver's home (see the module doc). */
export class DriverHome {
  readonly #root: string;
  readonly #rel: string;
  readonly #mode: number;
  #dir: Promise<StoreDir> | undefined;

  /**
   * @param root the store root
   * @param rel the home below it (`overlay`, `vfs/dir`)
   * @param mode of the directories made for it
   */
  constructor(root: string, rel: string, mode: number) {
    this.#root = root;
    this.#rel = rel;
    this.#mode = mode;
  }

  /**
   * The home, made (with missing parents) when `create`.
   * @throws ENOENT without `create` while the home does not exist; ERR_STORE_SYMLINK
   */
  async open(create = false): Promise<StoreDir> {
    if (!this.#dir) {
      const root = await StoreDir.open(this.#root);
      try {
        if (create) await root.mkdirs(this.#rel, this.#mode);
        this.#dir ??= root.sub(this.#rel);
        await this.#dir.catch(() => (this.#dir = undefined));
      } finally {
        await root.close();
      }
    }
    return this.#dir!;
  }

  /** The home when it exists, else null (nothing is made). */
  async existing(): Promise<StoreDir | null> {
    const rootExists = await access(this.#root).then(
      () => true,
      () => false,
    );
    if (!rootExists) return null;
    return this.open(false).catch((err: unknown) => {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    });
  }

  /** Closes the home's fd (it is opened again on next use). */
  async close(): Promise<void> {
    const dir = this.#dir;
    this.#dir = undefined;
    await (await dir?.catch(() => undefined))?.close();
  }
}
