/**
 * Building a layer directory: a temporary `<id>.tmp-*` directory is filled
 * (diff/, link, lower, work/, or a flattened copy of the parent) and renamed
 * into place, so a crash never leaves a half-made layer under a real id;
 * the driver's start sweeps the leftovers.
 *
 * A chain deeper than the lower limit is **flattened**: the new layer gets
 * no lowers, and its diff/ starts as a full copy of the parent's merged
 * view (a private read-only overlay mount copied with `cp -a`, which keeps
 * owners, modes, nanosecond times, xattrs, devices and hardlinks).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { StrataError } from "../../errors.js";
import type { StoreDir } from "../../util/store-dir.js";
import { tmpName } from "../../util/tmp-names.js";
import { generateLinkId, Layout } from "./layout.js";
import { type MountFeatures, mountOverlay, unmountOverlay } from "./mount.js";

const run = promisify(execFile);
const RENAME_NOREPLACE = 1;

/** What `create` decided for the new layer. */
export interface NewLayer {
  id: string;
  parent: string;
  /** `l/<short>` lowers, direct parent first ([] for a base or flattened layer). */
  lowers: string[];
  /** Parent's chain is too deep: copy it instead of stacking on it. */
  flatten: boolean;
}

/**
 * Creates the layer directory and its `l/` link in the home `files`; the
 * caller holds the id's lock.
 */
export async function buildLayer(layout: Layout, files: StoreDir, spec: NewLayer, features: MountFeatures) {
  const tmp = await tmpName(spec.id);
  const link = generateLinkId();
  try {
    await files.mkdir(tmp, 0o700);
    await files.mkdir(`${tmp}/diff`, 0o755);
    await files.writeFile(`${tmp}/link`, link, 0o644);
    if (spec.flatten) {
      const lowers = await layout.lowers(spec.parent);
      for (const l of lowers) await layout.lowerLayer(l); // each l/ link is a layer's diff dir
      await copyMergedView(layout, spec.parent, lowers, files.pathOf(tmp), features);
      await files.writeFile(`${tmp}/flattened`, spec.parent, 0o644);
    } else if (spec.lowers.length > 0) {
      await files.writeFile(`${tmp}/lower`, spec.lowers.join(":"), 0o644);
      await files.mkdir(`${tmp}/work`, 0o700);
    }
    await files.rename(tmp, spec.id, RENAME_NOREPLACE);
    await files.symlink(`../${spec.id}/diff`, `l/${link}`);
    if (spec.parent) await files.writeFile(`${spec.parent}/committed`, "", 0o644);
  } catch (err) {
    await files.removeTree(tmp).catch(() => undefined);
    if (err instanceof StrataError) throw err;
    throw new StrataError("ERR_DRIVER", `Cannot create layer: ${(err as Error).message} "${spec.id}"`, { cause: err });
  }
}

/**
 * Copies what `parent` (with `lowers`, checked) shows when mounted into
 * `<scratch>/diff`, through a private read-only mount in `scratch`.
 */
async function copyMergedView(
  layout: Layout,
  parent: string,
  lowers: string[],
  scratch: string,
  features: MountFeatures,
): Promise<void> {
  const dest = join(scratch, "diff");
  if (lowers.length === 0) {
    await run("cp", ["-a", "--reflink=auto", "--no-target-directory", layout.diff(parent), dest]);
    return;
  }
  const target = join(scratch, "flatten-src");
  await mkdir(target, { mode: 0o700 });
  const rel = (p: string) => p.slice(layout.home.length + 1);
  await mountOverlay(
    { home: layout.home, lowers: [rel(layout.diff(parent)), ...lowers], target: rel(target), readOnly: true },
    features,
  );
  try {
    await run("cp", ["-a", "--reflink=auto", "--no-target-directory", target, dest]);
  } finally {
    await unmountOverlay(target);
  }
}
