/**
 * Mount table lookups for the devmapper driver.
 *
 * @module
 */
import { readFile } from "node:fs/promises";

/** Unescapes the octal escapes (`\040` for space) of /proc/self/mountinfo fields. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Every mount point of this mount namespace. */
export async function mountPointSet(): Promise<Set<string>> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length > 4) out.add(unescape(f[4]!));
  }
  return out;
}

/** `path` when something is mounted exactly there, else null. */
export async function mountedAt(path: string): Promise<string | null> {
  return (await mountPointSet()).has(path) ? path : null;
}
