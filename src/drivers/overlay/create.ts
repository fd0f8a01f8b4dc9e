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
import { tmpName } from "../../graphdriver/tmp-names.js";
import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { StrataError } from "../../errors.js";
import { generateLinkId, Layout } from "./layout.js";
import { type MountFeatures, mountOverlay, unmountOverlay } from "./mount.js";

const run = promisify(execFile);

/** What `create` decided for the new layer. */
export interface NewLayer {
  id: string;
  parent: string;
  /** `l/<short>` lowers, direct parent first ([] for a base or flattened layer). */
  lowers: string[];
  /** Parent's chain is too deep: copy it instead of stacking on it. */
  flatten: boolean;
}

/** Creates the layer directory and its `l/` link; the caller holds the id's lock. */
export async function buildLayer(layout: Layout, spec: NewLayer, features: MountFeatures): Promise<void> {
  const dir = layout.dir(spec.id);
  const tmp = await tmpName(dir);
  const link = generateLinkId();
  const linkPath = join(layout.linkDir, link);
  try {
    await mkdir(tmp, { mode: 0o700 });
    await mkdir(join(tmp, "diff"), { mode: 0o755 });
    await writeFile(join(tmp, "link"), link);
    if (spec.flatten) {
      await copyMergedView(layout, spec.parent, join(tmp, "diff"), tmp, features);
      await writeFile(join(tmp, "flattened"), spec.parent);
    } else if (spec.lowers.length > 0) {
      await writeFile(join(tmp, "lower"), spec.lowers.join(":"));
      await mkdir(join(tmp, "work"), { mode: 0o700 });
    }
    await rename(tmp, dir);
    await symlink(`../${spec.id}/diff`, linkPath);
    if (spec.parent) await writeFile(join(layout.dir(spec.parent), "committed"), "");
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof StrataError) throw err;
    throw new StrataError("ERR_DRIVER", `Cannot create layer: ${(err as Error).message} "${spec.id}"`, { cause: err });
  }
}

/** Copies what `parent` shows when mounted into `dest`, through a private read-only mount in `scratch`. */
async function copyMergedView(
  layout: Layout,
  parent: string,
  dest: string,
  scratch: string,
  features: MountFeatures,
): Promise<void> {
  const lowers = await layout.lowers(parent);
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
