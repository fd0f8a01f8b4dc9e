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

/** Every mount point currently in this process's mount namespace. */
export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length > 4) out.add(unescape(f[4]!));
  }
  return out;
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
