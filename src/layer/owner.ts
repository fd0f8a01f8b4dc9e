/**
 * Store ownership: whose layers a store's driver home holds.
 *
 * A store (one root, one driver) is strata's own by default: its layerdb
 * names every driver layer, and `check`/`prune` remove what it does not name.
 * The engines `strata serve` serves (dockerd, containerd) name their layers
 * themselves and keep their own records, so a store they use must never be
 * opened as strata's own: `check --repair` would delete every one of their
 * layers as an orphan. The owner is recorded in `<layerdb>/owner` when
 * `strata serve` claims a store without layers of strata's own; opening a
 * store for any other owner then fails with ERR_STORE_OWNED, and a store
 * that holds strata's own layers cannot be claimed.
 *
 * @module
 */
import { FailedPreconditionError } from "../errors.js";
import type { StoreDir } from "../util/store-dir.js";

/** The owner of a store without an owner file: strata's own layer store. */
export const STRATA_OWNER = "strata";

const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/;

/** The recorded owner of the layerdb `files` (STRATA_OWNER when none is recorded). */
export async function storeOwner(files: StoreDir): Promise<string> {
  const text = await files.readOptional("owner");
  if (text === null) return STRATA_OWNER;
  const owner = text.trim();
  if (!NAME_RE.test(owner)) {
    throw new FailedPreconditionError(
      "ERR_STORE_OWNED",
      `Cannot open store: unreadable owner file "${files.pathOf("owner")}"`,
    );
  }
  return owner;
}

/**
 * Checks that `want` may open the layerdb `files`, recording it as the owner
 * when an engine opens an empty store for the first time (call under the
 * store lock).
 * @param isEmpty whether the store holds no layer, container or operation of strata's own
 * @throws ERR_STORE_OWNED when the store belongs to someone else, or a
 *   store that holds strata's own layers is asked for by another owner
 */
export async function assertOwner(files: StoreDir, want: string, isEmpty: () => Promise<boolean>): Promise<void> {
  if (!NAME_RE.test(want)) {
    throw new FailedPreconditionError("ERR_STORE_OWNED", `Cannot open store: invalid owner name "${want}"`);
  }
  const found = await storeOwner(files);
  if (found === want) return;
  if (found !== STRATA_OWNER) {
    throw new FailedPreconditionError(
      "ERR_STORE_OWNED",
      `Cannot open store: owned by ${found}, not ${want}; use another --root "${files.path}"`,
    );
  }
  // found is strata (no owner file) and an engine wants it: only while it is empty.
  if (!(await isEmpty())) {
    throw new FailedPreconditionError(
      "ERR_STORE_OWNED",
      `Cannot open store for ${want}: it holds strata's own layers; use another --root "${files.path}"`,
    );
  }
  await files.writeAtomic("owner", `${want}\n`, { mode: 0o644 });
}
