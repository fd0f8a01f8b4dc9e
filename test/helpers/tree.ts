/**
 * Tree manifests for comparing directory trees in tests: one line per entry
 * with path, type, mode, uid, gid, size, mtime (ns), rdev, xattrs, link
 * target and content hash.
 */
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { lgetxattr, llistxattr } from "../../src/native.js";

export interface ManifestOptions {
  /** Leave out mtimes (e.g. trees rebuilt from whole-second tars). */
  mtime?: boolean | "seconds";
  /** Paths (relative, no leading slash) to leave out. */
  exclude?: (rel: string) => boolean;
  /** "capability": keep only security.capability (what Docker's tars carry). */
  xattrs?: "all" | "capability";
}

export async function manifest(root: string, opts: ManifestOptions = {}): Promise<string[]> {
  const lines: string[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(rel ? join(root, rel) : root)).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (opts.exclude?.(r)) continue;
      const p = join(root, r);
      const st = await lstat(p, { bigint: true });
      const type = st.isDirectory()
        ? "d"
        : st.isSymbolicLink()
          ? "l"
          : st.isFile()
            ? "f"
            : st.isFIFO()
              ? "p"
              : st.isCharacterDevice()
                ? "c"
                : st.isBlockDevice()
                  ? "b"
                  : "s";
      const xs: string[] = [];
      for (const x of (await llistxattr(p)).sort()) {
        if (opts.xattrs === "capability" && x !== "security.capability") continue;
        const v = await lgetxattr(p, x);
        xs.push(`${x}=${v?.toString("hex")}`);
      }
      let extra = "";
      if (type === "l") extra = `-> ${await readlink(p)}`;
      if (type === "f")
        extra = createHash("sha256")
          .update(await readFile(p))
          .digest("hex")
          .slice(0, 16);
      const mt =
        opts.mtime === false ? "" : opts.mtime === "seconds" ? String(st.mtimeNs / 1_000_000_000n) : String(st.mtimeNs);
      const size = type === "d" ? "" : String(st.size);
      lines.push(
        `${r} ${type} ${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${size} ${type === "d" ? "" : mt} ${st.rdev} [${xs.join(",")}] ${extra}`,
      );
      if (type === "d") await walk(r);
    }
  }
  await walk("");
  return lines;
}
