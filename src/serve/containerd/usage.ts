/**
 * Disk usage of a snapshot, as containerd measures it: the allocated bytes
 * (`st_blocks` × 512) and the number of inodes of a tree, each inode
 * (hardlinks) counted once. The tree is the layer's own directory when the
 * driver keeps one (overlay: the upper dir, the snapshot's own changes;
 * vfs: the full copy), else (devmapper) the layer's filesystem, mounted
 * privately from its `mountSpec` for the walk.
 *
 * @module
 */
import { lstat, mkdtemp, opendir, readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { hasCode, StrataError } from "../../errors.js";
import type { Driver } from "../../graphdriver/driver.js";
import { C, mount, umount2 } from "../../native.js";
import type { Usage } from "./metadata.js";

/**
 * Walks `dir` without following symlinks or crossing into other mounts.
 * Checks `signal` between directories, so a cancelled request stops early.
 */
export async function diskUsage(dir: string, signal?: AbortSignal): Promise<Usage> {
  const root = await lstat(dir, { bigint: true });
  const seen = new Set<bigint>();
  let size = 0;
  const stack = [dir];
  while (stack.length > 0) {
    signal?.throwIfAborted();
    const d = stack.pop()!;
    const st = await lstat(d, { bigint: true });
    if (!seen.has(st.ino)) {
      seen.add(st.ino);
      size += Number(st.blocks) * 512;
    }
    for await (const ent of await opendir(d)) {
      const p = join(d, ent.name);
      let s;
      try {
        s = await lstat(p, { bigint: true });
      } catch (err) {
        if (hasCode(err, "ENOENT")) continue; // removed while we walk (an active snapshot)
        throw err;
      }
      if (s.dev !== root.dev) continue;
      if (s.isDirectory()) {
        stack.push(p);
      } else if (!seen.has(s.ino)) {
        seen.add(s.ino);
        size += Number(s.blocks) * 512;
      }
    }
  }
  return { size, inodes: seen.size };
}

/** MS_* flags a containerd mount option stands for; other options go to the filesystem. */
const FLAG_OPTIONS: Record<string, number> = { ro: C.MS_RDONLY, rw: 0 };

/**
 * Usage of driver layer `id`: its own directory from `metadata` (UpperDir,
 * else Dir), or its filesystem mounted privately from a one-device
 * `mountSpec` (mounted read-only when `readonly`) on a temporary
 * `usage-*` directory in `scratch` ({@link sweepUsageMounts} removes those
 * a crash left).
 */
export async function layerUsage(
  driver: Driver,
  id: string,
  readonly: boolean,
  scratch: string,
  signal?: AbortSignal,
): Promise<Usage> {
  const md = await driver.metadata(id);
  const dir = md.UpperDir ?? md.Dir;
  if (dir) return diskUsage(dir, signal);
  const specs = await driver.mountSpec(id, { readonly });
  const spec = specs[0];
  if (specs.length !== 1 || !spec || !spec.source.startsWith("/dev/")) {
    throw new StrataError("ERR_USAGE", `Cannot measure snapshot usage: no directory and no device for layer "${id}"`);
  }
  let flags = 0;
  const data: string[] = [];
  for (const o of spec.options) {
    if (o in FLAG_OPTIONS) flags |= FLAG_OPTIONS[o]!;
    else data.push(o);
  }
  const target = await mkdtemp(join(scratch, "usage-"));
  try {
    await mount(spec.source, target, spec.type, flags, data.join(",") || null);
    try {
      return await diskUsage(target, signal);
    } finally {
      await umount2(target, C.MNT_DETACH);
    }
  } finally {
    await rmdir(target);
  }
}

/** Unmounts and removes the `usage-*` directories of `scratch` (left by a crash mid-walk). */
export async function sweepUsageMounts(scratch: string): Promise<void> {
  for (const name of await readdir(scratch)) {
    if (!name.startsWith("usage-")) continue;
    const dir = join(scratch, name);
    await umount2(dir, C.MNT_DETACH).catch((err: unknown) => {
      if (!hasCode(err, "EINVAL", "ENOENT")) throw err;
    });
    await rmdir(dir);
  }
}
