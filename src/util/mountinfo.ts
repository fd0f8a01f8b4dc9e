/**
 * Mount table lookups from /proc/self/mountinfo (mount points with their
 * octal escapes decoded).
 *
 * @module
 */
import { readFile } from "node:fs/promises";

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** One line of mountinfo: where, the filesystem's device and its super-block options. */
export interface MountEntry {
  mountPoint: string;
  /** `major:minor` of the mounted filesystem's device (st_dev), e.g. "7:1" for /dev/loop1. */
  device: string;
  superOptions: string[];
}

/** The mount table, in mount order; stacked mounts appear once per mount. */
export async function readMountinfo(): Promise<MountEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length <= 4) continue;
    const sep = f.indexOf("-", 5);
    out.push({
      mountPoint: unescape(f[4]!),
      device: f[2]!,
      superOptions: sep > 0 ? (f[sep + 3] ?? "").split(",") : [],
    });
  }
  return out;
}

/** Every mount point currently in this process's mount namespace. */
export async function mountPoints(): Promise<Set<string>> {
  return new Set((await readMountinfo()).map((m) => m.mountPoint));
}

/** The mount holding `path`: the longest mount point that is `path` or a parent of it (the last when stacked). */
export async function mountOf(path: string): Promise<MountEntry> {
  let best: MountEntry = { mountPoint: "/", device: "", superOptions: [] };
  for (const m of await readMountinfo()) {
    const mp = m.mountPoint;
    const inside = path === mp || path.startsWith(mp.endsWith("/") ? mp : `${mp}/`);
    if (inside && mp.length >= best.mountPoint.length) best = m;
  }
  return best;
}

/** Mount points at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return [...(await mountPoints())].filter((m) => m === dir || m.startsWith(prefix));
}

/** `path` when something is mounted exactly there, else null. */
export async function mountedAt(path: string): Promise<string | null> {
  return (await mountPoints()).has(path) ? path : null;
}
